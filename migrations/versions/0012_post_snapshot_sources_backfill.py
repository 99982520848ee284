"""Post step of 0009: sources of the snapshots taken before it, false ASN history removed, constraints validated.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

The SQL lives beside this file in 0012_post_snapshot_sources_backfill.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
