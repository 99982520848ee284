"""session_keys: ingest finds a session by its id with one probe, not one per monthly partition.

Revision ID: 0060
Revises: 0059
Create Date: 2026-12-02

The SQL lives beside this file in 0060_session_keys.upgrade.sql / .downgrade.sql.
A table of every session's key, copied from session_summaries (one pass over it, writers waiting),
two statement triggers, merge_cowrie_events and verify_sessions replaced.
"""

from ipintel.migrate import run_revision_sql

revision = "0060"
down_revision = "0059"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
