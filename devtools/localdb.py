"""A project-local, throwaway PostgreSQL 15 cluster for development, tests and the demo.

A development helper, not part of the installed ipintel (which needs DATABASE_URL): used from a
checkout by `make db` / `make db-stop` / `make clean` (and the targets that start their own
cluster: test, bench), by the test harness when no DSN is given, and by tests/smoke_wheel.sh.
`stop`, `url` and `destroy` need only the standard library (a fresh clone's `make clean`);
`start` needs psycopg too.

The cluster listens on 127.0.0.1 and a Unix socket inside its own folder only (none when that
path is too long for a socket), on a free port. It is a scratch database, never a production
one, but a private one: scram-sha-256 authentication for every connection, with a password
generated at initdb and kept only in a libpq passfile, DIR/pgpass (mode 0600, the invoking
user's). The URI printed and returned names that file (`?passfile=...`), never the password, so
no other local account can connect. A cluster made before this (trust authentication, no
passfile) still works, with a warning at each start.

PostgreSQL refuses to run as root, so when we are root the server programs run as the
`postgres` system user (created by Debian's postgresql-common), which must be able to reach
the cluster's folder. DIR is used as it is when postgres can enter the folder holding it; when
it cannot (a clone in /root or another mode-0700 folder), the data, server log and socket go to
a private folder of the postgres user, /var/tmp/ipintel-pg-<uid>-<hash of DIR's absolute path>/
(mode 0700), and DIR holds only the `location` file naming that folder, and the port. `stop`
and `destroy` follow it. Not as root, the server runs as the invoking user, in DIR.

    python -m devtools.localdb start   [--dir DIR] [--fast]   # prints DATABASE_URL (no secret in it)
    python -m devtools.localdb stop    [--dir DIR]
    python -m devtools.localdb url     [--dir DIR]
    python -m devtools.localdb destroy [--dir DIR]            # stop, then remove DIR and the data
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

PROG = "devtools.localdb"  # how messages name this module
DEFAULT_DIR = Path(".ipintel-pg")
DEFAULT_DBNAME = "ipintel"
SUPERUSER = "postgres"
PG_MAJOR = "15"

# Where the cluster goes when we are root and postgres cannot enter DIR's parent: world-writable
# and sticky, so postgres can own a private folder there that no other user can replace.
EXTERNAL_PARENT = Path("/var/tmp")
EXTERNAL_NAME = re.compile(r"ipintel-pg-\d+-[0-9a-f]{12}")
LOCATION_FILE = "location"
# libpq passfile holding the superuser's password, in DIR (and, as root with the data in a
# private folder under /var/tmp, a copy there, so a new clone at the same path finds it again).
PASSFILE = "pgpass"
# The password file initdb reads, in the cluster's home while initdb runs, then removed.
INITDB_PWFILE = "initdb-pwfile"
# sun_path holds 108 bytes with the terminating NUL; a longer socket path is fatal at start.
MAX_SOCKET_PATH = 107

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


def _owner() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError as exc:
        raise LocalDbError(
            "running as root needs the 'postgres' system user to own the cluster: "
            "apt-get install postgresql-15 creates it"
        ) from exc


def _owner_can_enter(folder: Path) -> bool:
    """Whether the postgres user can reach `folder` and search it (every parent included)."""
    proc = subprocess.run(["runuser", "-u", SUPERUSER, "--", "test", "-x", str(folder)],
                          capture_output=True, check=False)
    return proc.returncode == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_file(data_root: Path) -> Path:
    return data_root / "port"


def _external_home(data_root: Path) -> Path:
    digest = hashlib.sha256(str(data_root).encode()).hexdigest()[:12]
    return EXTERNAL_PARENT / f"ipintel-pg-{os.geteuid()}-{digest}"


def cluster_home(data_root: Path = DEFAULT_DIR) -> Path:
    """Folder holding the cluster's data/, server.log and socket: `data_root` itself, or the
    private folder its `location` file names."""
    data_root = data_root.resolve()
    pointer = data_root / LOCATION_FILE
    if not pointer.exists():
        return data_root
    home = Path(pointer.read_text().strip())
    # Only ever a folder this module makes: `destroy` runs rm -r on it, maybe as root.
    if home.parent != EXTERNAL_PARENT or not EXTERNAL_NAME.fullmatch(home.name):
        raise LocalDbError(f"{pointer} names {home}, not a folder made by {PROG}")
    return home


def _private_folder(home: Path, owner: pwd.struct_passwd) -> None:
    """Create `home` (mode 0700, owned by postgres), or check that the one there is: a real
    folder, not a link, that no other user made first in the world-writable parent."""
    try:
        os.mkdir(home, 0o700)
        os.chown(home, owner.pw_uid, owner.pw_gid, follow_symlinks=False)
    except FileExistsError:
        pass
    st = os.lstat(home)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != owner.pw_uid or st.st_mode & 0o077:
        raise LocalDbError(f"{home} exists but is not a private folder of the {SUPERUSER} user; "
                           "remove it, then start again")


def passfile(data_root: Path = DEFAULT_DIR) -> Path:
    """The libpq passfile of the cluster in `data_root` (absolute; it may not exist)."""
    return data_root.resolve() / PASSFILE


def _write_private(path: Path, text: str, owner: pwd.struct_passwd | None = None) -> None:
    """Write `path` with mode 0600 from its creation on (a new file, swapped in by rename),
    owned by `owner` when given (we are root), else by us."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, owner.pw_uid, owner.pw_gid)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _hba_trusts(pgdata: Path) -> bool:
    """Whether pg_hba.conf lets some connection in without a password (a cluster initdb made
    with --auth=trust, before clusters were private)."""
    try:
        lines = (pgdata / "pg_hba.conf").read_text().splitlines()
    except OSError:
        return False
    return any(line.split("#", 1)[0].split()[-1:] == ["trust"] for line in lines)


def url(data_root: Path = DEFAULT_DIR, dbname: str = DEFAULT_DBNAME) -> str:
    """libpq URI of the cluster in `data_root` (it must have been started once). It names the
    passfile holding the password, never the password; none for a cluster made with trust."""
    port_file = _port_file(data_root)
    if not port_file.exists():
        raise LocalDbError(f"no local cluster in {data_root}: run `make db` first")
    port = int(port_file.read_text().strip())
    uri = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{urllib.parse.quote(dbname, safe='')}"
    pgpass = passfile(data_root)
    if pgpass.exists():
        uri += "?passfile=" + urllib.parse.quote(str(pgpass), safe="/")
    return uri


def is_running(data_root: Path = DEFAULT_DIR) -> bool:
    pgdata = cluster_home(data_root) / "data"
    if not (pgdata / "PG_VERSION").exists():
        return False
    proc = _run_as_owner([str(pg_bindir() / "pg_ctl"), "status", "-D", str(pgdata)], check=False)
    return proc.returncode == 0


def _running_port(pgdata: Path) -> int:
    """The port of the server running on `pgdata` (line 4 of postmaster.pid)."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return int(lines[3])


def start(data_root: Path = DEFAULT_DIR, *, fast: bool = False, dbname: str = DEFAULT_DBNAME) -> str:
    """Create (first time) and start the cluster; create `dbname`; return its URI. Idempotent."""
    data_root = data_root.resolve()
    bindir = pg_bindir()
    data_root.mkdir(parents=True, exist_ok=True)
    home = cluster_home(data_root)
    if os.geteuid() == 0:
        owner = _owner()
        if (home == data_root and not (data_root / "data").exists()
                and not _owner_can_enter(data_root.parent)):
            home = _external_home(data_root)
        if home == data_root:
            os.chown(data_root, owner.pw_uid, owner.pw_gid)
        else:
            _private_folder(home, owner)
            (data_root / LOCATION_FILE).write_text(f"{home}\n")
    pgdata = home / "data"
    if not (pgdata / "PG_VERSION").exists():
        _initdb(bindir, data_root, home)
    _check_authentication(data_root, home, pgdata)
    if is_running(data_root):
        if not _port_file(data_root).exists():
            # A server left running by an earlier clone at this same path (its data lives in the
            # same private folder): adopt it, on the port postmaster.pid records.
            _port_file(data_root).write_text(f"{_running_port(pgdata)}\n")
        return url(data_root, dbname)
    port = _free_port()
    # No socket rather than a fatal start when the folder's path is too deep for one: every
    # client here uses TCP, and pg_ctl -w watches postmaster.pid, not the socket.
    sockets = str(home) if len(f"{home}/.s.PGSQL.{port}") <= MAX_SOCKET_PATH else "''"
    options = [
        "-c", f"port={port}",
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={sockets}",
        "-c", "max_connections=60",
        "-c", "shared_buffers=256MB",
        "-c", "max_wal_size=4GB",
    ]
    if fast:
        for key, value in FAST_SETTINGS.items():
            options += ["-c", f"{key}={value}"]
    _run_as_owner(
        [str(bindir / "pg_ctl"), "start", "-D", str(pgdata), "-w", "-t", "60",
         "-l", str(home / "server.log"), "-o", " ".join(options)]
    )
    # Written by us (root or not) after the server is up, read by url().
    _port_file(data_root).write_text(f"{port}\n")
    pgpass = passfile(data_root)
    _ensure_database(port, dbname, pgpass if pgpass.exists() else None)
    return url(data_root, dbname)


def _initdb(bindir: Path, data_root: Path, home: Path) -> None:
    """A new cluster whose superuser has a random password, written to the passfile only."""
    owner = _owner() if os.geteuid() == 0 else None
    password = secrets.token_urlsafe(32)  # [A-Za-z0-9_-]: nothing to escape in a passfile
    # initdb reads it as the user it runs as (postgres, when we are root): in the cluster's
    # home, which is that user's, mode 0600, and gone once initdb is done.
    pwfile = home / INITDB_PWFILE
    _write_private(pwfile, password + "\n", owner)
    try:
        _run_as_owner(
            [str(bindir / "initdb"), "-D", str(home / "data"), "-U", SUPERUSER,
             "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
             "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"]
        )
    finally:
        pwfile.unlink(missing_ok=True)
    line = f"*:*:*:{SUPERUSER}:{password}\n"
    _write_private(passfile(data_root), line)
    if home != data_root:
        # Root's copy in postgres's private folder: a clone at the same path adopts the server
        # (see start) and needs the password with it. destroy removes it with the folder.
        _write_private(home / PASSFILE, line)


def _check_authentication(data_root: Path, home: Path, pgdata: Path) -> None:
    """Warn about a cluster made with trust; bring back or miss the passfile of one made with scram."""
    pgpass = passfile(data_root)
    if pgpass.exists():
        return
    if _hba_trusts(pgdata):
        print(f"{PROG}: warning: the cluster in {data_root} was created with trust "
              "authentication, any local user can connect: `make clean` and start again to make "
              "it private", file=sys.stderr)
        return
    saved = home / PASSFILE
    if home != data_root and saved.exists():
        _write_private(pgpass, saved.read_text())
        return
    raise LocalDbError(f"{pgpass} is missing: without it nobody can connect to the cluster in "
                       f"{data_root}; `make clean` and start again")


def _ensure_database(port: int, dbname: str, pgpass: Path | None) -> None:
    import psycopg  # imported here so `stop` works without the driver installed
    from psycopg import sql

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg.connect(
                host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", autocommit=True,
                passfile=str(pgpass) if pgpass else None,  # None: left out of the conninfo
            )
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        # Two administrative statements on the maintenance database, before the target exists:
        # this helper is not the loader, whose statements are named queries of its package.
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %(dbname)s::name",
                              {"dbname": dbname}).fetchone()
        if not exists:
            # CREATE DATABASE takes no parameter: the name goes in as a quoted identifier.
            conn.execute(sql.SQL("CREATE DATABASE {dbname}").format(dbname=sql.Identifier(dbname)))


def stop(data_root: Path = DEFAULT_DIR) -> bool:
    """Stop the cluster if it runs. Returns whether it was running."""
    data_root = data_root.resolve()
    if not is_running(data_root):
        return False
    pgdata = cluster_home(data_root) / "data"
    _run_as_owner([str(pg_bindir() / "pg_ctl"), "stop", "-D", str(pgdata), "-m", "fast", "-w"])
    return True


def destroy(data_root: Path = DEFAULT_DIR) -> list[Path]:
    """Stop the cluster, then remove its data (wherever `location` says) and `data_root`.
    Returns the folders removed."""
    data_root = data_root.resolve()
    if not data_root.exists():
        return []
    home = cluster_home(data_root)
    stop(data_root)
    removed = []
    if home != data_root and os.path.lexists(home):
        if os.path.islink(home) or not home.is_dir():
            raise LocalDbError(f"{home} is not a folder; left alone")
        shutil.rmtree(home)
        removed.append(home)
    shutil.rmtree(data_root)
    removed.append(data_root)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "url", "destroy"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="cluster folder (default: %(default)s)")
    parser.add_argument("--dbname", default=DEFAULT_DBNAME)
    parser.add_argument("--fast", action="store_true", help="fsync off: for test clusters")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            print(start(args.dir, fast=args.fast, dbname=args.dbname))
        elif args.action == "stop":
            print("stopped" if stop(args.dir) else "not running", file=sys.stderr)
        elif args.action == "destroy":
            removed = destroy(args.dir)
            print("removed " + ", ".join(map(str, removed)) if removed else f"no local cluster in {args.dir}",
                  file=sys.stderr)
        else:
            print(url(args.dir, args.dbname))
    except LocalDbError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
