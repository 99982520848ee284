"""Freshness is state, not part of the document: enrichment_state, merges that write only changed facts, ips_due for offline builds.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30

The SQL lives beside this file in 0016_enrichment_state.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
