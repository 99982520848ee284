"""Resolved facts per batch: apply_answers resolves a merge batch's IPs in one call (resolved_facts_of).

Revision ID: 0071
Revises: 0070
Create Date: 2026-12-03

The SQL lives beside this file in 0071_resolved_facts_per_batch.upgrade.sql / .downgrade.sql.
A new function, resolved_facts_of(inet[]), resolves the facts of many IPs across sources in one
statement (the answers read and sorted once, each IP's first rank per fact a window over its
answers); apply_answers calls it once per batch, where it called resolved_facts once per staged
row (ordered aggregates: fourteen small sorts per IP); resolved_facts(inet) now reads it for one IP.
"""

from ipintel.migrate import run_revision_sql

revision = "0071"
down_revision = "0070"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
