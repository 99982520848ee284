"""take_snapshots' update reads the incomplete sessions only, not every session kept.

Revision ID: 0062
Revises: 0061
Create Date: 2026-12-02

The SQL lives beside this file in 0062_snapshot_update_reads_incomplete_sessions.upgrade.sql / .downgrade.sql.
One function replaced, the same rows written: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0062"
down_revision = "0061"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
