"""devtools.localdb, the development cluster, in a folder the postgres user cannot enter (a clone
in /root, mode 0700).

As root the server runs as postgres, so the data, log and socket must go to a private folder of
postgres outside the project, named by DIR/location; as another user it all stays in DIR.
Through the command line, as `make db` / `make db-stop` / `make clean` use it. The cluster is
private: scram authentication, the password only in DIR/pgpass (0600), never printed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from devtools import localdb

ROOT = Path(__file__).resolve().parents[1]  # where `python -m devtools.localdb` runs, as make does


def _localdb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devtools.localdb", *args],
                          capture_output=True, text=True, timeout=90, check=False, cwd=ROOT)


def _settings(uri: str) -> tuple[str, str]:
    with psycopg.connect(uri, connect_timeout=10) as conn:
        row = conn.execute("SELECT current_setting('data_directory'), "
                           "current_setting('unix_socket_directories')").fetchone()
    assert row is not None
    return row[0], row[1]


def _uri(data_root: Path, dbname: str = "ipintel") -> str:
    port = int((data_root / "port").read_text())
    return f"postgresql://postgres@127.0.0.1:{port}/{dbname}?passfile={data_root.resolve() / 'pgpass'}"


def _password(data_root: Path) -> str:
    line = (data_root / "pgpass").read_text().strip()
    assert line.startswith("*:*:*:postgres:")
    return line.split(":", 4)[4]


def _needs_server() -> None:
    try:
        localdb.pg_bindir()
    except localdb.LocalDbError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def private_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    return folder


def test_cluster_in_a_folder_postgres_cannot_enter(private_dir: Path) -> None:
    try:
        localdb.pg_bindir()
    except localdb.LocalDbError as exc:
        pytest.skip(str(exc))
    as_root = os.geteuid() == 0
    data_root = private_dir / ".ipintel-pg"
    arg = ["--dir", str(data_root)]
    try:
        started = _localdb("start", *arg, "--fast")
        assert started.returncode == 0, started.stderr
        uri = started.stdout.strip()
        assert uri == _uri(data_root)
        assert _localdb("url", *arg).stdout.strip() == uri
        # The password: in a 0600 passfile of ours, never on the terminal.
        pgpass = (data_root / "pgpass").lstat()
        assert stat.S_IMODE(pgpass.st_mode) == 0o600 and pgpass.st_uid == os.geteuid()
        password = _password(data_root)
        assert len(password) >= 40
        assert password not in started.stdout + started.stderr
        assert "warning" not in started.stderr

        home = localdb.cluster_home(data_root)
        assert not (home / localdb.INITDB_PWFILE).exists()
        if as_root:
            # Only the pointer, the port and the passfile stay in the project; the rest is
            # postgres's, private.
            assert sorted(p.name for p in data_root.iterdir()) == ["location", "pgpass", "port"]
            assert home.parent == Path("/var/tmp")
            assert localdb.EXTERNAL_NAME.fullmatch(home.name)
            st = home.lstat()
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
            assert st.st_uid == pwd.getpwnam("postgres").pw_uid
        else:
            assert home == data_root.resolve()
            assert not (data_root / "location").exists()
        assert _settings(uri) == (str(home / "data"), str(home))

        # Idempotent while running; after a stop, the next start follows the pointer to the
        # same data (no second initdb) and records the new port.
        assert _localdb("start", *arg, "--fast").stdout.strip() == uri
        stopped = _localdb("stop", *arg)
        assert stopped.returncode == 0 and "stopped" in stopped.stderr
        assert not localdb.is_running(data_root)
        restarted = _localdb("start", *arg, "--fast")
        assert restarted.returncode == 0, restarted.stderr
        assert localdb.cluster_home(data_root) == home
        assert restarted.stdout.strip() == _uri(data_root)
        assert password not in restarted.stdout + restarted.stderr
        assert _settings(restarted.stdout.strip())[0] == str(home / "data")
    finally:
        destroyed = _localdb("destroy", *arg)
    assert destroyed.returncode == 0, destroyed.stderr
    assert not os.path.lexists(home)
    assert not data_root.exists()
    assert private_dir.exists()
    again = _localdb("destroy", *arg)
    assert again.returncode == 0 and "no local cluster" in again.stderr


def test_pointer_to_a_foreign_folder_is_refused(private_dir: Path) -> None:
    """destroy removes what `location` names, maybe as root: only folders localdb makes."""
    data_root = private_dir / ".ipintel-pg"
    data_root.mkdir()
    victim = private_dir / "precious"
    victim.mkdir()
    (data_root / "location").write_text(f"{victim}\n")
    with pytest.raises(localdb.LocalDbError, match="not a folder made by devtools.localdb"):
        localdb.destroy(data_root)
    refused = _localdb("destroy", "--dir", str(data_root))
    assert refused.returncode == 2 and "not a folder made by devtools.localdb" in refused.stderr
    assert victim.is_dir() and data_root.is_dir()


def test_a_clone_at_the_same_path_adopts_the_server_an_earlier_clone_left_running(private_dir: Path) -> None:
    """rm -rf of a clone leaves its server running (as root, in the private folder under
    /var/tmp named after the path); a new clone at that path must use it, not fail."""
    try:
        localdb.pg_bindir()
    except localdb.LocalDbError as exc:
        pytest.skip(str(exc))
    data_root = private_dir / ".ipintel-pg"
    try:
        first = localdb.start(data_root, fast=True)
        (data_root / "port").unlink()  # what a fresh clone's .ipintel-pg lacks
        assert localdb.start(data_root, fast=True) == first
        assert _localdb("url", "--dir", str(data_root)).stdout.strip() == first
        if localdb.cluster_home(data_root) != data_root.resolve():
            # As root, the data in /var/tmp: a fresh clone lacks the passfile too, and gets it
            # back from the private folder.
            (data_root / "port").unlink()
            (data_root / "pgpass").unlink()
            assert localdb.start(data_root, fast=True) == first
            assert stat.S_IMODE((data_root / "pgpass").stat().st_mode) == 0o600
        with psycopg.connect(first, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        localdb.destroy(data_root)


def _psql_as_nobody(uri: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGCONNECT_TIMEOUT": "5", "HOME": "/nonexistent"}
    return subprocess.run(["runuser", "-u", "nobody", "--", psql, "-X", "-w", "--dbname", uri, "-c", "select 1"],
                          capture_output=True, text=True, timeout=30, env=env, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="runuser (to try as another local user) needs root")
def test_another_local_user_cannot_connect(private_dir: Path) -> None:
    """Issue 14: no other local account can connect, not even knowing where the passfile is."""
    _needs_server()
    data_root = private_dir / ".ipintel-pg"
    try:
        uri = localdb.start(data_root, fast=True, dbname="postgres")
        port = int((data_root / "port").read_text())
        # The owner (this process) connects, with the URI as printed.
        with psycopg.connect(uri, connect_timeout=10) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        # Another account: no password (no trust any more), a wrong one, or the printed URI,
        # whose passfile it cannot read. Each is an authentication failure, not a timeout.
        server = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        for attempt, expected in [
            (server, "no password supplied"),
            (server.replace("postgres@", "postgres:guess@"), "password authentication failed"),
            (uri, "no password supplied"),
        ]:
            refused = _psql_as_nobody(attempt)
            assert refused.returncode != 0 and refused.stdout == "", (attempt, refused.stdout)
            assert expected in refused.stderr, (attempt, refused.stderr)
    finally:
        localdb.destroy(data_root)


def test_a_trust_cluster_from_before_keeps_working_with_a_warning(private_dir: Path) -> None:
    """A cluster initdb made with --auth=trust (no passfile): usable, but start says so."""
    _needs_server()
    data_root = private_dir / ".ipintel-pg"
    try:
        uri = localdb.start(data_root, fast=True)
        home = localdb.cluster_home(data_root)
        localdb.stop(data_root)
        hba = home / "data" / "pg_hba.conf"
        hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
        (data_root / "pgpass").unlink()
        (home / "pgpass").unlink(missing_ok=True)
        started = _localdb("start", "--dir", str(data_root), "--fast")
        assert started.returncode == 0, started.stderr
        uri = started.stdout.strip()
        assert "passfile" not in uri
        warnings = [line for line in started.stderr.splitlines() if "trust" in line]
        assert len(warnings) == 1 and "make clean" in warnings[0], started.stderr
        with psycopg.connect(uri, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        localdb.destroy(data_root)


def test_a_missing_passfile_is_named(private_dir: Path) -> None:
    _needs_server()
    data_root = private_dir / ".ipintel-pg"
    try:
        localdb.start(data_root, fast=True)
        home = localdb.cluster_home(data_root)
        (data_root / "pgpass").unlink()
        (home / "pgpass").unlink(missing_ok=True)
        refused = _localdb("start", "--dir", str(data_root), "--fast")
        assert refused.returncode == 2 and "pgpass is missing" in refused.stderr
    finally:
        localdb.destroy(data_root)
