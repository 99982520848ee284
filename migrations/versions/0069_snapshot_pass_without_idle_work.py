"""A snapshot pass without idle work: no update when nothing is ready, documents found by digest.

Revision ID: 0069
Revises: 0068
Create Date: 2026-12-03

The SQL lives beside this file in 0069_snapshot_pass_without_idle_work.upgrade.sql /
.downgrade.sql. take_snapshots(inet[]) runs its update only when it found sessions to fill (a
pass with nothing ready hashed every waiting session first); snapshot_documents finds the
documents not stored yet by their digest alone and reads each new one again by its IP.
"""

from ipintel.migrate import run_revision_sql

revision = "0069"
down_revision = "0068"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
