"""Cowrie ingest: runs, files, rejects, the events staging table and merge_cowrie_events().

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

The SQL lives beside this file in 0004_ingest.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
