"""Errors a user can act on: every failure of `ipintel` is one line naming what is wrong, with the
documented exit code (README: 0 done, 1 recorded failures or a database error mid-run, 2 bad usage
or configuration, 3 locked, 130 interrupted), never a Python traceback and never a secret.

Real PostgreSQL (the per-test databases of conftest.py), real .mmdb files written by mmdb-writer,
the fake GreyNoise over real sockets, and a real `ipintel` subprocess for SIGTERM.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from psycopg.rows import dict_row

from ipintel import __version__, cli, db as ipdb, passes, schema
from tests.fakes.greynoise_server import GreyNoiseFake, Reply, greynoise_fake  # noqa: F401
from tests.mmdb_factory import asn_record, city_record, write_asn_db, write_city_db

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HEAD = schema.head_revision()
MIGRATE_HINT = "run `ipintel migrate` (or `make migrate`)"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def one_line(text: str) -> str:
    """The single line a failure prints (and proof that it is one line, without a traceback)."""
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def last_line(text: str) -> str:
    """The line a failure ends with, after the progress lines of a pass (on stderr off a terminal)."""
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert all(line.endswith((" items)", ": started")) for line in lines[:-1]), text
    return lines[-1]


def query(dsn: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def execute(dsn: str, sql: str, params: Any = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql, params)


def seed_ips(dsn: str, ips: Sequence[str], *, asn: int | None = None) -> None:
    """ip_inventory rows (newest first in list order) with one session each."""
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for n, ip in enumerate(ips):
            seen = now - timedelta(minutes=n + 1)
            conn.execute("INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count, current_asn) "
                         "VALUES (%s, %s, %s, 1, %s)", (ip, seen - timedelta(hours=1), seen, asn))
            conn.execute("INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, "
                         "protocol, source_ip, login_attempts, login_successes, event_count) "
                         "VALUES (%s, 'hp-test', %s, %s, 'ssh', %s, 1, 1, 3)",
                         (f"s{n:04d}", seen - timedelta(hours=1), seen, ip))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """argparse refuses `argv`: exit 2 and the one line it printed."""
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    return one_line(capsys.readouterr().err)


def subprocess_env(dsn: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IPINTEL_", "PG"))}
    env |= {"DATABASE_URL": dsn, "COLUMNS": "200", **settings,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "loader"), env.get("PYTHONPATH")]))}
    return env


# --------------------------------------------------------------------------------------------
# Schema version: never migrated, behind, unknown; `ipintel migrate`
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["ingest", "PATH"], ["enrich"], ["status"], ["report"], ["routing", "load", "PATH"]],
                         ids=["ingest", "enrich", "status", "report", "routing"])
def test_unmigrated_database_says_run_ipintel_migrate(
        argv: list[str], empty_db: str, cli_database: Callable[[str], None], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(empty_db)
    (tmp_path / "cowrie.json").write_text("")
    argv = [str(tmp_path / "cowrie.json") if a == "PATH" else a for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert one_line(err) == (f"ipintel {argv[0]}: database schema is not migrated (no ipintel_alembic_version "
                             f"table), this ipintel needs revision {HEAD}: {MIGRATE_HINT}")
    # Nothing was created behind the user's back.
    assert query(empty_db, "SELECT to_regnamespace('ipintel') IS NULL AS none")[0]["none"]


def test_database_behind_names_both_revisions_and_migrate_brings_it_to_head(
        empty_db: str, cli_database: Callable[[str], None], capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(empty_db)
    schema.upgrade(empty_db, "0010")
    capsys.readouterr()  # alembic's progress lines
    code, _, err = run(["status"], capsys)
    assert code == 2
    assert one_line(err) == f"ipintel status: database schema is at revision 0010, this ipintel needs {HEAD}: {MIGRATE_HINT}"

    code, out, _ = run(["migrate"], capsys)
    assert code == 0
    assert one_line(out) == f"database schema is at revision {HEAD} (head)"
    assert query(empty_db, "SELECT version_num FROM ipintel_alembic_version") == [{"version_num": HEAD}]
    code, out, err = run(["status"], capsys)
    assert code == 0 and "coverage per source" in out


def test_database_from_a_newer_ipintel_is_refused_and_not_touched(
        db: str, cli_database: Callable[[str], None], capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    execute(db, "UPDATE ipintel_alembic_version SET version_num = '9999'")
    ahead = (f"database schema is at revision 9999, newer than this ipintel knows (ipintel {__version__} ships "
             f"revisions up to {HEAD}; a newer ipintel migrated it): upgrade ipintel")
    for argv in (["report"], ["migrate"]):
        code, _, err = run(argv, capsys)
        assert (code, one_line(err)) == (2, f"ipintel {argv[0]}: {ahead}")
    code, out, _ = run(["migrate", "--status"], capsys)
    assert code == 2
    assert out.splitlines() == ["database revision: 9999", f"ipintel {__version__} head: {HEAD}",
                                "ahead: a newer ipintel migrated this database: upgrade ipintel"]
    assert query(db, "SELECT version_num FROM ipintel_alembic_version") == [{"version_num": "9999"}]


def test_migrate_status_says_where_the_database_is_and_exits_0_only_at_head(
        empty_db: str, cli_database: Callable[[str], None], capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(empty_db)
    code, out, err = run(["migrate", "--status"], capsys)
    revisions = len(list(schema.script_directory().walk_revisions()))
    assert (code, err) == (2, "")
    assert out.splitlines() == ["database revision: none (never migrated)", f"ipintel {__version__} head: {HEAD}",
                                f"not migrated: {revisions} revisions to apply: {MIGRATE_HINT}"]
    schema.upgrade(empty_db, "0017")
    code, out, _ = run(["migrate", "--status"], capsys)
    assert code == 2
    assert out.splitlines()[0] == "database revision: 0017"
    pending = revisions - 17
    assert out.splitlines()[2] == f"behind: {pending} revision{'' if pending == 1 else 's'} to apply: {MIGRATE_HINT}"
    assert query(empty_db, "SELECT version_num FROM ipintel_alembic_version") == [{"version_num": "0017"}]
    assert run(["migrate"], capsys)[0] == 0
    code, out, _ = run(["migrate", "--status"], capsys)
    assert (code, out.splitlines()[2]) == (0, "up to date")


def test_migrate_to_a_revision_goes_there_and_never_back(
        empty_db: str, cli_database: Callable[[str], None], capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(empty_db)
    code, out, err = run(["migrate", "--to", "0010"], capsys)
    assert code == 0
    assert one_line(out) == f"database schema is at revision 0010 (this ipintel's head is {HEAD})"
    # One progress line per revision applied, each naming it.
    assert err.splitlines()[0].startswith("Running upgrade  -> 0001, ")
    assert err.splitlines()[-1].startswith("Running upgrade 0009 -> 0010, ") and len(err.splitlines()) == 10
    code, _, err = run(["migrate", "--to", "0005"], capsys)
    assert (code, one_line(err)) == (2, "ipintel migrate: database schema is at revision 0010, past 0005: ipintel "
                                        "migrate only upgrades; to go back, run `alembic downgrade 0005` from a "
                                        "checkout of ipintel")
    code, _, err = run(["migrate", "--to", "0999"], capsys)
    assert (code, one_line(err)) == (2, f"ipintel migrate: no revision 0999 in this ipintel (it ships 0001 to {HEAD})")
    assert query(empty_db, "SELECT version_num FROM ipintel_alembic_version") == [{"version_num": "0010"}]
    assert usage_error(["migrate", "--status", "--sql"], capsys) == (
        "ipintel migrate: argument --sql: not allowed with argument --status (see ipintel migrate --help)")
    code, _, err = run(["migrate", "--status", "--to", "0011"], capsys)
    assert (code, one_line(err)) == (2, "ipintel migrate: --status shows where the database is; it takes no --to")


def test_migrate_sql_prints_the_upgrade_and_touches_nothing(
        empty_db: str, cli_database: Callable[[str], None], capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(empty_db)
    code, out, err = run(["migrate", "--sql", "--to", "0002"], capsys)
    assert (code, err) == (0, "")
    assert "CREATE TABLE ipintel_alembic_version" in out
    assert "-- From migrations/versions/0001_tiers.upgrade.sql" in out
    assert "-- Running upgrade 0001 -> 0002" in out and "-- Running upgrade 0002 -> 0003" not in out
    assert query(empty_db, "SELECT to_regclass('ipintel_alembic_version') IS NULL AS none")[0]["none"]


def test_version_names_the_package_and_its_schema_head(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert one_line(capsys.readouterr().out) == f"ipintel {__version__} (schema revision {HEAD})"


def test_sql_and_migrations_are_found_in_the_package_from_any_folder(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """importlib.resources finds them (links in a checkout, files in a wheel: tests/smoke_wheel.sh),
    wherever ipintel runs; an install without them says so in one line."""
    package = importlib.resources.files("ipintel")
    assert schema.migrations_dir() == package.joinpath("migrations")
    assert schema.sql_dir() == package.joinpath("sql", "schema")
    assert [p.name for p in schema.sql_files()] == sorted(p.name for p in (PROJECT_ROOT / "sql").glob("*.sql"))
    cli_database(db)  # the working directory is an empty folder
    assert run(["status"], capsys)[0] == 0
    monkeypatch.setattr(schema, "MIGRATIONS_RESOURCE", ("no-such-folder",))
    code, _, err = run(["status"], capsys)
    assert (code, one_line(err).split(" (")[0]) == (
        2, "ipintel status: this ipintel is incomplete: its package has no no-such-folder folder")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 2
    assert one_line(capsys.readouterr().err).endswith("; reinstall ipintel")


def test_make_targets_for_every_day_neither_install_nor_migrate() -> None:
    dry = subprocess.run(["make", "-n", "enrich", "status", "report", "ingest", "LOGS=x"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, check=True, env={**os.environ, "DATABASE_URL": "x"}).stdout
    assert "ipintel enrich" in dry and "ipintel status" in dry and "ipintel report" in dry and "ipintel ingest" in dry
    for forbidden in ("alembic", "apt-get", "dpkg", "pip ", "migrate"):
        assert forbidden not in dry, forbidden
    migrate = subprocess.run(["make", "-n", "migrate"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             check=True, env={**os.environ, "DATABASE_URL": "x"}).stdout
    assert "ipintel migrate" in migrate


# --------------------------------------------------------------------------------------------
# Bad usage and bad configuration: exit 2 before anything is fetched or spent
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "message"), [
    (["report", "--top", "-1"], "ipintel report: argument --top: must be at least 1, not '-1'"),
    (["report", "--top", "ten"], "ipintel report: argument --top: not a whole number: 'ten'"),
    (["enrich", "--limit", "-5"], "ipintel enrich: argument --limit: must be at least 1, not '-5'"),
    (["enrich", "--ip", "not-an-ip"], "ipintel enrich: argument --ip: not an IP address: 'not-an-ip'"),
    (["status", "--runs", "0"], "ipintel status: argument --runs: must be at least 1, not '0'"),
    (["ingest", "--chunk-lines", "0", "x"], "ipintel ingest: argument --chunk-lines: must be at least 1, not '0'"),
], ids=["top-negative", "top-word", "limit-negative", "ip", "runs-zero", "chunk-zero"])
def test_bad_option_values_are_one_line_and_exit_2(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(argv, capsys) == f"{message} (see ipintel {argv[0]} --help)"


def test_report_window_must_not_be_empty(db: str, cli_database: Callable[[str], None],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    code, _, err = run(["report", "--since", "2026-02-01", "--until", "2026-01-01"], capsys)
    assert (code, one_line(err)) == (2, "ipintel report: --since 2026-02-01 is not before --until 2026-01-01")


def test_source_must_be_registered_and_a_new_row_is_accepted(db: str, cli_database: Callable[[str], None],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--source takes the registry's names (ipintel.enrichment_policy), not a list in the code."""
    cli_database(db)
    code, _, err = run(["enrich", "--source", "shodan"], capsys)
    assert (code, one_line(err)) == (
        2, "ipintel enrich: unknown source shodan (registered in ipintel.enrichment_policy: maxmind, ipinfo, dbip, cymru, greynoise, "
           "dshield)")
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO ipintel.enrichment_policy (source, ttl, kind, pass_order, facts_function) "
                     "VALUES ('shodan', '1 day', 'remote_service', 5, 'ipintel.shodan_facts')")
    code, _, err = run(["enrich", "--source", "shodan"], capsys)
    assert (code, one_line(err)) == (2, "ipintel enrich: source shodan is registered but this ipintel has no pass for it")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("IPINTEL_CYMRU_ADDR", "garbage", "IPINTEL_CYMRU_ADDR must be host:port (an IPv6 address as [addr]:port), "
                                      "not 'garbage'"),
    ("IPINTEL_CYMRU_ADDR", "whois.cymru.com:99999", "IPINTEL_CYMRU_ADDR must be host:port"),
    ("IPINTEL_CYMRU_BATCH_SIZE", "2", "IPINTEL_CYMRU_BATCH_SIZE must be between 3 and 10000, not '2'"),
    ("IPINTEL_CYMRU_BATCH_SIZE", "1", "IPINTEL_CYMRU_BATCH_SIZE must be between 3 and 10000, not '1'"),
    ("IPINTEL_CYMRU_BATCH_SIZE", "1000000", "IPINTEL_CYMRU_BATCH_SIZE must be between 3 and 10000"),
    ("IPINTEL_CYMRU_CONCURRENCY", "50", "IPINTEL_CYMRU_CONCURRENCY must be between 1 and 4, not '50'"),
    ("IPINTEL_GREYNOISE_RATE", "nan", "IPINTEL_GREYNOISE_RATE must be positive, not 'nan'"),
    ("IPINTEL_GREYNOISE_RATE", "inf", "IPINTEL_GREYNOISE_RATE must be positive, not 'inf'"),
    ("IPINTEL_GREYNOISE_RATE", "1e6", "IPINTEL_GREYNOISE_RATE must be positive and at most 100, not '1e6'"),
    ("IPINTEL_GREYNOISE_DAILY_BUDGET", "-1", "IPINTEL_GREYNOISE_DAILY_BUDGET must be positive, not '-1'"),
    ("IPINTEL_GREYNOISE_URL", "api.greynoise.io", "IPINTEL_GREYNOISE_URL is not an http(s) base URL "
                                                  "(no http:// or https:// scheme): 'api.greynoise.io'"),
    ("IPINTEL_GREYNOISE_URL", "https://", "IPINTEL_GREYNOISE_URL is not an http(s) base URL (no host)"),
    ("IPINTEL_DSHIELD_URL", "isc.sans.edu", "IPINTEL_DSHIELD_URL is not an http(s) base URL "
                                            "(no http:// or https:// scheme): 'isc.sans.edu'"),
    ("IPINTEL_DSHIELD_CONTACT", "nobody", "IPINTEL_DSHIELD_CONTACT is not a contact (it must be an e-mail address "
                                          "or an http(s) URL where SANS ISC can reach you): 'nobody'"),
    ("IPINTEL_DSHIELD_CONTACT", "ops@example.org (Ops)", "IPINTEL_DSHIELD_CONTACT is not a contact (it must be 3 to "
                                                         "200 printable ASCII characters, without parentheses"),
    ("IPINTEL_DSHIELD_RATE", "20", "IPINTEL_DSHIELD_RATE must be positive and at most 10, not '20'"),
    ("IPINTEL_DSHIELD_DAILY_BUDGET", "0", "IPINTEL_DSHIELD_DAILY_BUDGET must be positive, not '0'"),
    ("DATABASE_URL", "garbage", "DATABASE_URL is not a libpq connection URI or key=value string: "
                                "missing \"=\" after \"garbage\" in connection info string"),
], ids=lambda v: v if len(v) < 30 else None)
def test_bad_settings_are_one_line_naming_the_setting(
        name: str, value: str, message: str, db: str, cli_database: Callable[[str], None],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    monkeypatch.setenv(name, value)
    code, _, err = run(["enrich"], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"ipintel: configuration: {message}"), line
    assert query(db, "SELECT count(*) AS n FROM ipintel.enrichment_runs")[0]["n"] == 0


def test_greynoise_url_that_is_not_a_url_spends_no_budget(
        db: str, cli_database: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    seed_ips(db, [f"185.100.87.{n}" for n in range(1, 6)])
    monkeypatch.setenv("IPINTEL_GREYNOISE_KEY", "gn-key-not-for-output-31337")
    monkeypatch.setenv("IPINTEL_GREYNOISE_URL", "not a url")
    code, out, err = run(["enrich", "--source", "greynoise"], capsys)
    assert code == 2
    assert one_line(err) == ("ipintel: configuration: IPINTEL_GREYNOISE_URL is not an http(s) base URL "
                             "(no http:// or https:// scheme): 'not a url'")
    assert query(db, "SELECT * FROM ipintel.api_budget") == []
    assert query(db, "SELECT * FROM ipintel.enrichment_runs") == []
    assert "gn-key-not-for-output-31337" not in out + err


def test_without_a_database_url_it_says_what_to_set(
        cli_database: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An installed ipintel has no default database (the development cluster is not in the
    package): no DATABASE_URL, empty or absent, and no database_url in ipintel.toml is one line
    and exit 2, before anything connects."""
    cli_database("unused")
    expected = ("ipintel: configuration: DATABASE_URL is not set: set it to the libpq URI of the database "
                "(e.g. postgresql://ipintel@db.example/ipintel), or database_url in ipintel.toml")
    monkeypatch.delenv("DATABASE_URL")
    for argv in (["status"], ["migrate"], ["ingest", str(tmp_path)]):
        code, out, err = run(argv, capsys)
        assert (code, out, one_line(err)) == (2, "", expected), argv
    monkeypatch.setenv("DATABASE_URL", "")
    (tmp_path / "ipintel.toml").write_text('geoip_dir = "/srv/GeoIP"\n')
    code, out, err = run(["status"], capsys)
    assert (code, out, one_line(err)) == (2, "", expected)


@pytest.mark.parametrize("dsn", ["postgresql://ipintel:hunt%zzer@127.0.0.1/ipintel",
                                 "postgresql://ipintel:hunter2secret@[127.0.0.1/ipintel"])
def test_a_malformed_database_url_never_shows_its_password(
        dsn: str, cli_database: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database("unused")
    monkeypatch.setenv("DATABASE_URL", dsn)
    code, out, err = run(["status"], capsys)
    line = one_line(err)
    assert code == 2 and line.startswith("ipintel: configuration: DATABASE_URL is not a libpq connection URI")
    for secret in ("hunt%zzer", "hunt", "hunter2secret"):
        assert secret not in out + err
    assert "***" in line


def test_unreachable_database_is_one_line_without_the_password(
        cli_database: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database("unused")
    monkeypatch.setenv("DATABASE_URL", "postgresql://ipintel:pw-31337@127.0.0.1:1/ipintel?connect_timeout=3")
    code, out, err = run(["status"], capsys)
    line = one_line(err)
    assert code == 2 and line.startswith("ipintel status: cannot connect to the database: connection to server at "
                                         '"127.0.0.1", port 1 failed'), line
    assert "pw-31337" not in out + err


# --------------------------------------------------------------------------------------------
# Attacker-influenced text is printed as written, never read as rich markup
# --------------------------------------------------------------------------------------------
MARKUP = "EVIL[/]NET [bold red]x[/bold red] :smile: [link=http://a]b[/link]"


def test_markup_in_as_names_errors_and_messages_prints_literally(
        db: str, cli_database: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    monkeypatch.setattr(cli.console, "width", 400)  # no cell cut short
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64500, %s)", (MARKUP,))
    seed_ips(db, ["185.100.87.1"], asn=64500)
    with psycopg.connect(db, autocommit=True) as conn:
        run_id = conn.execute("INSERT INTO ipintel.enrichment_runs (source, status, message, finished_at) "
                              "VALUES ('cymru', 'finished_with_failures', %s, now()) RETURNING run_id",
                              (f"[/] {MARKUP}",)).fetchone()[0]  # type: ignore[index]  # RETURNING: one row
        conn.execute("INSERT INTO ipintel.enrichment_failures (run_id, source, ip, error) "
                     "VALUES (%s, 'cymru', '185.100.87.1', %s)", (run_id, "[/]"))

    code, out, err = run(["report"], capsys)
    assert code == 0 and err == ""
    assert f"│ {MARKUP} │" in out

    code, out, err = run(["status", "--runs", "1"], capsys)
    assert code == 0, err
    assert f"│ [/] {MARKUP} │" in out  # the run's message
    assert "│ [/]" in out  # the latest error of the open failure


def test_markup_in_rejected_log_lines_prints_literally(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    log = tmp_path / "cowrie.json"
    log.write_text(
        json.dumps({"eventid": "cowrie.login.failed", "timestamp": "2026-01-01T00:00:00Z", "session": "a1",
                    "src_ip": "[/]"}) + "\n"
        + json.dumps({"eventid": "[bold]x[/]", "timestamp": "2026-01-01T00:00:01Z", "session": "a1",
                      "src_ip": "185.100.87.1"}) + "\n")
    code, out, err = run(["ingest", str(log)], capsys)
    assert code == 1  # one rejected line
    assert "src_ip '[/]' is not an IP address" in err
    assert "[bold]x[/]=1" in out


# --------------------------------------------------------------------------------------------
# MaxMind files that cannot answer, or are broken
# --------------------------------------------------------------------------------------------
def test_ipv6_address_in_an_ipv4_only_database_is_not_applicable(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    geoip = tmp_path / "geoip"
    geoip.mkdir()
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-City", languages=["en"], description="IPv4 only")
    writer.insert_network(IPSet(["1.2.3.0/24"]), city_record("US", "Mountain View"))
    writer.to_db_file(str(geoip / "GeoLite2-City.mmdb"))
    write_asn_db(geoip / "GeoLite2-ASN.mmdb", {"1.2.0.0/16": asn_record(15169, "GOOGLE"),
                                                "2a01:4f8::/32": asn_record(24940, "Hetzner Online GmbH")})
    monkeypatch.setenv("IPINTEL_GEOIP_DIR", str(geoip))
    seed_ips(db, ["1.2.3.4", "2a01:4f8::1"])

    code, out, err = run(["enrich", "--source", "maxmind"], capsys)
    assert code == 0, err
    docs = {r["ip"]: r["doc"] for r in query(db, "SELECT host(ip) AS ip, enrichment->'maxmind' AS doc "
                                                 "FROM ipintel.ip_inventory")}
    assert (docs["1.2.3.4"]["country"], docs["1.2.3.4"]["asn"]) == ("US", 15169)
    # The City file cannot answer for IPv6: no location; the ASN file (IPv6) still answers.
    v6 = docs["2a01:4f8::1"]
    assert (v6["found"], v6["country"], v6["network"], v6["asn"]) == (True, None, None, 24940)
    assert query(db, "SELECT status FROM ipintel.enrichment_runs") == [{"status": "succeeded"}]


def test_build_epoch_out_of_range_is_bad_configuration(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    geoip = tmp_path / "geoip"
    geoip.mkdir()
    city = write_city_db(geoip / "GeoLite2-City.mmdb", {"1.2.3.0/24": city_record("US")}, build_epoch=2**64 - 1)
    monkeypatch.setenv("IPINTEL_GEOIP_DIR", str(geoip))
    seed_ips(db, ["1.2.3.4"])
    code, _, err = run(["enrich", "--source", "maxmind"], capsys)
    assert code == 2
    assert last_line(err) == (f"ipintel enrich: {city} has an impossible build time (build_epoch {2**64 - 1}); "
                             "the file is damaged or not a MaxMind build: fetch it again with geoipupdate")


# --------------------------------------------------------------------------------------------
# Database errors: each its own line; configuration 2, mid-run 1
# --------------------------------------------------------------------------------------------
def _real_error(dsn: str, statements: Sequence[str]) -> psycopg.Error:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            for statement in statements:
                conn.execute(statement)
        except psycopg.Error as exc:
            return exc
    raise AssertionError("no error")


def test_describe_error_names_timeouts_and_conflicts(db: str) -> None:
    timeout = _real_error(db, ["SET statement_timeout = '50ms'", "SELECT pg_sleep(2)"])
    assert ipdb.describe_error(timeout).startswith("statement timeout: a query ran longer than statement_timeout")

    execute(db, "CREATE TABLE public.t (id int PRIMARY KEY, v int); INSERT INTO public.t VALUES (1, 0), (2, 0)")
    with psycopg.connect(db) as holder:
        holder.execute("UPDATE public.t SET v = 1 WHERE id = 1")
        locked = _real_error(db, ["SET lock_timeout = '50ms'", "UPDATE public.t SET v = 2 WHERE id = 1"])
        holder.rollback()
    assert ipdb.describe_error(locked).startswith("lock timeout: another session held a lock longer than lock_timeout")

    # Serialization failure: a repeatable-read transaction updates a row changed since it began.
    with psycopg.connect(db) as first, psycopg.connect(db, autocommit=True) as second:
        first.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        first.execute("SELECT * FROM public.t")
        second.execute("UPDATE public.t SET v = 3 WHERE id = 2")
        with pytest.raises(psycopg.errors.SerializationFailure) as serial:
            first.execute("UPDATE public.t SET v = 4 WHERE id = 2")
    assert ipdb.describe_error(serial.value).startswith("serialization failure: a concurrent transaction changed")

    # Deadlock: each holds one row and wants the other's.
    with psycopg.connect(db) as a, psycopg.connect(db) as b:
        a.execute("UPDATE public.t SET v = 5 WHERE id = 1")
        b.execute("UPDATE public.t SET v = 5 WHERE id = 2")
        caught: list[BaseException] = []

        def a_wants_2() -> None:
            try:
                a.execute("UPDATE public.t SET v = 6 WHERE id = 2")
            except psycopg.Error as exc:
                caught.append(exc)

        thread = threading.Thread(target=a_wants_2)
        thread.start()
        time.sleep(0.2)
        try:
            b.execute("UPDATE public.t SET v = 6 WHERE id = 1")
        except psycopg.Error as exc:
            caught.append(exc)
        thread.join(10)
    (deadlock,) = caught
    assert isinstance(deadlock, psycopg.errors.DeadlockDetected)
    line = ipdb.describe_error(deadlock)
    assert line.startswith("deadlock detected: another session locked the same rows") and "run again" in line
    for exc in (timeout, locked, serial.value, deadlock):
        assert not ipdb.is_configuration_error(exc)


@pytest.mark.parametrize(("setting", "message"), [
    ("lock_timeout", "ipintel report: lock timeout: another session held a lock longer than lock_timeout allows"),
    ("statement_timeout", "ipintel report: statement timeout: a query ran longer than statement_timeout allows"),
])
def test_timeouts_mid_run_are_one_line_and_exit_1(
        setting: str, message: str, db: str, cli_database: Callable[[str], None],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    monkeypatch.setenv("PGOPTIONS", f"-c {setting}=200")  # libpq passes it to the server
    with psycopg.connect(db) as holder:
        holder.execute("LOCK TABLE ipintel.session_summaries IN ACCESS EXCLUSIVE MODE")
        code, _, err = run(["report"], capsys)
    assert code == 1
    line = one_line(err)
    assert line.startswith(message) and line.endswith("run again when it is released"
                                                      if setting == "lock_timeout"
                                                      else "or raise statement_timeout for this role"), line


def test_connection_lost_mid_run_says_so_and_the_next_run_resumes(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    geoip = tmp_path / "geoip"
    geoip.mkdir()
    write_city_db(geoip / "GeoLite2-City.mmdb", {"1.2.3.0/24": city_record("US")})
    monkeypatch.setenv("IPINTEL_GEOIP_DIR", str(geoip))
    seed_ips(db, ["1.2.3.4", "1.2.3.5"])
    original = passes.MaxMindPass.fetch

    def server_goes_away(self: passes.MaxMindPass, ips: list[str], batches: Any) -> str | None:
        # An administrator (or a failover) ends every ipintel session while the pass runs.
        with psycopg.connect(db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND application_name = 'ipintel'")
        return original(self, ips, batches)

    monkeypatch.setattr(passes.MaxMindPass, "fetch", server_goes_away)
    code, _, err = run(["enrich", "--source", "maxmind"], capsys)
    assert code == 1
    line = last_line(err)
    assert line.startswith("ipintel enrich: lost the connection to the database (") and \
        line.endswith("what was committed is kept, the next run resumes"), line

    monkeypatch.setattr(passes.MaxMindPass, "fetch", original)
    code, _, err = run(["enrich", "--source", "maxmind"], capsys)
    assert code == 0, err
    statuses = [r["status"] for r in query(db, "SELECT status FROM ipintel.enrichment_runs ORDER BY run_id")]
    assert statuses == ["interrupted", "succeeded"]
    assert query(db, "SELECT count(*) AS n FROM ipintel.ip_inventory WHERE enrichment ? 'maxmind'")[0]["n"] == 2


# --------------------------------------------------------------------------------------------
# SIGTERM (systemd stop, timeout): like Ctrl-C
# --------------------------------------------------------------------------------------------
def test_sigterm_marks_the_run_and_the_status_file_interrupted(
        db: str, greynoise_fake: GreyNoiseFake, tmp_path: Path) -> None:
    ips = [f"185.100.87.{n}" for n in range(1, 4)]
    seed_ips(db, ips)
    for ip in ips:
        greynoise_fake.script(ip, Reply(200, delay=30))  # a service that does not answer
    status_file = tmp_path / "enrich.json"
    env = subprocess_env(db, IPINTEL_GREYNOISE_URL=greynoise_fake.url, IPINTEL_GREYNOISE_KEY=greynoise_fake.api_key,
                         IPINTEL_GREYNOISE_RATE="50", IPINTEL_GREYNOISE_DAILY_BUDGET="100")
    proc = subprocess.Popen([sys.executable, "-m", "ipintel.cli", "enrich", "--source", "greynoise",
                             "--status-file", str(status_file)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not greynoise_fake.requests:  # the pass is waiting on its first request
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "enrich never asked GreyNoise"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert last_line(err) == ("ipintel enrich: interrupted (SIGTERM); merged batches are kept, "
                             "the rest stays due")
    doc = json.loads(status_file.read_text())
    assert (doc["state"], doc["exit_code"]) == ("interrupted", 130)
    assert [p["status"] for p in doc["passes"]] == ["interrupted"]
    (run_row,) = query(db, "SELECT status, finished_at, message FROM ipintel.enrichment_runs")
    assert run_row["status"] == "interrupted" and run_row["finished_at"] is not None
    assert run_row["message"] == "interrupted (SIGTERM); merged batches are kept"
    assert query(db, "SELECT count(*) AS n FROM ipintel.ip_inventory WHERE enrichment ? 'greynoise'")[0]["n"] == 0
