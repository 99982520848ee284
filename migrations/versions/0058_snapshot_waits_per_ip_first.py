"""snapshot_waits finds each IP's awaited sources once, then joins them to its sessions.

Revision ID: 0058
Revises: 0057
Create Date: 2026-12-01

The SQL lives beside this file in 0058_snapshot_waits_per_ip_first.upgrade.sql / .downgrade.sql.
One view replaced, the same columns and rows: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0058"
down_revision = "0057"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
