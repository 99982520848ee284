"""Sources as data, completed: typed facts per answer, ranked per fact in the registry; ip_inventory resolves them (no source named outside its own functions); snapshots wait by rank in linear time.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30

The SQL lives beside this file in 0019_sources_as_data_facts.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
