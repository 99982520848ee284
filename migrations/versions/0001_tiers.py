"""The three tiers, the ASN history and the address functions (without foreign keys).

Revision ID: 0001
Revises: None
Create Date: 2026-11-22

The SQL lives beside this file in 0001_tiers.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
