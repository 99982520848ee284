"""ip_classes looks up what depends on the address alone once per distinct IP, not once per (ip, day) tuple, and probes no range while no range list has a snapshot for the days asked.

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-01

The SQL lives beside this file in 0045_ip_classes_per_ip.upgrade.sql / .downgrade.sql. Both
replace one function: no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0045"
down_revision = "0044"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
