"""Attribution in milliseconds: the attribution_daily rollup (HLL distinct IPs, extension hll), kept per day by statement triggers on session_summaries and roll_up_attribution; top_asns, top_countries, verify_attribution.

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-30

The SQL lives beside this file: 0032_attribution_daily.upgrade.sql runs as the migrating user,
because CREATE EXTENSION hll needs a superuser (its SQL then sets the role to ipintel_owner, as
0022 does); then, after that transaction commits, 0032_attribution_daily.fill.sql rolls up every
day of the existing sessions in a transaction of its own. .downgrade.sql goes back.
"""

from alembic import op

from ipintel.migrate import run_concurrent_sql, run_revision_sql

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade", as_owner=False)
    # After the commit: the fill holds no lock on session_summaries, and writers are not queued
    # behind the triggers' creation while it runs.
    with op.get_context().autocommit_block():
        run_concurrent_sql(__file__, "fill")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
