"""devtools.backend: which PostgreSQL the tests run on, without Docker.

The choice is tested with the engine check replaced at its boundary (a function returning None,
"the engine answers", or the reason it does not); the engine check itself against sockets that
behave like no engine, a silent one and an answering one (DOCKER_HOST); and the two ways the
choice is used, `python -m devtools.backend run` (make test, tests/run_pgtap.sh) and pytest's
own start (tests/conftest.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_httpserver import HTTPServer
from testcontainers.core.config import testcontainers_config

from devtools import backend, localdb

ROOT = Path(__file__).resolve().parents[1]
NO_ENGINE = "no Docker engine answers at unix:///nowhere/docker.sock (fake)"
MISSING_SOCKET = "unix:///nonexistent/docker.sock"


class FakeEngine:
    """The engine check: `answer` None (an engine answers) or the reason none does; counts calls."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        return self.answer


@pytest.mark.parametrize(("env", "engine", "kind"), [
    ({}, None, "container"),
    ({}, NO_ENGINE, "local"),
    ({"IPINTEL_TEST_BACKEND": "container"}, None, "container"),
    ({"IPINTEL_TEST_BACKEND": "local"}, None, "local"),
    ({"IPINTEL_TEST_BACKEND": "local"}, NO_ENGINE, "local"),
    ({"IPINTEL_TEST_DSN": "postgresql://u@db.example/x"}, None, "dsn"),
    ({"IPINTEL_TEST_DSN": "postgresql://u@db.example/x"}, NO_ENGINE, "dsn"),
    # make test: devtools.backend hands its server to pytest in IPINTEL_TEST_DSN, whatever was forced
    ({"IPINTEL_TEST_DSN": "postgresql://u@db.example/x", "IPINTEL_TEST_BACKEND": "container"}, NO_ENGINE, "dsn"),
    ({"IPINTEL_TEST_DSN": "postgresql://u@db.example/x", "IPINTEL_TEST_BACKEND": "local"}, None, "dsn"),
    # set but empty is unset (`IPINTEL_TEST_DSN= make test`)
    ({"IPINTEL_TEST_DSN": "", "IPINTEL_TEST_BACKEND": ""}, None, "container"),
    ({"IPINTEL_TEST_DSN": " ", "IPINTEL_TEST_BACKEND": ""}, NO_ENGINE, "local"),
])
def test_choice_follows_the_order(env: dict[str, str], engine: str | None, kind: str) -> None:
    assert backend.choose(env, FakeEngine(engine)).kind == kind


def test_a_dsn_is_used_as_given_and_the_engine_is_not_asked() -> None:
    engine = FakeEngine(None)
    choice = backend.choose({"IPINTEL_TEST_DSN": "postgresql://u@db.example:5433/x"}, engine)
    assert choice.dsn == "postgresql://u@db.example:5433/x"
    assert engine.calls == 0


def test_forcing_local_does_not_ask_the_engine_and_says_so() -> None:
    engine = FakeEngine(None)
    choice = backend.choose({"IPINTEL_TEST_BACKEND": "local"}, engine)
    assert engine.calls == 0
    assert choice.why_not_container == "IPINTEL_TEST_BACKEND=local"
    assert "container path skipped: IPINTEL_TEST_BACKEND=local" in choice.describe()


def test_without_an_engine_the_local_cluster_says_why() -> None:
    choice = backend.choose({}, FakeEngine(NO_ENGINE))
    assert choice.describe() == ("PostgreSQL for the tests: the local cluster (devtools/localdb.py); "
                                 f"container path skipped: {NO_ENGINE}")


def test_forcing_a_container_without_an_engine_fails_in_one_line() -> None:
    with pytest.raises(backend.BackendError) as caught:
        backend.choose({"IPINTEL_TEST_BACKEND": "container"}, FakeEngine(NO_ENGINE))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"IPINTEL_TEST_BACKEND=container, but {NO_ENGINE}")


@pytest.mark.parametrize("env", [
    {"IPINTEL_TEST_BACKEND": "docker"},
    {"IPINTEL_TEST_BACKEND": "Container"},
    {"IPINTEL_TEST_BACKEND": "docker", "IPINTEL_TEST_DSN": "postgresql://u@db.example/x"},
])
def test_an_unknown_backend_is_refused_even_beside_a_dsn(env: dict[str, str]) -> None:
    with pytest.raises(backend.BackendError, match=r"IPINTEL_TEST_BACKEND is '\w+': it must be local or container"):
        backend.choose(env, FakeEngine(None))


def test_the_dsn_line_never_shows_a_password() -> None:
    line = backend.Choice("dsn", dsn="postgresql://alice:s3cr3t-pw@db.example:5433/x").describe()
    assert line == "PostgreSQL for the tests: the server IPINTEL_TEST_DSN names (alice@db.example:5433/x)"
    keyword = backend.Choice("dsn", dsn="host=db.example user=alice password=s3cr3t-pw dbname=x").describe()
    assert "s3cr3t-pw" not in keyword


# --- the engine check, at DOCKER_HOST ------------------------------------------------------------

@pytest.fixture
def docker_host(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """`use(url)`: DOCKER_HOST is url, and a ~/.testcontainers.properties `tc.host` cannot win."""
    monkeypatch.setattr(testcontainers_config, "tc_properties", {})

    def use(url: str) -> None:
        monkeypatch.setenv("DOCKER_HOST", url)
    return use


def test_no_socket_means_no_engine_at_once(docker_host: Callable[[str], None]) -> None:
    docker_host(MISSING_SOCKET)
    started = time.monotonic()
    problem = backend.engine_problem(timeout=2)
    assert time.monotonic() - started < 2
    assert problem is not None and problem.startswith(f"no Docker engine answers at {MISSING_SOCKET} (")
    assert "\n" not in problem


@pytest.fixture
def silent_host() -> Iterator[str]:
    """A TCP address that accepts connections and never answers (a hung engine, a firewall)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"


def test_a_silent_engine_does_not_hang_the_check(docker_host: Callable[[str], None], silent_host: str) -> None:
    docker_host(silent_host)
    started = time.monotonic()
    problem = backend.engine_problem(timeout=1)
    assert time.monotonic() - started < 4
    assert problem is not None and problem.startswith(f"no Docker engine answers at {silent_host} (")


def test_an_engine_answering_at_docker_host_is_found(docker_host: Callable[[str], None],
                                                     httpserver: HTTPServer) -> None:
    # The two requests of docker's client: the API version, then the ping.
    httpserver.expect_request("/version").respond_with_json({"ApiVersion": "1.44", "Version": "25.0.0"})
    httpserver.expect_request("/v1.44/_ping").respond_with_data("OK")
    docker_host(f"tcp://127.0.0.1:{httpserver.port}")
    assert backend.engine_problem(timeout=2) is None
    assert any(request.path == "/v1.44/_ping" for request, _ in httpserver.log)


def test_an_engine_gone_before_the_build_is_one_line(docker_host: Callable[[str], None]) -> None:
    # The container path up to its first call to the engine: the engine answered the check, then
    # went away.
    docker_host(MISSING_SOCKET)
    with pytest.raises(backend.BackendError) as caught, backend.server(backend.Choice("container")):
        pytest.fail("no server without an engine")
    assert str(caught.value).startswith("could not build docker/postgres.Dockerfile: ")
    assert "\n" not in str(caught.value)


# --- python -m devtools.backend run ----------------------------------------------------------------

def _env(**settings: str) -> dict[str, str]:
    """This environment without the tests' own choice (make test sets IPINTEL_TEST_DSN), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in (backend.DSN_VAR, backend.BACKEND_VAR)}
    return env | settings


def _run(*command: str, env: dict[str, str], local_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "devtools.backend", "run"]
    if local_dir is not None:
        args += ["--local-dir", str(local_dir)]
    return subprocess.run([*args, "--", *command], capture_output=True, text=True, timeout=120, check=False,
                          cwd=ROOT, env=env)


def test_run_hands_the_dsn_to_the_command_and_returns_its_exit_code() -> None:
    proc = _run("sh", "-c", 'printf %s "$IPINTEL_TEST_DSN"; exit 7',
                env=_env(IPINTEL_TEST_DSN="postgresql://alice:pw@db.example:5433/x"))
    assert proc.returncode == 7
    assert proc.stdout == "postgresql://alice:pw@db.example:5433/x"
    assert proc.stderr == ("devtools.backend: PostgreSQL for the tests: the server IPINTEL_TEST_DSN names "
                           "(alice@db.example:5433/x)\n")


def test_run_forced_container_without_an_engine_is_one_line_and_exit_2(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    proc = _run("touch", str(ran), env=_env(IPINTEL_TEST_BACKEND="container", DOCKER_HOST=MISSING_SOCKET))
    assert proc.returncode == 2
    assert proc.stderr.startswith("devtools.backend: IPINTEL_TEST_BACKEND=container, but no Docker engine "
                                  f"answers at {MISSING_SOCKET} (")
    assert proc.stderr.count("\n") == 1
    assert not ran.exists()


def test_run_pgtap_without_a_dsn_goes_through_the_same_choice() -> None:
    proc = subprocess.run([str(ROOT / "tests" / "run_pgtap.sh")], capture_output=True, text=True, timeout=60,
                          check=False, env=_env(IPINTEL_TEST_BACKEND="container", DOCKER_HOST=MISSING_SOCKET,
                                                PYTHON=sys.executable))
    assert proc.returncode == 2
    assert proc.stderr.startswith("devtools.backend: IPINTEL_TEST_BACKEND=container, but no Docker engine")


def _needs_server() -> None:
    try:
        localdb.pg_bindir()
    except localdb.LocalDbError as exc:
        pytest.skip(str(exc))


_SELECT_ONE = "import os, psycopg; print(psycopg.connect(os.environ['IPINTEL_TEST_DSN']).execute('SELECT 1').fetchone())"


def test_run_on_the_local_cluster_stops_it_and_keeps_its_folder(tmp_path: Path) -> None:
    _needs_server()
    folder = tmp_path / "pg"
    proc = _run(sys.executable, "-c", _SELECT_ONE, env=_env(IPINTEL_TEST_BACKEND="local"), local_dir=folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "(1,)\n"
    assert ("devtools.backend: PostgreSQL for the tests: the local cluster (devtools/localdb.py); "
            "container path skipped: IPINTEL_TEST_BACKEND=local\n") in proc.stderr
    assert not localdb.is_running(folder)
    assert (folder / "pgpass").exists()
    localdb.destroy(folder)


def test_run_on_a_temporary_local_cluster_removes_it() -> None:
    _needs_server()
    proc = _run(sys.executable, "-c", "import os; print(os.environ['IPINTEL_TEST_DSN'])",
                env=_env(IPINTEL_TEST_BACKEND="local"))
    assert proc.returncode == 0, proc.stderr
    passfile = Path(psycopg.conninfo.conninfo_to_dict(proc.stdout.strip())["passfile"])
    assert passfile.name == "pgpass"
    assert not passfile.parent.exists()


# --- pytest's own start (tests/conftest.py) --------------------------------------------------------

def _pytest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], capture_output=True,
                          text=True, timeout=120, check=False, cwd=ROOT, env=env)


def test_pytest_says_once_which_server_it_uses() -> None:
    proc = _pytest("--collect-only", "tests/test_backend.py", env=_env(IPINTEL_TEST_BACKEND="local"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = ("PostgreSQL for the tests: the local cluster (devtools/localdb.py); "
            "container path skipped: IPINTEL_TEST_BACKEND=local")
    assert proc.stdout.count(line) == 1


def test_pytest_forced_container_without_an_engine_stops_before_any_test() -> None:
    # one test of this file that needs no server (a run of the whole file would start this one again)
    proc = _pytest("tests/test_backend.py::test_the_dsn_line_never_shows_a_password",
                   env=_env(IPINTEL_TEST_BACKEND="container", DOCKER_HOST=MISSING_SOCKET))
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert proc.stderr.startswith("ERROR: IPINTEL_TEST_BACKEND=container, but no Docker engine answers at "
                                  f"{MISSING_SOCKET} (")
    assert proc.stderr.strip().count("\n") == 0
    assert "passed" not in proc.stdout
