"""Build and compare schemas: migrations (alembic) against the stored logic in sql/.

Used by the drift test and by `make` targets; the database logic itself lives in SQL.
"""

from __future__ import annotations

import importlib.resources
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from ipintel import __version__, db

if TYPE_CHECKING:  # annotations only: alembic is imported inside the functions that use it
    from alembic.config import Config
    from alembic.script import ScriptDirectory

SCHEMAS = ("ipintel", "ipintel_staging")
# The repository's sql/ and migrations/, as the package ships them: symbolic links in a checkout
# (loader/ipintel/sql/schema -> sql/, loader/ipintel/migrations -> migrations/), files in a wheel.
SQL_RESOURCE = ("sql", "schema")
MIGRATIONS_RESOURCE = ("migrations",)


class SchemaVersionError(RuntimeError):
    """The database is not at the revision this ipintel was written for, or this ipintel cannot
    find its migrations (CLI exit 2)."""


def package_dir(parts: tuple[str, ...]) -> Path:
    """A folder shipped inside the ipintel package, found with importlib.resources (the same way
    from a checkout, an editable install or a wheel). Alembic and pg_dump need real files, so an
    ipintel imported from a zip is refused like a broken install."""
    resource = importlib.resources.files("ipintel").joinpath(*parts)
    if not isinstance(resource, Path) or not resource.is_dir():
        raise SchemaVersionError(
            f"this ipintel is incomplete: its package has no {'/'.join(parts)} folder ({resource}); "
            "reinstall ipintel")
    return resource


def sql_dir() -> Path:
    """The stored logic as it is now (the repository's sql/)."""
    return package_dir(SQL_RESOURCE)


def migrations_dir() -> Path:
    """The alembic environment and revisions (the repository's migrations/)."""
    return package_dir(MIGRATIONS_RESOURCE)


def sql_files(folder: Path | None = None) -> list[Path]:
    """The files of sql/, in the order they are applied (their names sort in that order)."""
    return sorted((folder or sql_dir()).glob("*.sql"))


def apply_sql_dir(dsn: str, folder: Path | None = None) -> None:
    """Create the whole schema from sql/ (what a fresh database would look like today)."""
    with psycopg.connect(dsn) as conn:
        for path in sql_files(folder):
            conn.execute(path.read_text(encoding="utf-8"))


def alembic_config(dsn: str) -> Config:
    """Alembic's configuration built in code: the migrations shipped in the package, against `dsn`
    (migrations/env.py reads it from the attributes). A checkout's alembic.ini says the same for
    the `alembic` command line; this needs no file and no working directory."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["dsn"] = dsn
    return cfg


def upgrade(dsn: str, revision: str = "head", *, sql: bool = False) -> None:
    """`alembic upgrade`; with sql=True, offline: print the SQL instead of running it."""
    from alembic import command

    command.upgrade(alembic_config(dsn), revision, sql=sql)


def downgrade(dsn: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(dsn), revision)


# The alembic version table (migrations/env.py names it so ipintel can share a database; the
# schema_versions query of sql/queries.sql reads it by this name).
VERSION_TABLE = "ipintel_alembic_version"
MIGRATE_HINT = "run `ipintel migrate` (or `make migrate`)"


def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(""))


def head_revision(script: ScriptDirectory | None = None) -> str:
    """The newest revision of the migrations shipped with this ipintel."""
    head = (script or script_directory()).get_current_head()
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


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database's schema is against the revisions this ipintel ships."""

    current: str | None  # None: never migrated
    head: str
    behind_by: int  # revisions `ipintel migrate` would apply (0 when current or ahead)
    state: Literal["current", "behind", "ahead", "unmigrated"]
    applied: frozenset[str] = frozenset()  # the revisions in the database (its current and their ancestors)

    def problem(self) -> str:
        """One line saying what is wrong and what to run; empty when the schema is at head."""
        if self.state == "unmigrated":
            return (f"database schema is not migrated (no {VERSION_TABLE} table), this ipintel needs revision "
                    f"{self.head}: {MIGRATE_HINT}")
        if self.state == "behind":
            return f"database schema is at revision {self.current}, this ipintel needs {self.head}: {MIGRATE_HINT}"
        if self.state == "ahead":
            return (f"database schema is at revision {self.current}, newer than this ipintel knows (ipintel "
                    f"{__version__} ships revisions up to {self.head}; a newer ipintel migrated it): upgrade ipintel")
        return ""


def schema_state(conn: psycopg.Connection[Any]) -> SchemaState:
    """Compare the database's revision with this ipintel's head. Read-only, never migrates."""
    from alembic.util import CommandError

    script = script_directory()
    head = head_revision(script)
    current = current_revision(conn)
    if current is None:
        return SchemaState(None, head, len(list(script.walk_revisions())), "unmigrated")
    try:
        revisions = current.split(", ")
        known = all(script.get_revision(rev) is not None for rev in revisions)
    except CommandError:
        known = False
    if not known:  # a revision this ipintel does not ship: a newer ipintel wrote it
        return SchemaState(current, head, 0, "ahead")
    applied = frozenset(r.revision for rev in revisions for r in script.iterate_revisions(rev, "base"))
    pending = [r for r in script.walk_revisions() if r.revision not in applied]
    return SchemaState(current, head, len(pending), "behind" if pending else "current", applied)


def check_upgrade_target(state: SchemaState, target: str) -> None:
    """Raise SchemaVersionError (one line) unless `target` is a revision this ipintel ships that
    an upgrade from `state` can reach: `ipintel migrate` never downgrades."""
    from alembic.util import CommandError

    script = script_directory()
    try:
        wanted = script.get_revision(target)
    except CommandError:
        wanted = None
    if wanted is None:
        first = list(script.walk_revisions())[-1].revision  # walked from head down to base
        raise SchemaVersionError(f"no revision {target} in this ipintel (it ships {first} to {state.head})")
    if wanted.revision in state.applied and wanted.revision not in (state.current or "").split(", "):
        raise SchemaVersionError(
            f"database schema is at revision {state.current}, past {wanted.revision}: ipintel migrate only "
            f"upgrades; to go back, run `alembic downgrade {wanted.revision}` from a checkout of ipintel")


def check_version(conn: psycopg.Connection[Any]) -> str:
    """Return the revision when the database is at this ipintel's head; else raise
    SchemaVersionError with one line saying where it is and what to run. Never migrates:
    production schema changes stay an explicit `ipintel migrate`."""
    state = schema_state(conn)
    if state.state != "current":
        raise SchemaVersionError(state.problem())
    return state.head


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
