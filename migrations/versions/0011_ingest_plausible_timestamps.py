"""Ingest rejects implausible timestamps with a reason of their own.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

The SQL lives beside this file in 0011_ingest_plausible_timestamps.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
