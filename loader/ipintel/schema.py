"""Build and compare schemas: migrations (alembic) against the stored logic in sql/.

Used by the drift test and by `make` targets; the database logic itself lives in SQL.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from ipintel import db

if TYPE_CHECKING:  # annotations only: alembic is imported inside the functions that use it
    from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
SCHEMAS = ("ipintel", "ipintel_staging")


def sql_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    """The files of sql/, in the order they are applied (their names sort in that order)."""
    return sorted(sql_dir.glob("*.sql"))


def apply_sql_dir(dsn: str, sql_dir: Path = SQL_DIR) -> None:
    """Create the whole schema from sql/ (what a fresh database would look like today)."""
    with psycopg.connect(dsn) as conn:
        for path in sql_files(sql_dir):
            conn.execute(path.read_text(encoding="utf-8"))


class SchemaVersionError(RuntimeError):
    """The database is not at the revision this ipintel was written for, or this ipintel cannot
    find its migrations (CLI exit 2)."""


def alembic_ini() -> Path:
    """alembic.ini of this ipintel: the project folder of the package (a checkout, an editable
    install), else the working directory (a non-editable install run from the project folder,
    as the Docker image does from /app)."""
    for candidate in (ALEMBIC_INI, Path.cwd() / "alembic.ini"):
        if candidate.is_file() and (candidate.parent / "migrations").is_dir():
            return candidate
    raise SchemaVersionError(
        f"cannot find the migrations of this ipintel (alembic.ini beside migrations/) in {PROJECT_ROOT} "
        "or the working directory: run ipintel from its project folder")


def alembic_config(dsn: str) -> Config:
    from alembic.config import Config

    cfg = Config(str(alembic_ini()))
    cfg.attributes["dsn"] = dsn
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(dsn), revision)


# The alembic version table (migrations/env.py names it so ipintel can share a database; the
# schema_versions query of sql/queries.sql reads it by this name).
VERSION_TABLE = "ipintel_alembic_version"
MIGRATE_HINT = "run `ipintel migrate` (or `make migrate`)"


def head_revision() -> str:
    """The newest revision of the migrations shipped with this ipintel."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None, "migrations/versions holds no revision"
    return head


def current_revision(conn: psycopg.Connection[Any]) -> str | None:
    """The revision the database is at, None when it was never migrated. Read-only: the table is
    looked up through the search_path, as alembic does when it creates it."""
    found = db.query_one(conn, db.query("version_table_exists"), {"table": VERSION_TABLE})
    if not found or not found["found"]:
        return None
    rows = db.query_all(conn, db.query("schema_versions"))
    return ", ".join(sorted(row["version_num"] for row in rows)) or None


def check_version(conn: psycopg.Connection[Any]) -> str:
    """Return the revision when the database is at this ipintel's head; else raise
    SchemaVersionError with one line saying where it is and what to run. Never migrates:
    production schema changes stay an explicit `ipintel migrate`."""
    head = head_revision()
    current = current_revision(conn)
    if current == head:
        return head
    if current is None:
        raise SchemaVersionError(
            f"database schema is not migrated (no {VERSION_TABLE} table), this ipintel needs revision {head}: "
            f"{MIGRATE_HINT}")
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory.from_config(alembic_config(""))
    try:
        known = all(script.get_revision(rev) is not None for rev in current.split(", "))
    except CommandError:
        known = False
    if not known:
        raise SchemaVersionError(
            f"database schema is at revision {current}, which this ipintel does not know (a newer ipintel "
            f"migrated it?); this ipintel needs {head}: upgrade ipintel")
    raise SchemaVersionError(f"database schema is at revision {current}, this ipintel needs {head}: {MIGRATE_HINT}")


def _pg_dump() -> str:
    for candidate in ("/usr/lib/postgresql/15/bin/pg_dump", shutil.which("pg_dump")):
        if candidate and Path(candidate).exists():
            return candidate
    raise FileNotFoundError("pg_dump (PostgreSQL 15) not found")


def schema_dump(dsn: str) -> str:
    """pg_dump --schema-only of the ipintel schemas, without the lines that name the dump."""
    args = [_pg_dump(), "--schema-only", "--no-owner", "--no-privileges", "--dbname", dsn]
    for schema in SCHEMAS:
        args += ["--schema", schema]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    # Version banners and \restrict keys (newer pg_dump) differ between runs, not schemas.
    lines = [
        line for line in out.splitlines()
        if not re.match(r"^(-- Dumped (from|by)|\\(un)?restrict )", line)
    ]
    return "\n".join(lines) + "\n"
