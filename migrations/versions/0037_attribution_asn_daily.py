"""Top ASNs from a narrower rollup: attribution_asn_daily (one row per UTC day and snapshot ASN, merged from attribution_daily), kept by roll_up_attribution, read by top_asns, checked by verify_attribution.

Revision ID: 0037
Revises: 0036
Create Date: 2026-11-30

The SQL lives beside this file in 0037_attribution_asn_daily.upgrade.sql / .downgrade.sql. The
upgrade fills the new table from attribution_daily in its own transaction, holding EXCLUSIVE on
attribution_daily (readers go on; roll_up_attribution waits); session_summaries is not touched.
"""

from ipintel.migrate import run_revision_sql

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
