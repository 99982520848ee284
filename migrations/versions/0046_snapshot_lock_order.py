"""take_snapshots locks the sessions it fills in the order of the heap, not in the order its joins give.

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-01

The SQL lives beside this file in 0046_snapshot_lock_order.upgrade.sql / .downgrade.sql. Both
replace one function: no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0046"
down_revision = "0045"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
