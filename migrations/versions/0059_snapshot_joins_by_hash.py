"""take_snapshots joins the rows it writes to their classes and documents by hash, not merge.

Revision ID: 0059
Revises: 0058
Create Date: 2026-12-01

The SQL lives beside this file in 0059_snapshot_joins_by_hash.upgrade.sql / .downgrade.sql.
One function replaced, the same rows written: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0059"
down_revision = "0058"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
