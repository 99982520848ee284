"""merge_cowrie_events finds its chunk's enriched IPs by one index probe per IP, not a hash of all of enrichment_state.

Revision ID: 0051
Revises: 0050
Create Date: 2026-12-01

The SQL lives beside this file in 0051_ingest_enriched_ips_by_probe.upgrade.sql / .downgrade.sql.
Both replace one function: no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0051"
down_revision = "0050"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
