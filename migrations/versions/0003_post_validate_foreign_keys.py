"""Validate the tier foreign keys (SHARE UPDATE EXCLUSIVE: reads and writes go on).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

The SQL lives beside this file in 0003_post_validate_foreign_keys.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
