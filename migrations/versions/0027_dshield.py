"""DShield (SANS ISC) as a registered remote source: is_known_attacker and threatfeeds as ranked facts, in ip_inventory and the snapshots.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-02

The SQL lives beside this file in 0027_dshield.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
