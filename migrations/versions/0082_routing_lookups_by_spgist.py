"""Routing lookups by SP-GiST: routing_asns and ip_timeline find the prefixes containing an address through an SP-GiST index on prefix_origins.prefix (inet_ops) instead of ip4r's GiST on prefix_range.

Revision ID: 0082
Revises: 0081
Create Date: 2026-12-04

The SQL lives beside this file: .concurrently.sql builds the SP-GiST index outside any
transaction, then .upgrade.sql replaces the two functions, then .after.sql drops the GiST (outside
any transaction). The downgrade mirrors it: .downgrade-concurrently.sql builds the GiST again,
.downgrade.sql puts 0081's functions back, .downgrade-after.sql drops the SP-GiST index.
Each probe is about 1.7 times faster (issue 15's attack-time lookup) and the index builds about six
times faster; SP-GiST never marks an entry dead from a scan (issue 9's GiST inet indexes did).
"""

from alembic import op

from ipintel.migrate import run_concurrent_sql, run_revision_sql

revision = "0082"
down_revision = "0081"
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
