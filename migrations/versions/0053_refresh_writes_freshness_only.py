"""A re-merge of unchanged answers writes only their freshness; the staging table loses a per-row check.

Revision ID: 0053
Revises: 0052
Create Date: 2026-12-01

The SQL lives beside this file in 0053_refresh_writes_freshness_only.upgrade.sql / .downgrade.sql.
Two functions replaced and one foreign key of the (empty) staging table dropped: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0053"
down_revision = "0052"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
