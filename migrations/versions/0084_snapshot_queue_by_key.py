"""Snapshot queue by key: snapshot_queue lists the keys (source IP, ingest time) of the incomplete sessions, not each session.

Revision ID: 0084
Revises: 0083
Create Date: 2026-12-04

The SQL lives beside this file in 0084_snapshot_queue_by_key.upgrade.sql / .downgrade.sql.
A whole take_snapshots() pass grouped a queue row per incomplete session into keys, read the
waiting sessions again to see which keys had a field to fill, and deleted each completed session
from the queue. The queue now holds those keys, with bounds on their sessions' first_event_at and
the snapshot fields all of them have (known): the pass reads the keys as they are, knows from
them, and deletes a key. The per-session statement (dated data, some IPs, the hard keys) reads
the keys' incomplete sessions staged in ipintel_staging.snapshot_sessions, as it read the queue.
"""

from ipintel.migrate import run_revision_sql

revision = "0084"
down_revision = "0083"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
