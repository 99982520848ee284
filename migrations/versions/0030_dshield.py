"""DShield (SANS ISC) as a registered remote source: is_known_attacker and threatfeeds as ranked facts, in ip_inventory and the snapshots.

Revision ID: 0030
Revises: 0025
Create Date: 2026-12-02

The SQL lives beside this file: 0030_dshield.concurrently.sql (ip_inventory's new columns and
the foreign key validated, outside any transaction), then 0030_dshield.upgrade.sql;
.downgrade.sql goes back.
"""

from alembic import op

from ipintel.migrate import run_concurrent_sql, run_revision_sql

revision = "0030"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # First, outside the revision's transaction: the foreign key's validation scans ip_inventory
    # under a lock that blocks neither reads nor writes, and each statement commits on its own.
    with op.get_context().autocommit_block():
        run_concurrent_sql(__file__)
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
