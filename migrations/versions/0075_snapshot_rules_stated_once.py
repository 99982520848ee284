"""Snapshot rules stated once: a session's field to fill and a snapshot's class, for both statements.

Revision ID: 0075
Revises: 0074
Create Date: 2026-12-03

The SQL lives beside this file in 0075_snapshot_rules_stated_once.upgrade.sql / .downgrade.sql.
The condition "this session has a field to fill" was written three times (the per-key update,
snapshot_key_values' choice of keys, the per-session update) and the class's source from
ip_classes' basis twice: ipintel.snapshot_has_field_to_fill (inlined by the planner) and
ipintel.snapshot_classes now state them once. snapshot_key_values finds the keys with a field to
fill by a semi-join over the months' sessions: under an OR its EXISTS was a subquery probed once
per key (random heap reads; a pass with nothing new spent most of its time there).
"""

from ipintel.migrate import run_revision_sql

revision = "0075"
down_revision = "0074"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
