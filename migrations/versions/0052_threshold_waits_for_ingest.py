"""A session-count threshold does not settle a snapshot field while an ingest is running.

Revision ID: 0052
Revises: 0051
Create Date: 2026-12-01

The SQL lives beside this file in 0052_threshold_waits_for_ingest.upgrade.sql / .downgrade.sql.
A new function and snapshot_pending_sources replaced (same columns): no table is locked or scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0052"
down_revision = "0051"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
