"""Post step of 0019: the facts of every stored answer, the resolved columns with their sources, and the foreign keys to the registry validated.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30

The SQL lives beside this file in 0020_post_sources_as_data_facts_backfill.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
