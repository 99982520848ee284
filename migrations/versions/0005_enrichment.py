"""Enrichment engine: policy, runs, failures, MaxMind staging and merge, ASN history, snapshots.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

The SQL lives beside this file in 0005_enrichment.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
