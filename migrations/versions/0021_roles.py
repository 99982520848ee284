"""Least privilege: ipintel_owner owns everything, ipintel_loader calls SECURITY DEFINER entry points and COPYs into staging, ipintel_reader reads.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30

The SQL lives beside this file in 0021_roles.upgrade.sql / .downgrade.sql. It runs as the user
running the migration (it creates the roles and hands the objects to ipintel_owner); the
revisions after it run as ipintel_owner (ipintel.migrate.ROLES_REVISION).
"""

from ipintel.migrate import run_revision_sql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
