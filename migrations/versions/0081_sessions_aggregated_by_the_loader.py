"""Sessions aggregated by the loader: each chunk is staged as its sessions, not its events.

Revision ID: 0081
Revises: 0080
Create Date: 2026-12-04

The SQL lives beside this file in 0081_sessions_aggregated_by_the_loader.upgrade.sql / .downgrade.sql.
The loader COPYed every event of a chunk into ipintel_staging.cowrie_events, and merge_cowrie_events
sorted and grouped them per session: on a day's ingest into an enriched database, the COPY and the
grouping were about 0.8 s of the server's 1.8 s. The parsing process now aggregates each chunk per
session by the same rules (ipintel.chunks.ChunkSessions) and the loader stages those rows in
cowrie_sessions (a tenth of the rows), with the chunk's events per eventid in a new staging table,
cowrie_event_counts, which merge_cowrie_events counts besides any staged event.
"""

from ipintel.migrate import run_revision_sql

revision = "0081"
down_revision = "0080"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
