"""take_snapshots asks routing history and the geolocation builds only when any is loaded.

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-01

The SQL lives beside this file in 0048_snapshots_skip_empty_history.upgrade.sql / .downgrade.sql. Both
replace one function: no table is locked, nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0048"
down_revision = "0047"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
