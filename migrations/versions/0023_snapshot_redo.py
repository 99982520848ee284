"""Snapshots taken again only through an audited redo (snapshot_redos), and asn_disagreements.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30

The SQL lives beside this file in 0023_snapshot_redo.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
