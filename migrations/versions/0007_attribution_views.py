"""Analyst views: session_attribution and asn_moves.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22

The SQL lives beside this file in 0007_attribution_views.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
