"""Chunk snapshots planned for their rows: take_snapshots(inet[]) reads a chunk's sessions by id.

Revision ID: 0073
Revises: 0072
Create Date: 2026-12-03

The SQL lives beside this file in 0073_chunk_snapshots_planned_for_their_rows.upgrade.sql /
.downgrade.sql. In the daily steady state the statistics take_snapshots(ips) was planned with are
stale: the queue, empty after every enrich, keeps those of the last ANALYZE that saw rows, and
the month's partition was analyzed before the chunk's day with no session incomplete. An ingest
chunk's few thousand sessions were estimated at a few, and the awaited sources (and dated builds'
facts) were worked out again for each session: 3,000 sessions of 300 IPs, 0.93 s (10.9 s with
GreyNoise awaited) against 0.19 s with fresh statistics. The chunk's queued sessions are now read
by their ids (the queue's key), in whole months, without the filter on snapshot_complete_at (the
queue lists the incomplete sessions; the update keeps it). A whole pass is unchanged.
"""

from ipintel.migrate import run_revision_sql

revision = "0073"
down_revision = "0072"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
