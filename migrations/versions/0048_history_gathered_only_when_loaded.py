"""routing_asns and geo_build_facts gather (IP, day) pairs only when any routing snapshot, or any build, is loaded.

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-01

The SQL lives beside this file in 0048_history_gathered_only_when_loaded.upgrade.sql / .downgrade.sql.
Both replace two functions: no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0048"
down_revision = "0047"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
