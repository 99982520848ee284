"""Range lookups by SP-GiST: ip_classes finds the range-list entries containing an address through an SP-GiST index on listed_ranges.prefix (inet_ops) instead of ip4r's GiST on prefix_range, as routing history since 0082.

Revision ID: 0083
Revises: 0082
Create Date: 2026-12-04

The SQL lives beside this file: .concurrently.sql builds the SP-GiST index outside any
transaction, then .upgrade.sql replaces ip_classes, then .after.sql drops the GiST (outside any
transaction). The downgrade mirrors it: .downgrade-concurrently.sql builds the GiST again,
.downgrade.sql puts 0082's ip_classes back, .downgrade-after.sql drops the SP-GiST index.
ip_classes' one probe per IP is about three times faster against a real-sized set of range lists.
"""

from alembic import op

from ipintel.migrate import run_concurrent_sql, run_revision_sql

revision = "0083"
down_revision = "0082"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The index first, outside the revision's transaction, so that the functions that probe it
    # never run without it; the old index last, once nothing reads it.
    with op.get_context().autocommit_block():
        run_concurrent_sql(__file__)
    run_revision_sql(__file__, "upgrade")
    with op.get_context().autocommit_block():
        run_concurrent_sql(__file__, "after")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        run_concurrent_sql(__file__, "downgrade-concurrently")
    run_revision_sql(__file__, "downgrade")
    with op.get_context().autocommit_block():
        run_concurrent_sql(__file__, "downgrade-after")
