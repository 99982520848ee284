"""DShield (SANS ISC) as a registered remote source: is_known_attacker and threatfeeds as ranked facts, in ip_inventory and the snapshots.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-02

The SQL lives beside this file in 0028_dshield.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
