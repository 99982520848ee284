"""merge_batch locks only the ip_inventory rows the batch may write: a refresh of unchanged answers locks none of them.

Revision ID: 0043
Revises: 0042
Create Date: 2026-11-30

The SQL lives beside this file in 0043_lock_written_rows.upgrade.sql / .downgrade.sql. Both
replace one function: no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
