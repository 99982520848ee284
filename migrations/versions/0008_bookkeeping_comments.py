"""COMMENT ON for every bookkeeping column of ingest and enrichment.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22

The SQL lives beside this file in 0008_bookkeeping_comments.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
