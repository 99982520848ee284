"""take_snapshots finds each session it fills by its whole key: one partition probed, not every month's.

Revision ID: 0055
Revises: 0054
Create Date: 2026-12-01

The SQL lives beside this file in 0055_snapshot_update_by_key.upgrade.sql / .downgrade.sql.
One function replaced: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0055"
down_revision = "0054"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
