"""ip_classes classifies each (ip, epoch, asn) once, not each (ip, day, asn).

Revision ID: 0063
Revises: 0062
Create Date: 2026-12-02

The SQL lives beside this file in 0063_ip_classes_once_per_epoch.upgrade.sql / .downgrade.sql.
One function replaced, the same classes: nothing is scanned.
"""

from ipintel.migrate import run_revision_sql

revision = "0063"
down_revision = "0062"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
