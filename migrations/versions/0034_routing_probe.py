"""routing_asns probes the GiST index once per pair and dataset (a LATERAL fence): the planner no longer joins every pair to every run of a snapshot.

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-30

The SQL lives beside this file in 0034_routing_probe.upgrade.sql / .downgrade.sql. CREATE OR
REPLACE FUNCTION only: no table is touched.
"""

from ipintel.migrate import run_revision_sql

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
