"""snapshot_queue: the incomplete sessions listed apart, so that every snapshot fill is HOT.

Revision ID: 0064
Revises: 0063
Create Date: 2026-12-02

The SQL lives beside this file in 0064_snapshot_queue.upgrade.sql / .downgrade.sql.
A table of the incomplete sessions, filled from the partial index it replaces (one pass over
them, writers waiting), two statement triggers; the partial index dropped; take_snapshots,
redo_snapshots, merge_cowrie_events, verify_sessions and the three snapshot views replaced.
"""

from ipintel.migrate import run_revision_sql

revision = "0064"
down_revision = "0063"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
