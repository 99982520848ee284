"""Build and compare schemas: migrations (alembic) against the stored logic in sql/.

Used by the drift test and by `make` targets; the database logic itself lives in SQL.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import psycopg

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
            conn.execute(path.read_text(encoding="utf-8"))  # type: ignore[arg-type]


def alembic_config(dsn: str):  # -> alembic.config.Config
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.attributes["dsn"] = dsn
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(dsn), revision)


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
