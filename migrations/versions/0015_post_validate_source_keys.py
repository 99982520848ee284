"""Post step of 0013: the foreign keys to the source registry are validated.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30

The SQL lives beside this file in 0015_post_validate_source_keys.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
