"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

The SQL lives beside this file in ${up_revision}_<slug>.upgrade.sql / .downgrade.sql;
write it there (squawk lints it in `make test`) and keep sql/ in step (the drift test checks).
"""

from ipintel.migrate import run_revision_sql

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    run_revision_sql(__file__, "upgrade")


def downgrade() -> None:
    run_revision_sql(__file__, "downgrade")
