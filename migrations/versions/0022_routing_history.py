"""Dated routing history: routing-table snapshots run-length in prefix_origins (ip4r GiST), and snapshots that take a session's ASN from it at the session's day.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30

The SQL lives beside this file in 0022_routing_history.upgrade.sql / .downgrade.sql. It runs
as the migrating user, because CREATE EXTENSION ip4r needs a superuser; its SQL then sets the
role to ipintel_owner itself, like the revisions after 0021.
"""

from ipintel.migrate import run_revision_sql

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade", as_owner=False)


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade", as_owner=False)
