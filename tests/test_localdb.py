"""ipintel.localdb in a folder the postgres user cannot enter (a clone in /root, mode 0700).

As root the server runs as postgres, so the data, log and socket must go to a private folder of
postgres outside the project, named by DIR/location; as another user it all stays in DIR.
Through the command line, as `make db` / `make db-stop` / `make clean` use it.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from ipintel import localdb


def _localdb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ipintel.localdb", *args],
                          capture_output=True, text=True, timeout=90, check=False)


def _settings(uri: str) -> tuple[str, str]:
    with psycopg.connect(uri, connect_timeout=10) as conn:
        row = conn.execute("SELECT current_setting('data_directory'), "
                           "current_setting('unix_socket_directories')").fetchone()
    assert row is not None
    return row[0], row[1]


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
        port = int((data_root / "port").read_text())
        assert uri == f"postgresql://postgres@127.0.0.1:{port}/ipintel"
        assert _localdb("url", *arg).stdout.strip() == uri

        home = localdb.cluster_home(data_root)
        if as_root:
            # Only the pointer and the port stay in the project; the rest is postgres's, private.
            assert sorted(p.name for p in data_root.iterdir()) == ["location", "port"]
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
        assert restarted.stdout.strip() == f"postgresql://postgres@127.0.0.1:{(data_root / 'port').read_text().strip()}/ipintel"
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
    with pytest.raises(localdb.LocalDbError, match="not a folder made by ipintel.localdb"):
        localdb.destroy(data_root)
    refused = _localdb("destroy", "--dir", str(data_root))
    assert refused.returncode == 2 and "not a folder made by ipintel.localdb" in refused.stderr
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
    finally:
        localdb.destroy(data_root)
