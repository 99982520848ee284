"""apply_answers resolves only the IPs whose answer changed (or that were never classified): a refresh of unchanged answers writes their fetch times and resolves nothing.

Revision ID: 0042
Revises: 0041
Create Date: 2026-11-30

The SQL lives beside this file in 0042_remerge_unchanged.upgrade.sql / .downgrade.sql. Both
replace one function: no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
