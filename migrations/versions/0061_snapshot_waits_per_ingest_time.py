"""take_snapshots finds the sources a session awaits once per IP and ingest time, not per session.

Revision ID: 0061
Revises: 0060
Create Date: 2026-12-02

The SQL lives beside this file in 0061_snapshot_waits_per_ingest_time.upgrade.sql / .downgrade.sql.
One function replaced, the same rows written: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0061"
down_revision = "0060"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
