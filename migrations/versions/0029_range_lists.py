"""Range lists and infrastructure classes (issue 12): dated cloud, CDN, Tor and hosting-ASN lists stored run-length like routing history, the classes of ip_type with their precedence, and the run-length merge shared with routing history.

Revision ID: 0029
Revises: 0025
Create Date: 2026-11-30

The SQL lives beside this file in 0029_range_lists.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0029"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
