"""Whole-pass snapshots per key: take_snapshots() writes each key's values in one pass over the heap.

Revision ID: 0074
Revises: 0073
Create Date: 2026-12-03

The SQL lives beside this file in 0074_whole_pass_snapshots_per_key.upgrade.sql / .downgrade.sql.
A whole pass read every queued session, joined it to the queue, sorted the rows to write by heap
place and joined them to the sessions again. Without routing snapshots and dated geolocation
builds, a session's snapshot is the same for every session of its key (IP, ingest time, run of
days with the same range list snapshots) but for the ASN history at its time: the values are now
worked out once per key (ipintel.snapshot_key_values), analyzed in a scratch table
(ipintel_staging.snapshot_keys) and joined by hash to the sessions, read once in the order of the
heap. Keys whose ASN history changes among their sessions go through the per-session statement
(take_snapshots(those IPs)), as do a pass with dated data and an ingest chunk's.
"""

from ipintel.migrate import run_revision_sql

revision = "0074"
down_revision = "0073"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
