"""Snapshots written in place (HOT): no index on a column take_snapshots writes, monthly partitions filled to 40%, the snapshot guard only where a field is known, asn_sessions through attribution_asn_daily.

Revision ID: 0038
Revises: 0037
Create Date: 2026-11-30

The SQL lives beside this file in 0038_hot_snapshots.upgrade.sql / .downgrade.sql. The upgrade
drops three indexes and changes storage parameters and functions: no scan, no copy, a moment of
ACCESS EXCLUSIVE on session_summaries. The downgrade builds the three indexes again (a scan of
every session, holding SHARE on session_summaries for the build).
"""

from ipintel.migrate import run_revision_sql

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
