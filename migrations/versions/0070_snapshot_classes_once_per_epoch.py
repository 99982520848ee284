"""Snapshot classes once per epoch: take_snapshots asks ip_classes once per (IP, epoch, ASN).

Revision ID: 0070
Revises: 0069
Create Date: 2026-12-03

The SQL lives beside this file in 0070_snapshot_classes_once_per_epoch.upgrade.sql /
.downgrade.sql. A new function, class_epochs(date[]), gives each day the first day that shares
every range list's snapshot (what ip_classes worked out inside itself); take_snapshots(inet[])
groups the sessions it fills by (IP, epoch, ASN) before it asks ip_classes, rather than by (IP,
day, ASN, source), and takes the source of a class resting on the ASN from the session.
"""

from ipintel.migrate import run_revision_sql

revision = "0070"
down_revision = "0069"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
