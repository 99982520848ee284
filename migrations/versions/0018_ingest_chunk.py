"""Ingest as one SQL call per chunk: ingest_chunk() owns the merge, the rejects, the file offset and the run counters.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30

The SQL lives beside this file in 0018_ingest_chunk.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
