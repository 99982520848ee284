"""asn_sessions every day queued: while a NULL day is queued, an ASN's sessions are looked for on every day.

Revision ID: 0079
Revises: 0078
Create Date: 2026-12-04

The SQL lives beside this file in 0079_asn_sessions_every_day_queued.upgrade.sql / .downgrade.sql.
asn_sessions (under asn_ips and asn_ips_by_day) reads the days attribution_asn_daily names for
the ASN and the days queued for roll_up_attribution. A NULL day queued (an UPDATE of sessions
outside the functions that queue their own days) means every day, but it matched no session: a
session given the ASN by hand was missing until the next roll-up. It now reads every day's
sessions while a NULL day is queued; otherwise the branch is never run (a one-time filter).
"""

from ipintel.migrate import run_revision_sql

revision = "0079"
down_revision = "0078"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
