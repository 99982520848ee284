"""Team Cymru and GreyNoise: staging tables, merge_cymru(), merge_greynoise(), the daily API budget.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

The SQL lives beside this file in 0006_cymru_greynoise.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
