"""The ingest merge takes the snapshots of its chunk's sessions whose IP is already enriched: take_snapshots(inet[]), snapshot_waits.source_ip.

Revision ID: 0042
Revises: 0041
Create Date: 2026-11-30

The SQL lives beside this file in 0042_snapshots_at_ingest.upgrade.sql / .downgrade.sql. Both
replace functions and the view snapshot_waits (the downgrade makes it and snapshot_backlog again:
a view cannot drop a column in place): no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
