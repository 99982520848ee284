"""Helpers for the alembic revisions in migrations/: each runs the raw SQL file beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from ipintel.config import database_url


def sqlalchemy_url(dsn: str | None = None) -> URL:
    """SQLAlchemy URL (psycopg 3 driver) for a libpq DSN (URI or key=value); default: config."""
    # Parsed from a string alone (no keyword overrides), every value is a str.
    params = {key: str(value) for key, value in conninfo_to_dict(dsn or database_url()).items()}
    return URL.create(
        "postgresql+psycopg",
        username=params.pop("user", None),
        password=params.pop("password", None),
        host=params.pop("host", None),
        port=int(params.pop("port")) if "port" in params else None,
        database=params.pop("dbname", None),
        query=params,
    )


def revision_sql_path(revision_file: str, direction: str) -> Path:
    """`<revision>.<direction>.sql`: upgrade and downgrade, and the parts some revisions add
    (concurrently, copy, swap, ...: the revision's module says when each runs)."""
    path = Path(revision_file)
    return path.with_name(f"{path.stem}.{direction}.sql")


# Revisions after the one that creates the roles (0021) run as the role that owns the schema, so
# whatever they create is owned by it; `SET LOCAL` ends with the revision's transaction. Earlier
# revisions run as the migrating user, as they always did (some create extensions).
ROLES_REVISION = 21
AS_OWNER = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'ipintel_owner')
       AND pg_catalog.pg_has_role(current_user, 'ipintel_owner', 'MEMBER') THEN
        SET LOCAL ROLE ipintel_owner;
    END IF;
END;
$$;
"""


def concurrent_statements(text: str) -> list[str]:
    """The statements of a `.concurrently.sql` file, one by one: each line that ends with `;`
    ends a statement, comment lines are dropped. PostgreSQL runs the statements of one query
    string in an implicit transaction, where CREATE INDEX CONCURRENTLY is refused, so they are
    sent apart; hence plain statements only (no dollar-quoted bodies, no `;` inside a line)."""
    if "$$" in text:
        raise RuntimeError("a .concurrently.sql file holds plain statements only (no $$ bodies)")
    statements, current = [], []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current))
            current = []
    if current:
        raise RuntimeError(f"a statement does not end with ';': {' '.join(current)[:80]}")
    return statements


def run_concurrent_sql(revision_file: str, part: str = "concurrently") -> None:
    """Execute `<revision>.<part>.sql` (default: `.concurrently.sql`) statement by statement, in
    autocommit (call inside alembic's `op.get_context().autocommit_block()`): index builds that
    must not hold a lock on a big table for their whole duration, or a procedure that commits as
    it goes (a batched copy). Run as the migrating user: an index belongs to its table's owner, of
    which that user is a member."""
    from alembic import context, op

    path = revision_sql_path(revision_file, part)
    statements = concurrent_statements(path.read_text(encoding="utf-8"))
    if not statements:
        raise RuntimeError(f"{path} is empty")
    if context.is_offline_mode():
        for statement in statements:
            op.execute(statement)
        return
    dbapi_connection = cast("psycopg.Connection[Any]", op.get_bind().connection.dbapi_connection)
    with dbapi_connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def run_batched_sql(revision_file: str) -> None:
    """Execute `<revision>.batched.sql`, one statement (a DO block that COMMITs after each batch of
    a backfill), in autocommit (call inside alembic's `op.get_context().autocommit_block()`): a
    backfill of a big table whose row locks are held one batch at a time, not until the end of
    the revision. PostgreSQL lets a DO block commit only outside a transaction block, which is
    where this runs (and where `ipintel migrate --sql` puts it, between COMMIT and BEGIN)."""
    from alembic import context, op

    path = revision_sql_path(revision_file, "batched")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise RuntimeError(f"{path} is empty")
    if context.is_offline_mode():
        op.execute(text)
        return
    dbapi_connection = cast("psycopg.Connection[Any]", op.get_bind().connection.dbapi_connection)
    with dbapi_connection.cursor() as cursor:
        cursor.execute(text)


def run_revision_sql(revision_file: str, direction: str, *, as_owner: bool | None = None) -> None:
    """Execute `<revision>.<direction>.sql` in the revision's transaction (direction: upgrade,
    downgrade, or a transactional part of a revision made of several).

    The script goes to psycopg directly (no parameters, so several statements run in one call
    and neither `%` nor `:name` in SQL or JSON literals is mistaken for a placeholder). A
    revision after ROLES_REVISION runs as ipintel_owner, unless it says `as_owner=False` (it
    needs the migrating user's rights for a step, e.g. CREATE EXTENSION, and sets the role itself).
    """
    from alembic import context, op

    sql_text = revision_sql_path(revision_file, direction).read_text(encoding="utf-8")
    if not sql_text.strip():
        raise RuntimeError(f"{revision_sql_path(revision_file, direction)} is empty")
    if as_owner is None:
        as_owner = int(Path(revision_file).name.split("_", 1)[0]) > ROLES_REVISION
    if as_owner:
        sql_text = AS_OWNER + sql_text
    if context.is_offline_mode():
        # `alembic upgrade head --sql`: print the script for a DBA to review or run by hand.
        op.execute(sql_text)
        return
    # SQLAlchemy types the DBAPI connection generically (and as None once closed); with the
    # postgresql+psycopg URL of sqlalchemy_url() it is the open psycopg connection.
    dbapi_connection = cast("psycopg.Connection[Any]", op.get_bind().connection.dbapi_connection)
    with dbapi_connection.cursor() as cursor:
        cursor.execute(sql_text)
