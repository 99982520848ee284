"""ips_due reads only the IPs that may be due: the never-answered (an anti-join of primary keys), the stale and the older builds; a pass with nothing due reads no ip_inventory row.

Revision ID: 0039
Revises: 0038
Create Date: 2026-11-30

The SQL lives beside this file in 0039_ips_due_candidates.upgrade.sql / .downgrade.sql. Both
replace one function: no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
