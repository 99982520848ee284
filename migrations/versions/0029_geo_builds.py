"""Dated geolocation builds (geo_builds, geo_countries, geo_asns) merged like routing history, snapshots of old sessions from the build of their day, and the sha256 of routing files.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-02

The SQL lives beside this file: 0029_geo_builds.concurrently.sql (prefix_origins' new GiST index,
outside any transaction), then 0029_geo_builds.upgrade.sql; .downgrade.sql goes back.
"""

from alembic import op

from ipintel.migrate import run_concurrent_sql, run_revision_sql

revision = "0029"
down_revision = "0028"
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
