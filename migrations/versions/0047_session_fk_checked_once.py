"""The ingest merge checks the foreign key of each session it inserts once, not on the insert and again on its snapshot.

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-01

The SQL lives beside this file in 0047_session_fk_checked_once.upgrade.sql / .downgrade.sql. Both
alter one constraint (catalog only, nothing is scanned) and replace one function.
"""

from ipintel.migrate import run_revision_sql

revision = "0047"
down_revision = "0046"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
