"""Ingest near its floor: merge_cowrie_events aggregates a batch with one sort, in memory.

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-30

The SQL lives beside this file in 0033_ingest_floor.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
