"""Merges near the floor: a partial exclusion constraint on ip_asn_history (closed ranges, keyed on
inet_key) with statement triggers for open ranges, facts resolved once per batch, and verify_history.

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-30

The SQL lives beside this file in 0026_merge_near_floor.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
