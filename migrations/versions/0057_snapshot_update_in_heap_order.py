"""take_snapshots writes the sessions it fills in the order of the heap, as it locked them.

Revision ID: 0057
Revises: 0056
Create Date: 2026-12-01

The SQL lives beside this file in 0057_snapshot_update_in_heap_order.upgrade.sql / .downgrade.sql.
One function replaced: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0057"
down_revision = "0056"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
