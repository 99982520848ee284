"""Post step of 0016: enrichment_state filled from the documents, whose fetched_at and build epochs are removed.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30

The SQL lives beside this file in 0017_post_enrichment_state_backfill.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
