"""A merged batch reads its own IPs' inventory rows by index probes, not the whole inventory per batch.

Revision ID: 0056
Revises: 0055
Create Date: 2026-12-01

The SQL lives beside this file in 0056_merge_probes_per_batch.upgrade.sql / .downgrade.sql.
Three functions replaced: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0056"
down_revision = "0055"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
