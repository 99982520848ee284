"""Helpers for the alembic revisions in migrations/: each runs the raw SQL file beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

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


def revision_sql_path(revision_file: str, direction: Literal["upgrade", "downgrade"]) -> Path:
    path = Path(revision_file)
    return path.with_name(f"{path.stem}.{direction}.sql")


def run_revision_sql(revision_file: str, direction: Literal["upgrade", "downgrade"]) -> None:
    """Execute `<revision>.<direction>.sql` in the revision's transaction.

    The script goes to psycopg directly (no parameters, so several statements run in one call
    and neither `%` nor `:name` in SQL or JSON literals is mistaken for a placeholder).
    """
    from alembic import context, op

    sql_text = revision_sql_path(revision_file, direction).read_text(encoding="utf-8")
    if not sql_text.strip():
        raise RuntimeError(f"{revision_sql_path(revision_file, direction)} is empty")
    if context.is_offline_mode():
        # `alembic upgrade head --sql`: print the script for a DBA to review or run by hand.
        op.execute(sql_text)
        return
    # SQLAlchemy types the DBAPI connection generically (and as None once closed); with the
    # postgresql+psycopg URL of sqlalchemy_url() it is the open psycopg connection.
    dbapi_connection = cast("psycopg.Connection[Any]", op.get_bind().connection.dbapi_connection)
    with dbapi_connection.cursor() as cursor:
        cursor.execute(sql_text)
