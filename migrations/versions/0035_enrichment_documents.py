"""Pre: snapshots without copies (issue 15): enrichment_documents stores each distinct enrichment document once, sessions refer to it (snapshot_document); take_snapshots, the guard, redo, verify_snapshots and session_documents follow.

Revision ID: 0035
Revises: 0034
Create Date: 2026-11-30

A new table, a nullable column without default (no rewrite), the CHECK that asked every snapshot
for snapshot_enrichment replaced NOT VALID by one that accepts either column until 0036 (post)
has moved the copies in batches and drops snapshot_enrichment. No foreign key on
snapshot_document: take_snapshots writes only ids it has just found or stored, stored documents
are never deleted (a trigger refuses it), and verify_snapshots checks every reference in one pass.
Measured on 300,000 sessions from 60,000 IPs (EXPLAIN ANALYZE of the snapshot bench's floor
UPDATE, same data with and without the key): the key's per-row check took 2.06 s of an 18.4 s
statement (~7 us a row, ~14 s at 2M sessions); verify's anti-join 0.35 s. PostgreSQL 15 also
cannot add a foreign key NOT VALID on a partitioned table: adding it to a populated
session_summaries would block writes for the whole validation scan.
The SQL lives beside this file in 0035_enrichment_documents.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
