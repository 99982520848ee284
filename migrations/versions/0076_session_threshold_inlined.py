"""Session threshold inlined: below_session_threshold has no subquery, so its callers read columns, not rows.

Revision ID: 0076
Revises: 0075
Create Date: 2026-12-03

The SQL lives beside this file in 0076_session_threshold_inlined.upgrade.sql / .downgrade.sql.
below_session_threshold(policy, ip_inventory row) held an EXISTS, so the planner could not inline
it, and every query that used it (snapshot_pending_sources, read by each snapshot pass and ingest
chunk, and ips_due) formed the whole ip_inventory row, its enrichment document too, for each
(IP, source) pair. Its login check is now ipintel.has_successful_login(inet); the threshold
itself is inlined and reads the columns it needs.
"""

from ipintel.migrate import run_revision_sql

revision = "0076"
down_revision = "0075"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
