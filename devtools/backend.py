"""Which PostgreSQL the tests (pgTAP and pytest) run on, and starting it.

A development helper, not part of the installed ipintel. The order:

1. `IPINTEL_TEST_DSN`, when set: that server (any database on it; the tests make their own);
2. a container built from docker/postgres.Dockerfile (PostgreSQL 15 with pgTAP, plpgsql_check,
   ip4r) and started by testcontainers, when a Docker engine answers;
3. the local cluster (devtools/localdb.py) otherwise.

`IPINTEL_TEST_BACKEND=local` or `=container` forces 3 or 2 (`IPINTEL_TEST_DSN` still comes
first). Forcing `container` where no engine answers is an error, never a quiet fallback. The
engine is the one testcontainers would use (`DOCKER_HOST`, else the current docker context,
else the default socket), asked once per process, and the answer takes at most
ENGINE_TIMEOUT seconds whatever the engine does.

Used by tests/conftest.py (the session's server), and by `make test` and tests/run_pgtap.sh,
which run pg_prove and pytest under one chosen server:

    python -m devtools.backend run [--local-dir DIR] -- COMMAND [ARG...]

starts the server, runs COMMAND with IPINTEL_TEST_DSN naming it, then stops it (a container
goes away; a local cluster in DIR is stopped and kept, one in a temporary folder is removed).
It prints one line saying which server it uses (and why not a container). Exit codes:
COMMAND's own; 2 when the server cannot be chosen or started (one line on stderr).
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

from devtools import localdb

PROG = "devtools.backend"
DSN_VAR = "IPINTEL_TEST_DSN"
BACKEND_VAR = "IPINTEL_TEST_BACKEND"
BACKENDS = ("local", "container")
ENGINE_TIMEOUT = 3.0  # seconds; a missing socket fails at once, a silent host takes this long
DOCKER_DIR = Path(__file__).resolve().parents[1] / "docker"
DOCKERFILE = "postgres.Dockerfile"  # built in DOCKER_DIR, as docker/compose.yaml's db service is
IMAGE_TAG = "ipintel-postgres:dev"  # kept after a run: the next one starts from the cached build
SUPERUSER = "postgres"

Kind = Literal["dsn", "container", "local"]


class BackendError(RuntimeError):
    """The tests' PostgreSQL cannot be chosen or started (one line, for the user)."""


@dataclass(frozen=True)
class Choice:
    kind: Kind
    dsn: str | None = None  # the server IPINTEL_TEST_DSN names (kind "dsn")
    why_not_container: str | None = None  # kind "local": why the container path was skipped

    def describe(self) -> str:
        """The line the harness prints once: which server, and why not a container."""
        if self.kind == "dsn":
            return f"PostgreSQL for the tests: the server {DSN_VAR} names ({_where(self.dsn or '')})"
        if self.kind == "container":
            return f"PostgreSQL for the tests: a container from docker/{DOCKERFILE} (testcontainers)"
        return ("PostgreSQL for the tests: the local cluster (devtools/localdb.py); "
                f"container path skipped: {self.why_not_container}")


def _where(dsn: str) -> str:
    """user@host:port/dbname of a DSN, never its password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # psycopg.ProgrammingError; the tests report it when they connect
        return "a DSN libpq cannot parse"
    return "{}@{}:{}/{}".format(params.get("user", "(default user)"), params.get("host", "(default host)"),
                                params.get("port", 5432), params.get("dbname", "(default database)"))


def docker_host() -> str:
    """The engine testcontainers connects to: DOCKER_HOST, ~/.testcontainers.properties, the
    current docker context; else docker's default socket."""
    from testcontainers.core.docker_client import get_docker_host

    return get_docker_host() or "unix:///var/run/docker.sock"


def _ping(host: str, timeout: float) -> None:
    import docker

    client = docker.from_env(timeout=max(1, round(timeout)), environment={**os.environ, "DOCKER_HOST": host})
    try:
        client.ping()
    finally:
        client.close()


def engine_problem(timeout: float = ENGINE_TIMEOUT) -> str | None:
    """None when a Docker engine answers; otherwise why not, in one line. Never waits much
    longer than `timeout` (a host that accepts and never answers, an ssh host that prompts)."""
    try:
        host = docker_host()
    except ImportError as exc:
        return f"{exc.name} is not installed: pip install -e '.[dev]'"
    outcome: list[Exception | None] = []

    def ask() -> None:
        try:
            _ping(host, timeout)
            outcome.append(None)
        except Exception as exc:  # reported below, in the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=ask, name="docker-ping", daemon=True)
    worker.start()
    worker.join(timeout + 1)
    if not outcome:
        return f"no Docker engine answers at {host} (nothing within {timeout:g} s)"
    error = outcome[0]
    if error is None:
        return None
    return f"no Docker engine answers at {host} ({_one_line(error)})"


def _one_line(error: Exception, limit: int = 300) -> str:
    """An exception's message on one line (docker and pg_ctl write several), cut at `limit`."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


@functools.cache
def engine_problem_once() -> str | None:
    """engine_problem(), asked once per process (the harness and the container tests share it)."""
    return engine_problem()


def choose(environ: Mapping[str, str], engine: Callable[[], str | None] = engine_problem_once) -> Choice:
    """The server the tests use, from the environment and, when it matters, the engine check."""
    forced = environ.get(BACKEND_VAR, "").strip()
    if forced and forced not in BACKENDS:
        raise BackendError(f"{BACKEND_VAR} is {forced!r}: it must be local or container (or unset)")
    dsn = environ.get(DSN_VAR, "").strip()
    if dsn:
        return Choice("dsn", dsn=dsn)
    if forced == "local":
        return Choice("local", why_not_container=f"{BACKEND_VAR}=local")
    problem = engine()
    if problem is None:
        return Choice("container")
    if forced == "container":
        raise BackendError(f"{BACKEND_VAR}=container, but {problem}: start Docker (or set DOCKER_HOST), "
                           f"or unset {BACKEND_VAR}")
    return Choice("local", why_not_container=problem)


@contextmanager
def server(choice: Choice, local_dir: Path | None = None) -> Iterator[str]:
    """A libpq URI of the chosen server (superuser, database `postgres`; a password only ever in
    a passfile the URI names), for as long as the block runs."""
    if choice.kind == "dsn":
        assert choice.dsn is not None
        yield choice.dsn
    elif choice.kind == "container":
        with container() as uri:
            yield uri
    elif local_dir is not None:
        uri = _start_local(local_dir)
        try:
            yield uri
        finally:
            localdb.stop(local_dir)
    else:
        # Any folder will do, even one the postgres user cannot enter (TMPDIR in /root): as root,
        # localdb then keeps the data in a private folder of postgres, which destroy() removes too.
        root = Path(tempfile.mkdtemp(prefix="ipintel-pg-"))
        try:
            yield _start_local(root)
        finally:
            localdb.destroy(root)


def _start_local(folder: Path) -> str:
    try:
        return localdb.start(folder, fast=True, dbname="postgres")
    except localdb.LocalDbError as exc:
        raise BackendError(_one_line(exc)) from None


@contextmanager
def container() -> Iterator[str]:
    """A PostgreSQL container from docker/postgres.Dockerfile, fsync off like the local test
    cluster, removed at the end (and by testcontainers' reaper if this process dies)."""
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.image import DockerImage

    print(f"{PROG}: building {IMAGE_TAG} from docker/{DOCKERFILE} (cached after the first time)",
          file=sys.stderr, flush=True)
    try:
        DockerImage(path=DOCKER_DIR, dockerfile_path=DOCKERFILE, tag=IMAGE_TAG, clean_up=False).build()
    except Exception as exc:  # docker.errors.BuildError, APIError: one line, the log is docker's
        raise BackendError(f"could not build docker/{DOCKERFILE}: {_one_line(exc)}") from None
    password = secrets.token_urlsafe(24)
    settings = [f"-c{key}={value}" for key, value in localdb.FAST_SETTINGS.items()]
    postgres = PostgresContainer(IMAGE_TAG, username=SUPERUSER, password=password, dbname="postgres",
                                 driver=None).with_command(["postgres", *settings])
    with tempfile.TemporaryDirectory(prefix="ipintel-tc-") as scratch:
        try:
            postgres.start()
        except Exception as exc:  # a container that never became ready is removed before we say so
            with suppress(Exception):
                postgres.stop()
            raise BackendError(f"could not start the {IMAGE_TAG} container: {_one_line(exc)}") from None
        try:
            host, port = postgres.get_container_host_ip(), postgres.get_exposed_port(5432)
            # psql and pg_prove take the URI on their command lines: the password stays in a
            # passfile (0600, ours), as with the local cluster.
            passfile = Path(scratch) / "pgpass"
            fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(f"*:{port}:*:{SUPERUSER}:{password}\n")
            yield f"postgresql://{SUPERUSER}@{host}:{port}/postgres?passfile={passfile}"
        finally:
            postgres.stop()


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (a CI timeout, kill): unwind, so the server is stopped and the command killed.
    raise SystemExit(128 + signum)


def run(command: list[str], local_dir: Path | None, environ: Mapping[str, str]) -> int:
    choice = choose(environ)
    print(f"{PROG}: {choice.describe()}", file=sys.stderr, flush=True)
    with server(choice, local_dir) as uri:
        return subprocess.run(command, env={**environ, DSN_VAR: uri}, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    run_parser = sub.add_parser("run", help="run COMMAND with IPINTEL_TEST_DSN naming the chosen server")
    run_parser.add_argument("--local-dir", type=Path,
                            help="the local cluster's folder, kept and stopped at the end (default: a "
                                 "temporary one, removed)")
    run_parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command after --")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(command, args.local_dir, os.environ)
    except BackendError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
