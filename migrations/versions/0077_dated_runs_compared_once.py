"""Dated runs compared once: a snapshot's keys and the runs holding its day meet in one full join.

Revision ID: 0077
Revises: 0076
Create Date: 2026-12-03

The SQL lives beside this file in 0077_dated_runs_compared_once.upgrade.sql / .downgrade.sql.
merge_dated_runs (routing history, geolocation builds, range lists) worked out the snapshot's keys
in no run once for each of four statements, and the runs whose key it lacks in a fifth: five hash
joins of the whole snapshot against the runs, on disk at the default work_mem (a daily routing
table of 1.15M pairs: 4.5 s of a 6.2 s load). It is now one statement over one full join that keeps
only the rows that differ, and it returns the snapshot's entries too, counted as the runs that hold
its day; load_routing_snapshot, load_geo_build and load_range_snapshot take their count from it, not
from a DISTINCT of the staged rows. The same tables, in any load order.
"""

from ipintel.migrate import run_revision_sql

revision = "0077"
down_revision = "0076"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
