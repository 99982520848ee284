"""The container path, where a Docker engine answers: the tests' PostgreSQL built from
docker/postgres.Dockerfile by testcontainers, and the compose file's db service coming up
healthy. Without an engine the module is skipped, in one line giving the reason devtools.backend
found (the harness asks the engine once per process).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from devtools import backend
from ipintel import schema
from tests.test_compose_file import compose_plugin

ROOT = Path(__file__).resolve().parents[1]

_NO_ENGINE = backend.engine_problem_once()
if _NO_ENGINE is not None:
    pytest.skip(_NO_ENGINE, allow_module_level=True)


@pytest.fixture(scope="module")
def container_uri() -> Iterator[str]:
    with backend.server(backend.Choice("container")) as uri:
        yield uri


def test_the_container_is_postgresql_15_with_the_extensions_and_migrates(container_uri: str) -> None:
    assert "password" not in conninfo_to_dict(container_uri)  # in its passfile, as the local cluster's
    with psycopg.connect(container_uri, autocommit=True) as conn:
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        available = {row[0] for row in conn.execute("SELECT name FROM pg_available_extensions")}
        assert conn.execute("SELECT current_setting('fsync')").fetchone() == ("off",)
        name = f"ipintel_tc_{uuid.uuid4().hex[:8]}"
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    assert version is not None and version[0] // 10000 == 15
    assert {"btree_gist", "ip4r", "pgtap", "plpgsql_check"} <= available
    target = make_conninfo(container_uri, dbname=name)
    schema.upgrade(target)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION plpgsql_check")
        assert conn.execute("SELECT count(*) FROM ipintel.ip_inventory").fetchone() == (0,)


def _compose(project: str, compose_file: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "compose", "-p", project, "-f", str(compose_file), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_the_compose_database_comes_up_healthy_with_its_roles(tmp_path: Path) -> None:
    if not compose_plugin():
        pytest.skip("the docker compose plugin is not installed")
    # A copy with secrets of its own (readable by the image's postgres user, as the recipe at the
    # top of compose.yaml makes them), under a project name of its own: nothing of an operator's.
    copy = tmp_path / "docker"
    shutil.copytree(ROOT / "docker", copy, ignore=shutil.ignore_patterns("secrets"))
    (copy / "secrets").mkdir()
    compose = yaml.safe_load((copy / "compose.yaml").read_text())
    for entry in compose["secrets"].values():
        (copy / entry["file"]).write_text(secrets.token_urlsafe(24))
    project = f"ipintel-test-{uuid.uuid4().hex[:8]}"
    try:
        up = _compose(project, copy / "compose.yaml", "up", "--detach", "--wait", "--wait-timeout", "300", "db")
        assert up.returncode == 0, up.stderr
        roles = _compose(project, copy / "compose.yaml", "exec", "-T", "db", "psql", "-U", "ipintel", "-d",
                         "ipintel", "-XAtc", "SELECT rolname FROM pg_roles WHERE rolname LIKE 'ipintel_%' ORDER BY 1",
                         timeout=60)
        assert roles.returncode == 0, roles.stderr
        assert roles.stdout.split() == ["ipintel_cron", "ipintel_loader", "ipintel_owner", "ipintel_reader"]
    finally:
        _compose(project, copy / "compose.yaml", "down", "--volumes", "--rmi", "local", timeout=300)
