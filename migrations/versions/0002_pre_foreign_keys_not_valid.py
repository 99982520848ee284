"""Foreign keys between the tiers, added NOT VALID (brief locks, no scan).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The SQL lives beside this file in 0002_pre_foreign_keys_not_valid.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
