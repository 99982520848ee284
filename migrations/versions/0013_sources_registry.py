"""Sources as data: one registry (enrichment_policy), foreign keys instead of source lists, one results staging table, merge_batch, runs in SQL.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30

The SQL lives beside this file in 0013_sources_registry.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
