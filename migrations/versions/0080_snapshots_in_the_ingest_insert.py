"""Snapshots in the ingest insert: an enriched chunk's new sessions are inserted with their snapshot.

Revision ID: 0080
Revises: 0079
Create Date: 2026-12-04

The SQL lives beside this file in 0080_snapshots_in_the_ingest_insert.upgrade.sql / .downgrade.sql.
merge_cowrie_events inserted a chunk's new sessions empty; the queue's trigger listed them, and
take_snapshots of the chunk's enriched IPs (a per-session statement) filled and dequeued them:
most of an enriched chunk's merge. The values are now worked out once per key before the insert
(snapshot_key_values of the batch: new arguments p_batch_id and p_ips), and the insert writes
them; a complete snapshot is never queued. take_snapshots(ips) is left the IPs whose ASN history
changes among a key's sessions and those with sessions queued before the chunk. The awaited
sources of IPs not queued yet are read from a new view, awaited_sources (snapshot_pending_sources
is it for the queued IPs). Not with routing snapshots or dated geolocation builds, nor while a
session-count threshold could decline an IP outside an ingest: then as before. Whether dated data
is loaded is one new function, snapshots_are_dated(), which take_snapshots (replaced for it) and
the merge both ask.
"""

from ipintel.migrate import run_revision_sql

revision = "0080"
down_revision = "0079"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
