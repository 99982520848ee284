"""The ASN counts are added to where an ASN only gains (ingest, IPs moving in), not recounted from every IP of the ASN.

Revision ID: 0050
Revises: 0049
Create Date: 2026-12-01

The SQL lives beside this file in 0050_asn_counts_added.upgrade.sql / .downgrade.sql.
The upgrade adds one function and replaces two (merge_cowrie_events, apply_answers); the
downgrade restores them and drops it. No table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0050"
down_revision = "0049"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
