"""Snapshots completed as sources answer, one lock order for merges and ingest, ASN history from real observations only.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

The SQL lives beside this file in 0009_snapshot_completion.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
