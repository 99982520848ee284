"""What the fault tests share: the installed `ipintel` as a process, a database cloned per case, a
fingerprint of everything ipintel keeps, the server restarted under a run, and the suite's counts.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from devtools import localdb
from tests.conftest import PgServer
from tests.test_cli_errors import subprocess_env

# The console script pip installed beside this Python: the CLI an operator runs.
IPINTEL = Path(sys.executable).with_name("ipintel")


@dataclass
class Stats:
    """What the suite did, printed at its end (tests/faults/conftest.py)."""

    kills: Counter[str] = field(default_factory=Counter)  # SIGKILLs of a live process, per command
    kills_in_work: Counter[str] = field(default_factory=Counter)  # ... after its first progress line
    kills_mid_run: Counter[str] = field(default_factory=Counter)  # ... that left a run row 'running'
    restarts: int = 0  # PostgreSQL restarted under a run
    fault_cases: int = 0  # remote-service faults and timeouts played through the CLI
    convergences: int = 0  # databases compared with a clean run's
    rows_compared: int = 0  # rows in those comparisons

    def any(self) -> bool:
        return bool(self.kills or self.restarts or self.fault_cases or self.convergences)

    def lines(self) -> list[str]:
        kills = ", ".join(f"{cmd} {n} ({self.kills_in_work[cmd]} after work began, "
                          f"{self.kills_mid_run[cmd]} leaving a run row 'running')"
                          for cmd, n in sorted(self.kills.items())) or "none"
        return [f"kill points (SIGKILL): {sum(self.kills.values())}: {kills}",
                f"PostgreSQL restarts under a run: {self.restarts}",
                f"fault cases (remote services, timeouts, concurrency): {self.fault_cases}",
                f"converged to a clean run: {self.convergences} databases, {self.rows_compared:,} rows compared"]


STATS = Stats()


def env_for(dsn: str, **settings: str) -> dict[str, str]:
    """The CLI's environment: this database, `settings`, nothing else of ipintel's from the shell."""
    return subprocess_env(dsn, **settings)


@dataclass(frozen=True)
class Finished:
    code: int
    out: str
    err: str
    seconds: float


def run(args: Sequence[str], env: dict[str, str], cwd: Path, *, timeout: float) -> Finished:
    """`ipintel args...` to its end; a run still going after `timeout` seconds fails the test."""
    started = time.monotonic()
    try:
        proc = subprocess.run([str(IPINTEL), *args], env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"ipintel {' '.join(args)} still running after {timeout:g}s (it must never hang): "
                    f"{exc.stderr!r}")
    return Finished(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def start(args: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(IPINTEL), *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def error_line(err: str, command: str) -> str:
    """The one error line a failed run printed (progress lines may come before it), never a traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(("ipintel", "Traceback"))]
    assert len(lines) == 1 and lines[0].startswith(f"ipintel {command}: "), err
    return lines[0]


@contextmanager
def database(pg_server: PgServer, template: str) -> Iterator[str]:
    """A fresh clone of `template`, dropped afterwards."""
    name = f"ipintel_fault_{uuid.uuid4().hex[:10]}"
    with pg_server.janitor(name, template=template):
        yield pg_server.dsn(name)


def query(dsn: str, text: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(text, params).fetchall()


def execute(dsn: str, text: str, params: Any = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(text, params)


# Everything ipintel keeps, without the clocks (write, fetch and run times differ from run to
# run) and without run/batch ids. Per table: its row count and an md5 over its rows, sorted.
FINGERPRINT = {
    "session_summaries": """
        SELECT session_id, sensor, first_event_at, last_event_at, protocol, source_ip, src_port, dst_ip,
               dst_port, duration_seconds, client_version, hassh, login_attempts, login_successes, command_count,
               download_count, event_count, snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner,
               d.document AS snapshot_enrichment, snapshot_asn_source, snapshot_country_source,
               snapshot_ip_type_source, snapshot_is_scanner_source, snapshot_complete_at IS NOT NULL AS complete
        FROM ipintel.session_summaries s
        LEFT JOIN ipintel.enrichment_documents d ON d.document_id = s.snapshot_document""",
    "ip_inventory": """
        SELECT ip, first_seen, last_seen, session_count, enrichment, current_asn, ip_family, is_bogon,
               geo_country, is_scanner, is_riot, ip_type FROM ipintel.ip_inventory""",
    "asn_inventory": """
        SELECT asn, as_name, as_country, rir, allocated, first_seen, last_seen, ip_count, session_count, sources
        FROM ipintel.asn_inventory""",
    "ip_asn_history": "SELECT ip, asn, source, upper_inf(valid) AS current FROM ipintel.ip_asn_history",
    "enrichment_state": "SELECT ip, source, build FROM ipintel.enrichment_state",
    "open_failures": """
        SELECT ip, source, error, retryable FROM ipintel.enrichment_failures WHERE resolved_at IS NULL""",
    "ingest_files": """
        SELECT fingerprint, fingerprint_bytes, path, bytes_ingested, lines_ingested, finished
        FROM ipintel.ingest_files""",
    "ingest_rejects": "SELECT path, line_no, reason, detail, excerpt FROM ipintel.ingest_rejects",
    # Nothing half-done is left behind: staging is empty, no run is marked running.
    "staging": """
        SELECT 'cowrie_events' AS t, count(*) FROM ipintel_staging.cowrie_events
        UNION ALL SELECT 'cowrie_sessions', count(*) FROM ipintel_staging.cowrie_sessions
        UNION ALL SELECT 'cowrie_rejects', count(*) FROM ipintel_staging.cowrie_rejects
        UNION ALL SELECT 'enrichment_results', count(*) FROM ipintel_staging.enrichment_results
        UNION ALL SELECT 'enrichment_failures', count(*) FROM ipintel_staging.enrichment_failures""",
    "runs_left_running": """
        SELECT 'ingest' AS t, count(*) FROM ipintel.ingest_runs WHERE status = 'running'
        UNION ALL SELECT 'enrich', count(*) FROM ipintel.enrichment_runs WHERE status = 'running'""",
    "totals": """
        SELECT count(*) AS sessions, sum(event_count) AS events, sum(login_attempts) AS logins,
               sum(login_successes) AS login_successes, sum(command_count) AS commands,
               sum(download_count) AS downloads,
               (SELECT sum(session_count) FROM ipintel.ip_inventory) AS ip_session_count
        FROM ipintel.session_summaries""",
}


def fingerprint(dsn: str) -> dict[str, tuple[int, str]]:
    """(rows, md5 of the rows' text in sorted order) per entry of FINGERPRINT."""
    prints: dict[str, tuple[int, str]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, rows in FINGERPRINT.items():
            row = conn.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM ({}) t"
            ).format(sql.SQL(rows))).fetchone()
            assert row is not None
            prints[name] = (int(row[0]), str(row[1]))
    return prints


def assert_converged(dsn: str, clean: dict[str, tuple[int, str]], what: str) -> None:
    """The database holds exactly what the clean run left: every table, row for row."""
    got = fingerprint(dsn)
    differ = sorted(name for name in clean if got[name] != clean[name])
    assert not differ, f"{what}: not the clean run's data in {differ}: {[(got[n], clean[n]) for n in differ]}"
    STATS.convergences += 1
    STATS.rows_compared += sum(rows for rows, _ in got.values())


def wait_for_no_loader(dsn: str, timeout: float = 30.0) -> None:
    """Until the backends of a killed ipintel have noticed and ended (its advisory lock goes with them)."""
    deadline = time.monotonic() + timeout
    while query(dsn, "SELECT pid FROM pg_stat_activity WHERE application_name = 'ipintel' "
                     "AND datname = current_database()"):
        assert time.monotonic() < deadline, "the killed ipintel's backends did not end"
        time.sleep(0.05)


def restart_server(dsn: str) -> float:
    """`pg_ctl restart -m fast` of the server behind `dsn` (ours: we are its superuser on this
    machine), as the user owning its data; returns the seconds it took."""
    (row,) = query(dsn, "SELECT current_setting('data_directory') AS data")
    data = Path(row["data"])
    owner = pwd.getpwuid(data.stat().st_uid).pw_name
    command = [str(localdb.pg_bindir() / "pg_ctl"), "restart", "-D", str(data), "-m", "fast", "-w", "-t", "60",
               "-l", str(data.parent / "server.log")]  # -l: the new server must not hold our pipes
    if os.geteuid() == 0 and owner != "root":
        command = ["runuser", "-u", owner, "--", *command]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    STATS.restarts += 1
    return time.monotonic() - started
