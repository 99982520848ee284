"""A project-local, throwaway PostgreSQL 15 cluster for development, tests and the demo.

Used by `make db` / `make db-stop` and by the test harness when no DSN is given. The cluster
listens on 127.0.0.1 and a Unix socket inside its own folder only, on a free port, with trust
authentication: it is a scratch database, never a production one.

PostgreSQL refuses to run as root, so when we are root the server programs run as the
`postgres` system user (created by Debian's postgresql-common) and the folder is handed to it.

    python -m ipintel.localdb start [--dir DIR] [--fast]   # prints DATABASE_URL
    python -m ipintel.localdb stop  [--dir DIR]
    python -m ipintel.localdb url   [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DIR = Path(".ipintel-pg")
DEFAULT_DBNAME = "ipintel"
SUPERUSER = "postgres"
PG_MAJOR = "15"

# Durability is worthless for a throwaway test cluster and costs most of a test run's time.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class LocalDbError(RuntimeError):
    """The local cluster could not be created, started or reached."""


def pg_bindir() -> Path:
    """Folder of the PostgreSQL 15 server binaries (initdb, pg_ctl)."""
    candidates = [Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")]
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise LocalDbError(
        "PostgreSQL 15 server binaries not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "). Install them: apt-get install postgresql-15 (or run `make setup` as root)."
    )


def _run_as_owner(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a server program; as root, as the postgres user (initdb/postgres refuse root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", SUPERUSER, "--", *args]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LocalDbError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_file(data_root: Path) -> Path:
    return data_root / "port"


def url(data_root: Path = DEFAULT_DIR, dbname: str = DEFAULT_DBNAME) -> str:
    """libpq URI of the cluster in `data_root` (it must have been started once)."""
    port_file = _port_file(data_root)
    if not port_file.exists():
        raise LocalDbError(f"no local cluster in {data_root}: run `make db` first")
    port = int(port_file.read_text().strip())
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{dbname}"


def is_running(data_root: Path) -> bool:
    pgdata = data_root / "data"
    if not (pgdata / "PG_VERSION").exists():
        return False
    proc = _run_as_owner([str(pg_bindir() / "pg_ctl"), "status", "-D", str(pgdata)], check=False)
    return proc.returncode == 0


def start(data_root: Path = DEFAULT_DIR, *, fast: bool = False, dbname: str = DEFAULT_DBNAME) -> str:
    """Create (first time) and start the cluster; create `dbname`; return its URI. Idempotent."""
    data_root = data_root.resolve()
    pgdata = data_root / "data"
    bindir = pg_bindir()
    data_root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError as exc:
            raise LocalDbError(
                "running as root needs the 'postgres' system user to own the cluster: "
                "apt-get install postgresql-15 creates it"
            ) from exc
        os.chown(data_root, owner.pw_uid, owner.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        _run_as_owner(
            [str(bindir / "initdb"), "-D", str(pgdata), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"]
        )
    if is_running(data_root):
        return url(data_root, dbname)
    port = _free_port()
    options = [
        "-c", f"port={port}",
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={data_root}",
        "-c", "max_connections=60",
        "-c", "shared_buffers=256MB",
        "-c", "max_wal_size=4GB",
    ]
    if fast:
        for key, value in FAST_SETTINGS.items():
            options += ["-c", f"{key}={value}"]
    _run_as_owner(
        [str(bindir / "pg_ctl"), "start", "-D", str(pgdata), "-w", "-t", "60",
         "-l", str(data_root / "server.log"), "-o", " ".join(options)]
    )
    # Written by us (root or not) after the server is up, read by url().
    _port_file(data_root).write_text(f"{port}\n")
    _ensure_database(port, dbname)
    return url(data_root, dbname)


def _ensure_database(port: int, dbname: str) -> None:
    import psycopg  # imported here so `stop` works without the driver installed
    from psycopg import sql

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg.connect(
                host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", autocommit=True
            )
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def stop(data_root: Path = DEFAULT_DIR) -> bool:
    """Stop the cluster if it runs. Returns whether it was running."""
    data_root = data_root.resolve()
    if not is_running(data_root):
        return False
    _run_as_owner([str(pg_bindir() / "pg_ctl"), "stop", "-D", str(data_root / "data"), "-m", "fast", "-w"])
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipintel.localdb", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "url"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="cluster folder (default: %(default)s)")
    parser.add_argument("--dbname", default=DEFAULT_DBNAME)
    parser.add_argument("--fast", action="store_true", help="fsync off: for test clusters")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            print(start(args.dir, fast=args.fast, dbname=args.dbname))
        elif args.action == "stop":
            print("stopped" if stop(args.dir) else "not running", file=sys.stderr)
        else:
            print(url(args.dir, args.dbname))
    except LocalDbError as exc:
        print(f"ipintel.localdb: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
