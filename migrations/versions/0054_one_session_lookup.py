"""merge_cowrie_events looks each staged session up once, not three times, and sorts by session id in "C".

Revision ID: 0054
Revises: 0053
Create Date: 2026-12-01

The SQL lives beside this file in 0054_one_session_lookup.upgrade.sql / .downgrade.sql.
One function replaced and a nullable column added to the (empty) staging table: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0054"
down_revision = "0053"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
