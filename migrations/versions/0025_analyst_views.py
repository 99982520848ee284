"""The analyst's functions, ipintel verify's checks, and the window index built CONCURRENTLY.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-01

The SQL lives beside this file: 0025_analyst_views.concurrently.sql (the index, outside any
transaction), then 0025_analyst_views.upgrade.sql; .downgrade.sql goes back.
"""

from alembic import op

from ipintel.migrate import run_concurrent_sql, run_revision_sql

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # First, outside the revision's transaction: a failed build leaves only an INVALID index,
    # which the next attempt drops and builds again.
    with op.get_context().autocommit_block():
        run_concurrent_sql(__file__)
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
