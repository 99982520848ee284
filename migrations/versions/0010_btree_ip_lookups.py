"""IP lookups that cannot lose rows: no btree_gist inet opclass, no GiST on ip_inventory.ip.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

The SQL lives beside this file in 0010_btree_ip_lookups.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
