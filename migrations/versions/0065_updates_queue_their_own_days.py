"""Updates of session_summaries queue their own attribution days: no transition tables on UPDATE.

Revision ID: 0065
Revises: 0064
Create Date: 2026-12-02

The SQL lives beside this file in 0065_updates_queue_their_own_days.upgrade.sql / .downgrade.sql.
take_snapshots, redo_snapshots and merge_cowrie_events insert the days they update into
attribution_dirty_days; the two UPDATE triggers with transition tables are dropped; any other
update queues every day (a NULL day) from a statement trigger that copies no row, and
roll_up_attribution recounts every day for it.
"""

from ipintel.migrate import run_revision_sql

revision = "0065"
down_revision = "0064"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
