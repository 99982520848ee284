"""take_snapshots works out the awaited sources once per (IP, ingest time) of the queue.

Revision ID: 0067
Revises: 0066
Create Date: 2026-12-02

The SQL lives beside this file in 0067_awaited_sources_per_ingest_time.upgrade.sql /
.downgrade.sql. take_snapshots(inet[]) joins the pending sources to the distinct (IP, created_at)
pairs of snapshot_queue instead of to every queued session, then takes the same minimum ranks.
"""

from ipintel.migrate import run_revision_sql

revision = "0067"
down_revision = "0066"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
