"""Test harness: a real PostgreSQL for every database test.

The server is chosen once per session by devtools.backend, in this order: the one
`IPINTEL_TEST_DSN` names (any database on it; tests create their own); a container built from
docker/postgres.Dockerfile and started by testcontainers when a Docker engine answers; a
throwaway local PostgreSQL 15 cluster (devtools.localdb: initdb on a free loopback port, as the
postgres user when we are root, which pytest-postgresql's process fixture cannot do).
`IPINTEL_TEST_BACKEND=local|container` forces one; `container` with no engine answering stops
the run before any test (one line, pytest's usage error, exit 4). The header says which server.
Started servers are stopped at the end. Passwords live in a libpq passfile named by the URI
(`?passfile=`); PGPASSFILE names it too for the session, for pytest-postgresql's janitor, which
takes no passfile. A template database is migrated once with `alembic upgrade head`; each test
gets its own clone of it (pytest-postgresql's DatabaseJanitor).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql.janitor import DatabaseJanitor

from devtools import backend
from ipintel import schema


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str | None
    passfile: str | None = None

    def dsn(self, dbname: str) -> str:
        return make_conninfo(host=self.host, port=self.port, user=self.user, dbname=dbname,
                             **({"password": self.password} if self.password else {}),
                             **({"passfile": self.passfile} if self.passfile else {}))

    def janitor(self, dbname: str, template: str | None = None, as_template: bool = False) -> DatabaseJanitor:
        return DatabaseJanitor(user=self.user, host=self.host, port=self.port, password=self.password,
                               dbname=dbname, template_dbname=template, as_template=as_template)


def _conninfo(dsn: str) -> dict[str, str]:
    """The parameters of a DSN: parsed from a string alone (no keyword overrides), each is a str."""
    return {key: str(value) for key, value in conninfo_to_dict(dsn).items()}


@contextmanager
def _pgpassfile(passfile: str | None) -> Iterator[None]:
    """PGPASSFILE set to `passfile` (when there is one) until the end: DatabaseJanitor connects
    with user, host, port and password only, and libpq finds the password there."""
    with pytest.MonkeyPatch.context() as patch:
        if passfile:
            patch.setenv("PGPASSFILE", passfile)
        yield


BACKEND = pytest.StashKey[backend.Choice]()


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[BACKEND] = backend.choose(os.environ)
    except backend.BackendError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[BACKEND].describe()


@pytest.fixture(scope="session")
def pg_server(pytestconfig: pytest.Config) -> Iterator[PgServer]:
    try:
        with backend.server(pytestconfig.stash[BACKEND]) as url:
            params = _conninfo(url)
            with _pgpassfile(params.get("passfile")):
                yield PgServer(host=params.get("host", "127.0.0.1"), port=int(params.get("port", 5432)),
                               user=params.get("user", "postgres"), password=params.get("password"),
                               passfile=params.get("passfile"))
    except backend.BackendError as exc:
        pytest.exit(f"{backend.PROG}: {exc}", returncode=2)


# A schema build makes the monthly partitions of session_summaries up to next month (sql/030's
# last statement, revision 0027): a database built in a later UTC month than the template has one
# more, and a run that crosses the first of a month compared `db` (cloned from the template)
# with databases built after midnight, which differed by that partition and its grants.
SAME_MONTHS_AS_A_NEW_BUILD = "SELECT ipintel.ensure_session_partitions(ARRAY[now(), now() + interval '1 month'])"
_template_months: dict[str, tuple[int, int]] = {}


def _utc_month() -> tuple[int, int]:
    now = datetime.now(UTC)
    return now.year, now.month


@contextmanager
def _one_migration_at_a_time(pg_server: PgServer) -> Iterator[None]:
    """Held while a template is migrated. The workers of `pytest -n` (pytest-xdist) each build a
    template on the one server, and the first migration creates the roles, which belong to the
    cluster: two at once could both find a role missing and one fail creating it. An advisory
    lock is per database, so both take it in the `postgres` database."""
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('ipintel tests: migrating a template'))")
        yield


@pytest.fixture(scope="session")
def migrated_template(pg_server: PgServer) -> Iterator[str]:
    """Name of a database built by `alembic upgrade head`, cloned by every `db` test."""
    name = f"ipintel_template_{uuid.uuid4().hex[:8]}"
    janitor = pg_server.janitor(name, as_template=True)
    janitor.init()
    try:
        with _one_migration_at_a_time(pg_server):
            schema.upgrade(pg_server.dsn(name))
        _template_months[name] = _utc_month()
        yield name
    finally:
        janitor.drop()


@pytest.fixture
def db(pg_server: PgServer, migrated_template: str) -> Iterator[str]:
    """DSN of a fresh, fully migrated database private to this test: what a build made now would
    be, even when the template was built in the month before."""
    name = f"ipintel_test_{uuid.uuid4().hex[:10]}"
    with pg_server.janitor(name, template=migrated_template):
        dsn = pg_server.dsn(name)
        if _template_months.get(migrated_template) != _utc_month():
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(SAME_MONTHS_AS_A_NEW_BUILD)
        yield dsn


@pytest.fixture
def empty_db(pg_server: PgServer) -> Iterator[str]:
    """DSN of an empty database private to this test (for migration and drift tests)."""
    name = f"ipintel_empty_{uuid.uuid4().hex[:10]}"
    with pg_server.janitor(name):
        yield pg_server.dsn(name)


@pytest.fixture
def cli_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str], None]:
    """`use(dsn)`: point `ipintel.cli.main` at that database and nothing else from the caller's
    shell: no ipintel.toml (the working directory is the test's), no IPINTEL_* setting."""
    def use(dsn: str) -> None:
        monkeypatch.chdir(tmp_path)
        for name in [k for k in os.environ if k.startswith("IPINTEL_") and k != "IPINTEL_TEST_DSN"]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("DATABASE_URL", dsn)
    return use


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection
