"""Post step of 0035: the documents of earlier snapshots moved from snapshot_enrichment to enrichment_documents in committed batches, the final CHECK validated, snapshot_enrichment dropped.

Revision ID: 0036
Revises: 0035
Create Date: 2026-11-30

The batches run outside the revision's transaction
(0036_post_enrichment_documents_backfill.batched.sql: one DO block that commits after every
10,000 sessions, so no row is locked for longer than its batch and ingest and enrich go on; it
ends by adding the final CHECK NOT VALID, committed); then
0036_post_enrichment_documents_backfill.upgrade.sql validates it, in the revision's transaction,
installs the final guard, redo and session_documents and drops the column. The downgrade adds
snapshot_enrichment back and copies every snapshot's document into it.
"""

from alembic import op

from ipintel.migrate import run_batched_sql, run_revision_sql

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        run_batched_sql(__file__)
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
