"""Post step of 0030: every ip_inventory row classified (ip_type, ip_type_source, ip_provider, ip_class_basis) in committed batches, then the CHECK 0030 added NOT VALID validated.

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-30

The batches run outside the revision's transaction (0031_post_ip_classes_backfill.batched.sql:
one DO block that commits after every 10,000 IPs, so no row is locked for longer than its batch
and ingest and enrich can go on); then 0031_post_ip_classes_backfill.upgrade.sql validates, in
the revision's transaction. .downgrade.sql has nothing to undo.
"""

from alembic import op

from ipintel.migrate import run_batched_sql, run_revision_sql

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        run_batched_sql(__file__)
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
