"""Pre: range lists and infrastructure classes (issue 12): dated cloud, CDN, Tor and hosting-ASN lists, ip_classes, ip_provider / ip_class_basis (CHECK NOT VALID), snapshot_ip_provider, TTL by class.

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-30

The lists are stored run-length like routing history and geolocation builds (merge_dated_runs);
ip_type is decided by ip_classes (ip_types: precedence and TTL) in every merge and after every
range load. New nullable columns (no rewrite) and a CHECK NOT VALID; no foreign key on the class
columns (verify_integrity checks them, as the merge path's *_source columns since 0026); 0031
(post) classifies every row and validates. The SQL lives beside this file in
0030_range_lists.upgrade.sql / .downgrade.sql.
"""

from ipintel.migrate import run_revision_sql

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
