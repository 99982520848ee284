"""Attribution days by hash: a roll-up reads the sessions of the days it recounts once, matched to their day by a hash.

Revision ID: 0078
Revises: 0077
Create Date: 2026-12-03

The SQL lives beside this file in 0078_attribution_days_by_hash.upgrade.sql / .downgrade.sql.
attribution_of_days (roll_up_attribution after every ingest and enrich, verify_attribution) joined
the days asked to every session by its time range: a nested loop that read every month and
compared each session with each day (31 days of 2M sessions: 10.9 s; one day of an ingest in a
month of 2M sessions: 2.0 s). It now reads the sessions between the first and the last day asked
(the other months skipped at run time), each matched to its day by equality with a hash of the
days: the same rows, 6.5-6.9 s and 0.12 s.
"""

from ipintel.migrate import run_revision_sql

revision = "0078"
down_revision = "0077"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
