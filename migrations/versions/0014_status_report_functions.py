"""Status and report queries as SQL functions analysts can call.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

The SQL lives beside this file in 0014_status_report_functions.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
