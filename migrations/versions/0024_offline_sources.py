"""IPinfo Lite and DB-IP Lite as offline sources; Cymru's country after geolocation; no wait for files not installed.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01

The SQL lives beside this file in 0024_offline_sources.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
