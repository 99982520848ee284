"""Secrets that stay secret: where an API key may come from, where it may go, and that it shows
up nowhere ipintel writes.

* a key file (IPINTEL_GREYNOISE_KEY_FILE, greynoise_key_file) or an ipintel.toml holding a key
  must be its owner's only; otherwise one line names the file, its mode and `chmod 600 FILE`;
* a key goes over https, or over plain http to this machine only;
* an ipintel.toml merely found in the working directory cannot send the key to another host;
* a sentinel key, used for real against the fake GreyNoise through every fault it can play,
  appears in no output, log line, status file, process title or database row.

Real PostgreSQL, the real CLI (in process and as a subprocess), the fake GreyNoise over real sockets.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from ipintel import cli, config
from ipintel.sources import greynoise
from tests.fakes.greynoise_server import GreyNoiseFake, Reply, greynoise_fake  # noqa: F401
from tests.test_cli_errors import one_line, subprocess_env
from tests.test_enrich_greynoise import V4, seed

SENTINEL = "SENTINEL-KEY-7f3a9c1e5b2d4a60"
KEY_SETTINGS = ("IPINTEL_GREYNOISE_KEY", "IPINTEL_GREYNOISE_KEY_FILE")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean configuration: the test's folder as working directory, no IPINTEL_* from the shell,
    a DATABASE_URL that parses (configuration is refused before anything connects)."""
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("IPINTEL_") and k != "IPINTEL_TEST_DSN"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    return monkeypatch


def key_file(path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)
    return path


def refused(capsys: pytest.CaptureFixture[str]) -> str:
    """`ipintel status` refuses the configuration: exit 2 and the one line it printed."""
    assert cli.main(["status"]) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    return one_line(err)


# --------------------------------------------------------------------------------------------
# Where a key comes from
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610, 0o601, 0o700 | 0o004])
def test_key_file_open_to_group_or_others_is_refused_with_the_chmod_to_run(
        mode: int, env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = key_file(tmp_path / "greynoise.key", SENTINEL + "\n", mode)
    env.setenv("IPINTEL_GREYNOISE_KEY_FILE", str(path))
    assert refused(capsys) == (
        f"ipintel: configuration: IPINTEL_GREYNOISE_KEY_FILE: the key file {path} has mode {mode:04o}: "
        f"group and others must have no access to it; run `chmod 600 {path}`")


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_key_file_is_read_and_its_key_sent(
        mode: int, db: str, greynoise_fake: GreyNoiseFake, cli_database: Callable[[str], None],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cli_database(db)
    seed(db, V4[:1])
    greynoise_fake.api_key = SENTINEL
    path = key_file(tmp_path / "greynoise.key", f"  {SENTINEL}\r\n", mode)
    monkeypatch.setenv("IPINTEL_GREYNOISE_KEY_FILE", str(path))
    monkeypatch.setenv("IPINTEL_GREYNOISE_URL", greynoise_fake.url)
    assert cli.main(["enrich", "--source", "greynoise"]) == 0
    assert [seen.key for seen in greynoise_fake.requests] == [SENTINEL]


@pytest.mark.parametrize(("content", "problem"), [
    ("", "is empty"),
    ("\n \n", "is empty"),
    (f"{SENTINEL} second-word", "is not an API key"),
    (f"{SENTINEL}\nsecond-line", "is not an API key"),
    (f"{SENTINEL}\x00", "is not an API key"),
    (f"{SENTINEL}é", "is not an API key"),
    (b"\xff\xfe" + SENTINEL.encode(), "is not an API key"),
    ("x" * 1025, "is not an API key"),
])
def test_key_file_that_is_no_key_is_one_line_that_does_not_quote_it(
        content: str | bytes, problem: str, env: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = key_file(tmp_path / "greynoise.key", content)
    env.setenv("IPINTEL_GREYNOISE_KEY_FILE", str(path))
    line = refused(capsys)
    assert line.startswith("ipintel: configuration: IPINTEL_GREYNOISE_KEY_FILE: ") and problem in line
    assert str(path) in line
    assert SENTINEL not in line and "second" not in line and "xxxx" not in line


def test_missing_unreadable_or_folder_key_file_is_one_line(
        env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("IPINTEL_GREYNOISE_KEY_FILE", str(tmp_path / "nowhere.key"))
    assert refused(capsys) == (f"ipintel: configuration: IPINTEL_GREYNOISE_KEY_FILE: cannot read "
                               f"{tmp_path / 'nowhere.key'}: No such file or directory")
    env.setenv("IPINTEL_GREYNOISE_KEY_FILE", str(tmp_path))
    assert refused(capsys) == f"ipintel: configuration: IPINTEL_GREYNOISE_KEY_FILE: {tmp_path} is not a regular file"


def test_key_and_key_file_together_are_refused(
        env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("IPINTEL_GREYNOISE_KEY", SENTINEL)
    env.setenv("IPINTEL_GREYNOISE_KEY_FILE", str(key_file(tmp_path / "k", SENTINEL)))
    assert refused(capsys) == ("ipintel: configuration: IPINTEL_GREYNOISE_KEY and IPINTEL_GREYNOISE_KEY_FILE "
                               "are both set: keep one")


@pytest.mark.parametrize("key", [f"{SENTINEL} x", f"{SENTINEL}\n", "\tkey"])
def test_key_in_the_environment_must_be_header_safe(
        key: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("IPINTEL_GREYNOISE_KEY", key)
    line = refused(capsys)
    assert line == ("ipintel: configuration: IPINTEL_GREYNOISE_KEY is not an API key: it must be one line of "
                    "printable ASCII without spaces (at most 1024 characters)")


def test_toml_key_file_is_relative_to_the_toml_and_checked_like_the_variable(
        env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    key_file(etc / "greynoise.key", SENTINEL + "\n")
    (etc / "ipintel.toml").write_text('greynoise_key_file = "greynoise.key"\n')
    env.setenv("IPINTEL_CONFIG", str(etc / "ipintel.toml"))
    assert config.load().greynoise_key == SENTINEL

    (etc / "greynoise.key").chmod(0o644)
    assert refused(capsys) == (
        f"ipintel: configuration: {etc / 'ipintel.toml'}: greynoise_key_file: the key file {etc / 'greynoise.key'} "
        f"has mode 0644: group and others must have no access to it; run `chmod 600 {etc / 'greynoise.key'}`")


def test_toml_holding_a_key_must_be_its_owners_only(
        env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "ipintel.toml"
    toml.write_text(f'greynoise_key = "{SENTINEL}"\n')
    toml.chmod(0o644)
    line = refused(capsys)
    assert line == ("ipintel: configuration: ipintel.toml holds greynoise_key and has mode 0644: group and others "
                    "must have no access to it; run `chmod 600 ipintel.toml` (or move the key to a file named by "
                    "greynoise_key_file)")
    toml.chmod(0o600)
    assert config.load().greynoise_key == SENTINEL
    # The environment still comes first.
    env.setenv("IPINTEL_GREYNOISE_KEY", "other-key")
    assert config.load().greynoise_key == "other-key"


def test_settings_redact_masks_the_key_and_the_database_password() -> None:
    settings = config.Settings(database_url="postgresql://u:pw-123456@h/db", geoip_dir=None, cymru_addr="h:43",
                               greynoise_url="https://api.greynoise.io", greynoise_key=SENTINEL)
    assert settings.redact(f"boom {SENTINEL} at postgresql://u:pw-123456@h/db") == \
        "boom [REDACTED] at postgresql://u:***@h/db"
    assert SENTINEL not in repr(settings)


# --------------------------------------------------------------------------------------------
# Where a key may go
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://api.greynoise.io", "http://192.0.2.7:8080", "http://[2001:db8::1]/"])
def test_key_over_plain_http_to_another_host_is_refused(
        url: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("IPINTEL_GREYNOISE_KEY", SENTINEL)
    env.setenv("IPINTEL_GREYNOISE_URL", url)
    host = url.split("//")[1].rsplit(":", 1)[0].strip("[]/") if "[" not in url else "2001:db8::1"
    assert refused(capsys) == (
        f"ipintel: configuration: IPINTEL_GREYNOISE_URL: plain http to {host}, which is not this machine: "
        "the API key is sent over https only (or over http to 127.0.0.1, ::1 or localhost)")
    # Without a key nothing secret would travel: the same URL is accepted (the pass is skipped).
    env.delenv("IPINTEL_GREYNOISE_KEY")
    assert config.load().greynoise_url == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080",
                                 "https://gn-proxy.example.org"])
def test_https_or_loopback_http_from_the_environment_is_accepted(url: str, env: pytest.MonkeyPatch) -> None:
    env.setenv("IPINTEL_GREYNOISE_KEY", SENTINEL)
    env.setenv("IPINTEL_GREYNOISE_URL", url)
    assert (config.load().greynoise_url, config.load().greynoise_key) == (url, SENTINEL)


def test_toml_found_in_the_working_directory_cannot_send_the_key_elsewhere(
        env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("IPINTEL_GREYNOISE_KEY", SENTINEL)
    (tmp_path / "ipintel.toml").write_text('greynoise_url = "https://collector.example.net"\n')
    assert refused(capsys) == (
        "ipintel: configuration: ipintel.toml (found in the working directory) sets greynoise_url to "
        "collector.example.net, not api.greynoise.io: an ipintel.toml nobody named cannot send the API key to "
        "another host; name it with IPINTEL_CONFIG=ipintel.toml or set IPINTEL_GREYNOISE_URL to accept it")

    # A loopback fake from the same file: refused too (another host, however near).
    (tmp_path / "ipintel.toml").write_text('greynoise_url = "http://127.0.0.1:8080"\n')
    assert "sets greynoise_url to 127.0.0.1, not api.greynoise.io" in refused(capsys)

    # The operator says so: by naming the file, or by the variable (which comes first anyway).
    env.setenv("IPINTEL_CONFIG", "ipintel.toml")
    assert config.load().greynoise_url == "http://127.0.0.1:8080"
    env.delenv("IPINTEL_CONFIG")
    env.setenv("IPINTEL_GREYNOISE_URL", "https://gn-proxy.example.org")
    assert config.load().greynoise_url == "https://gn-proxy.example.org"
    env.delenv("IPINTEL_GREYNOISE_URL")

    # The service's own host (another path, an explicit default port) is no redirection.
    (tmp_path / "ipintel.toml").write_text('greynoise_url = "https://API.greynoise.io:443/"\n')
    assert config.load().greynoise_url == "https://API.greynoise.io:443/"
    # Nor is anything when there is no key to send.
    (tmp_path / "ipintel.toml").write_text('greynoise_url = "https://collector.example.net"\n')
    env.delenv("IPINTEL_GREYNOISE_KEY")
    assert config.load().greynoise_key is None


# --------------------------------------------------------------------------------------------
# The sentinel: used for real through every fault, found nowhere afterwards
# --------------------------------------------------------------------------------------------
def table_dump(dsn: str) -> dict[str, str]:
    """Every row of every table and view in the ipintel schemas, as JSON text, by table."""
    dumps: dict[str, str] = {}
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('ipintel', 'ipintel_staging') ORDER BY 1, 2").fetchall()
        for t in tables:
            rows = conn.execute(sql.SQL("SELECT to_jsonb(t)::text AS row FROM {}.{} t").format(
                sql.Identifier(t["table_schema"]), sql.Identifier(t["table_name"]))).fetchall()
            dumps[f"{t['table_schema']}.{t['table_name']}"] = "\n".join(r["row"] for r in rows)
        dumps["pg_stat_activity"] = "\n".join(str(r) for r in conn.execute(
            "SELECT application_name, query FROM pg_stat_activity").fetchall())
    return dumps


def assert_nowhere(texts: dict[str, str], *keys: str) -> None:
    for where, text in texts.items():
        squeezed = re.sub(r"\s+", "", text)
        for key in keys:
            assert key not in text and key not in squeezed, f"the API key leaked into {where}"


def test_sentinel_key_is_nowhere_after_every_fault(
        db: str, greynoise_fake: GreyNoiseFake, cli_database: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx, httpcore and ipintel at their chattiest
    cli_database(db)
    fake = greynoise_fake
    fake.api_key = SENTINEL
    path = key_file(tmp_path / "greynoise.key", SENTINEL + "\n")
    for name, value in {"IPINTEL_GREYNOISE_KEY_FILE": str(path), "IPINTEL_GREYNOISE_URL": fake.url,
                        "IPINTEL_GREYNOISE_RATE": "100", "IPINTEL_GREYNOISE_DAILY_BUDGET": "1000",
                        "IPINTEL_GREYNOISE_TIMEOUT": "0.5"}.items():
        monkeypatch.setenv(name, value)
    ok, missing, broken, garbage, limited, refused_ip, hangs, drips, moved = V4[:9]
    seed(db, V4[:9])
    fake.script(ok, Reply(200))
    fake.script(broken, Reply(502))  # 5xx for ever: a recorded failure
    fake.script(garbage, Reply(200, raw=b"\x1b[2J[bold]<not json>\x00"))
    fake.script(limited, Reply(429, retry_after="0"), Reply(200))  # rate limited, then answered
    fake.script(refused_ip, Reply(400))
    fake.script(hangs, Reply(hang=True))
    fake.script(drips, Reply(200, drip=0.3))
    fake.script(moved, Reply(301, headers={"Location": f"{fake.url}/elsewhere"}))
    status_file = tmp_path / "status.json"
    texts: dict[str, str] = {}

    def enrich(*args: str) -> int:
        code = cli.main(["enrich", "--source", "greynoise", "--status-file", str(status_file), *args])
        texts[f"status file {len(texts)}"] = status_file.read_text(encoding="utf-8")
        return code

    # 1. Every per-IP fault: recorded failures, exit 1.
    assert enrich() == 1
    errors = {r["ip"]: r["error"] for r in query(db, "SELECT host(ip) AS ip, error FROM ipintel.enrichment_failures")}
    assert set(errors) == {broken, garbage, refused_ip, hangs, drips, moved}, errors
    assert missing not in errors and limited not in errors
    # 2. The quota gone (429 with a day's Retry-After): the pass stops cleanly, exit 0.
    fake.quota, fake.quota_retry_after = 0, "86400"
    assert enrich("--force") == 0
    fake.quota = None
    # 3. The key refused mid-pass (401): exit 2, the message names the setting, not the value.
    fake.script(ok, Reply(401))
    assert enrich("--force", "--ip", ok) == 2
    # 4. A defect whose exception carries the key: the one line and the run row are masked.
    def leaky_run(self: greynoise.GreyNoiseClient, ips: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"boom: sent key {self.settings.api_key}")

    with monkeypatch.context() as patch:
        patch.setattr(greynoise.GreyNoiseClient, "run", leaky_run)
        assert enrich("--force", "--ip", missing) == 1
    assert {seen.key for seen in fake.requests} == {SENTINEL}  # the key did go over the wire
    assert cli.main(["status"]) == 0
    assert cli.main(["report"]) == 0
    out, err = capsys.readouterr()
    assert "unexpected error: RuntimeError: boom: sent key [REDACTED]" in err
    assert "IPINTEL_GREYNOISE_KEY" in " ".join(err.split())
    messages = [r["message"] for r in query(db, "SELECT message FROM ipintel.enrichment_runs ORDER BY run_id")]
    assert messages[-1] == "RuntimeError: boom: sent key [REDACTED]"

    # 5. The installed CLI as a process: its command line and environment block of /proc, and its output.
    fake.script(hangs, Reply(hang=True))
    asked_before = len(fake.requests)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipintel.cli", "enrich", "--source", "greynoise", "--force", "--ip", hangs],
        env=subprocess_env(db, IPINTEL_GREYNOISE_KEY_FILE=str(path), IPINTEL_GREYNOISE_URL=fake.url,
                           IPINTEL_GREYNOISE_TIMEOUT="0.5", IPINTEL_DEBUG="1"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(fake.requests) == asked_before:  # until it waits on GreyNoise, key in hand
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        texts["ps: command line"] = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        texts["ps: environment"] = Path(f"/proc/{proc.pid}/environ").read_bytes().decode(errors="replace")
        texts["ps: process title"] = Path(f"/proc/{proc.pid}/comm").read_text()
        proc_out, proc_err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, proc_err
    texts |= {"subprocess stdout": proc_out, "subprocess stderr": proc_err, "stdout": out, "stderr": err,
              "logs": caplog.text + "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)}
    assert "HTTP Request" in caplog.text  # the loggers did talk
    texts |= table_dump(db)
    assert texts["ipintel.enrichment_runs"] and texts["ipintel.enrichment_failures"]
    assert_nowhere(texts, SENTINEL)


def query(dsn: str, text: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(text).fetchall()
