"""take_snapshots asks for routing and geolocation-build pairs only when there is dated data.

Revision ID: 0066
Revises: 0065
Create Date: 2026-12-02

The SQL lives beside this file in 0066_place_pairs_only_when_there_is_dated_data.upgrade.sql /
.downgrade.sql. take_snapshots(inet[]) skips its read of the queued sessions' (IP, day) pairs
when no routing snapshot and no geolocation build is stored: nothing could answer them.
"""

from ipintel.migrate import run_revision_sql

revision = "0066"
down_revision = "0065"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
