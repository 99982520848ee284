"""lock_for_merge locks a batch with one index probe per IP, in ip order, never a scan of the whole inventory.

Revision ID: 0049
Revises: 0048
Create Date: 2026-12-01

The SQL lives beside this file in 0049_merge_locks_by_probe.upgrade.sql / .downgrade.sql.
Both replace one function: no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0049"
down_revision = "0048"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
