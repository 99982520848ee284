"""session_summaries partitioned by month of first_event_at: built beside, copied in batches, swapped.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-02

Three parts, each its own transaction (the SQL lives beside this file):
1. 0027_session_partitions.upgrade.sql: the partitioned table, empty, under the name
   session_summaries_partitioned, its partitions, and a trigger on session_summaries that repeats
   every change there. Skipped when already done (a run that stopped during the copy, or a DBA
   who ran the parts by hand): the copy then resumes.
2. 0027_session_partitions.copy.sql, outside any transaction: the old table's foreign key dropped
   (its own transaction: an instant of ACCESS EXCLUSIVE on ip_inventory; the trigger's writes to
   the partitioned table keep the key), then CALL ipintel.copy_sessions_to_partitions(), which
   commits after every batch; ingest and enrich may run meanwhile.
3. 0027_session_partitions.swap.sql then .swap_tables.sql, one transaction: the counts compared,
   the tables swapped.
.downgrade.sql then .swap_tables.sql go back in one transaction.
"""

from alembic import context, op

from ipintel.migrate import run_concurrent_sql, run_revision_sql

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def first_part_done() -> bool:
    """The partitioned table is there already: part 1 committed in an earlier run."""
    if context.is_offline_mode():
        return False
    found = op.get_bind().exec_driver_sql(
        "SELECT to_regclass('ipintel.session_summaries_partitioned') IS NOT NULL").scalar()
    return bool(found)


def upgrade() -> None:
    if not first_part_done():
        run_revision_sql(__file__, "upgrade")
    # alembic commits part 1 before the block and begins a new transaction after it.
    with op.get_context().autocommit_block():
        run_concurrent_sql(__file__, "copy")
    run_revision_sql(__file__, "swap")
    run_revision_sql(__file__, "swap_tables")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
    run_revision_sql(__file__, "swap_tables")
