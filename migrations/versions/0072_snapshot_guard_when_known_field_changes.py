"""Snapshot guard when a known field changes: the trigger's WHEN states what protect_snapshot refuses.

Revision ID: 0072
Revises: 0071
Create Date: 2026-12-03

The SQL lives beside this file in 0072_snapshot_guard_when_known_field_changes.upgrade.sql /
.downgrade.sql. session_summaries_snapshot_is_immutable called protect_snapshot (PL/pgSQL, with a
query of snapshot_redos) for every update of a session with any known snapshot field; a pass that
fills the fields a later source gave paid it for each session (1M sessions: 17 to 19 s, 5.2 to
5.6 s without it). Its WHEN now states the refusal (the test moved there from the function):
protect_snapshot runs only when a known field would change, and refuses it but inside a redo.
"""

from ipintel.migrate import run_revision_sql

revision = "0072"
down_revision = "0071"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
