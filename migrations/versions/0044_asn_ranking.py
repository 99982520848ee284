"""top_asns ranks through asn_ranking (each day's busiest ASNs and a bar: the threshold algorithm) instead of summing every ASN of the window, on a new (day, sessions DESC) INCLUDE (asn) index of attribution_asn_daily.

Revision ID: 0044
Revises: 0043
Create Date: 2026-11-30

The SQL lives beside this file: 0044_asn_ranking.concurrently.sql (the index, outside any
transaction), then 0044_asn_ranking.upgrade.sql; .downgrade.sql goes back.
"""

from alembic import op

from ipintel.migrate import run_concurrent_sql, run_revision_sql

revision = "0044"
down_revision = "0043"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # First, outside the revision's transaction: a failed build leaves only an INVALID index,
    # which the next attempt drops and builds again.
    with op.get_context().autocommit_block():
        run_concurrent_sql(__file__)
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
