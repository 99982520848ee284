"""Sessions have one writer at a time: take_snapshots and redo_snapshots take the merge's lock.

Revision ID: 0068
Revises: 0067
Create Date: 2026-12-03

The SQL lives beside this file in 0068_sessions_have_one_writer_at_a_time.upgrade.sql /
.downgrade.sql. take_snapshots(inet[]) and redo_snapshots take the transaction advisory lock that
merge_cowrie_events takes first, so take_snapshots no longer locks each session it fills
(FOR NO KEY UPDATE ... SKIP LOCKED): the lock wrote every row once before the snapshot wrote it
again. A snapshot pass waits for the ingest chunk in flight, and ingest waits for a pass.
"""

from ipintel.migrate import run_revision_sql

revision = "0068"
down_revision = "0067"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
