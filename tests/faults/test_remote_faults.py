"""Every fault switch of the fake Team Cymru and GreyNoise servers, played to the installed CLI with
its production retries and backoff: each run ends within a bound whatever the server does (it
may accept and never answer, or drip a line every 20 s), with the documented exit code, and ends
in right data or in failures recorded in ipintel.enrichment_failures: never a wrong value, never
a traceback, never a hang (every process has a hard timeout).

The cases run side by side (each its own database, fake server and process), so the suite waits
for the slowest case, not for their sum. tests/test_enrich_cymru.py and test_greynoise_client.py
check the same switches in process, with tiny timeouts.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import PgServer
from tests.fakes.cymru_server import Behaviour, FakeCymruServer, running_cymru_server
from tests.fakes.greynoise_server import DEFAULT_API_KEY, GreyNoiseFake, Reply, v3_record
from tests.fakes.http_fake import serving
from tests.faults.harness import STATS, database, env_for, error_line, query, run
from tests.test_enrich_greynoise import seed

CYMRU_IPS = ["185.220.101.1", "185.220.101.2", "185.220.101.3", "45.155.205.4", "45.155.205.5", "2a01:4f8:c17::6"]
CYMRU_ASN = {ip: 64600 + n for n, ip in enumerate(CYMRU_IPS)}
GREYNOISE_IPS = ["185.220.101.7", "45.155.205.8"]
BATCH_TIMEOUT = 2.0  # IPINTEL_CYMRU_BATCH_TIMEOUT for every case
REQUEST_TIMEOUT = 1.0  # IPINTEL_GREYNOISE_TIMEOUT for every case
BOUND = 45.0  # seconds any case may take: the slowest, four attempts cut at their deadline plus backoff


@dataclass(frozen=True)
class Case:
    name: str
    arrange: Callable[[Any], None]  # given the fake server
    code: int  # the exit code
    outcome: str  # "merged": every IP answered; "failed": every IP a recorded failure; "due": untouched, still due
    error: str = ""  # in each failure's text (failed), or in the one error line (exit 2)
    retryable: bool = True
    env: dict[str, str] = field(default_factory=dict)


def cymru_table(**overrides: Any) -> dict[str, Any]:
    return {ip: [(CYMRU_ASN[ip], f"{ip}/{32 if ':' not in ip else 128}", "DE", "ripencc", "2010-01-01",
                  f"AS-{CYMRU_ASN[ip]}, DE")] for ip in CYMRU_IPS} | overrides


def behaviour(default: Behaviour | None = None, first: Behaviour | None = None,
              unknown: str | None = None, drop: str | None = None) -> Callable[[FakeCymruServer], None]:
    def arrange(server: FakeCymruServer) -> None:
        if default is not None:
            server.default = default
        if first is not None:
            server.behaviours.append(first)
        if unknown is not None:
            server.unknown = unknown  # type: ignore[assignment]
        if drop is not None:
            del server.table[drop]
    return arrange


CYMRU_CASES = [
    Case("slow banner", behaviour(Behaviour(latency=0.5)), 0, "merged"),
    Case("slow close", behaviour(Behaviour(close_delay=0.5)), 0, "merged"),
    Case("answers in reverse order", behaviour(Behaviour(reverse_order=True)), 0, "merged"),
    Case("garbage lines", behaviour(Behaviour(garbage=(
        "64499   | 185.220.101.1    | 10.0.0.0/8          | ZZ | arin     | 2001-01-01 | WRONG",
        "\x1b[31m[bold]Error: database busy[/bold]", "|||||||", "NA | not-an-ip | NA | | | | NA"))), 0, "merged"),
    Case("trickled bytes", behaviour(Behaviour(trickle_chunk=5, trickle_delay=0.002)), 0, "merged"),
    Case("reset once, then whole", behaviour(first=Behaviour(reset_after_rows=1)), 0, "merged"),
    Case("cut short", behaviour(Behaviour(close_after_rows=1)), 1, "failed", "CymruIncompleteError"),
    Case("reset", behaviour(Behaviour(reset_after_rows=1)), 1, "failed", "CymruConnectionError"),
    Case("half a line", behaviour(Behaviour(half_line_after_rows=1)), 1, "failed", "CymruProtocolError"),
    Case("refused", behaviour(Behaviour(refuse=True)), 1, "failed", "Cymru"),
    Case("accepts, never answers", behaviour(Behaviour(hang=True)), 1, "failed", "CymruTimeoutError"),
    Case("a line every 20 s", behaviour(Behaviour(drip=20)), 1, "failed", "CymruTimeoutError"),
    # One batch of all six: an answer that is silent about one IP fails its whole batch.
    Case("silent about an IP", behaviour(unknown="silent", drop=CYMRU_IPS[0]), 1, "failed", "CymruIncompleteError",
         env={"IPINTEL_CYMRU_BATCH_SIZE": "6"}),
]


def replies(*script: Reply, enterprise: bool = False) -> Callable[[GreyNoiseFake], None]:
    def arrange(fake: GreyNoiseFake) -> None:
        if enterprise:
            fake.records = {ip: v3_record(ip) for ip in GREYNOISE_IPS}
            fake.script_multi(*script)
        else:
            for ip in GREYNOISE_IPS:
                fake.script(ip, *script)
    return arrange


def closed_port(fake: GreyNoiseFake) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        fake.url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nobody listens once it is closed


ENTERPRISE = {"IPINTEL_GREYNOISE_TIER": "enterprise"}
MISSING = Reply(200, {"data": [], "request_metadata": {"ips_not_found": []}})
GREYNOISE_CASES = [
    Case("200 observed", replies(Reply(200)), 0, "merged"),
    Case("404 not observed", replies(Reply(404)), 0, "merged"),
    Case("429 then 200", replies(Reply(429, retry_after="0"), Reply(200)), 0, "merged"),
    Case("503 then 200", replies(Reply(503), Reply(200)), 0, "merged"),
    Case("quota gone (429, a day)", replies(Reply(429, retry_after="86400")), 0, "due"),
    Case("daily quota spent", lambda fake: setattr(fake, "quota", 0), 0, "due"),
    Case("wrong key", lambda fake: setattr(fake, "api_key", "another-key"), 2, "due",
         "GreyNoise rejected the API key (HTTP 401)"),
    Case("401", replies(Reply(401)), 2, "due", "GreyNoise rejected the API key (HTTP 401)"),
    Case("403", replies(Reply(403)), 2, "due", "GreyNoise rejected the API key (HTTP 403)"),
    Case("400", replies(Reply(400)), 1, "failed", "HTTP 400", retryable=False),
    Case("500 for ever", replies(Reply(500)), 1, "failed", "HTTP 500 server error"),
    Case("garbage body", replies(Reply(200, raw=b"\x1b[2J<html>[red]oops\x00\xff")), 1, "failed", "malformed JSON"),
    Case("redirect", replies(Reply(302, headers={"Location": "http://127.0.0.1:9/x"})), 1, "failed", "HTTP 302",
         retryable=False),
    Case("slower than the timeout", replies(Reply(200, delay=3)), 1, "failed", "Timeout"),
    Case("accepts, never answers", replies(Reply(hang=True)), 1, "failed", "Timeout"),
    Case("a line every 20 s", replies(Reply(200, drip=20)), 1, "failed", "Timeout"),
    Case("a line every 0.4 s", replies(Reply(200, drip=0.4)), 1, "failed", "no complete answer within 1s"),
    Case("connection refused", closed_port, 1, "failed", "ConnectError"),
    Case("enterprise: 500 then whole", replies(Reply(500), enterprise=True), 0, "merged", env=ENTERPRISE),
    Case("enterprise: IPs missing", replies(MISSING, enterprise=True), 1, "failed", "missing from the GreyNoise response",
         env=ENTERPRISE),
    Case("enterprise: garbage", replies(Reply(200, raw=b"{\"data\": [tru"), enterprise=True), 1, "failed",
         "malformed JSON", env=ENTERPRISE),
    # Scripted POSTs are answered once each (then from the records): a hang on every attempt.
    Case("enterprise: never answers", replies(*[Reply(hang=True)] * 4, enterprise=True), 1, "failed", "Timeout",
         env=ENTERPRISE),
]


@contextmanager
def greynoise_server() -> Iterator[GreyNoiseFake]:
    with serving(GreyNoiseFake) as fake:
        yield fake


def play(cases: list[Case], source: str, pg_server: PgServer, template: str, cwd: Path,
         serve: Callable[[], Any], settings: Callable[[Any], dict[str, str]], ips: list[str]) -> None:
    """Every case at once, each on its own database, server and `ipintel enrich --source` process."""
    with ExitStack() as stack:
        prepared = []
        for case in cases:  # clones one at a time: CREATE DATABASE wants its template to itself
            dsn = stack.enter_context(database(pg_server, template))
            server = stack.enter_context(serve())
            case.arrange(server)
            prepared.append((case, dsn, env_for(dsn, **(settings(server) | case.env))))

        def play_one(item: tuple[Case, str, dict[str, str]]) -> str | None:
            case, dsn, env = item
            try:
                check(case, dsn, run(["enrich", "--source", source], env, cwd, timeout=90), ips, source)
            except AssertionError as exc:
                return f"{case.name}: {exc}"
            return None

        with ThreadPoolExecutor(max_workers=len(prepared)) as pool:
            problems = [p for p in pool.map(play_one, prepared) if p]
    STATS.fault_cases += len(cases)
    assert not problems, "\n".join(problems)


def check(case: Case, dsn: str, done: Any, ips: list[str], source: str) -> None:
    assert done.seconds < BOUND, f"took {done.seconds:.1f}s"
    assert done.code == case.code, f"exit {done.code}, not {case.code}: {done.err}"
    assert "Traceback" not in done.err
    if case.code == 2:
        assert case.error in error_line(done.err, "enrich"), done.err
    rows = {r["ip"]: r for r in query(dsn, "SELECT host(ip) AS ip, enrichment -> %s AS doc, current_asn "
                                           "FROM ipintel.ip_inventory", (source,))}
    failures = {r["ip"]: r for r in query(dsn, "SELECT host(ip) AS ip, error, retryable FROM "
                                               "ipintel.enrichment_failures WHERE resolved_at IS NULL")}
    due = {r["ip"] for r in query(dsn, "SELECT host(ip) AS ip FROM ipintel.ips_due(%s)", (source,))}
    if case.outcome == "merged":
        assert not failures, failures
        assert all(rows[ip]["doc"] is not None for ip in ips), rows
        if source == "cymru":  # never a wrong ASN: exactly the table's
            assert {ip: rows[ip]["current_asn"] for ip in ips} == CYMRU_ASN
        assert not due & set(ips)
    elif case.outcome == "failed":
        assert set(failures) == set(ips), failures
        for failure in failures.values():
            assert case.error in failure["error"] and failure["retryable"] == case.retryable, failure
        assert all(rows[ip]["doc"] is None and rows[ip]["current_asn"] is None for ip in ips), rows
    else:  # due: nothing learned, nothing failed; the next run asks again
        assert not failures and all(rows[ip]["doc"] is None for ip in ips)
        assert set(ips) <= due


@contextmanager
def seeded(pg_server: PgServer, migrated_template: str, ips: list[str]) -> Iterator[str]:
    """A template database holding the IPs the cases ask about, each with a session."""
    name = f"ipintel_faults_remote_{uuid.uuid4().hex[:8]}"
    with pg_server.janitor(name, template=migrated_template, as_template=True):
        seed(pg_server.dsn(name), ips)
        yield name


def test_every_cymru_fault_is_bounded_and_ends_in_right_data_or_recorded_failures(
        pg_server: PgServer, migrated_template: str, tmp_path: Path) -> None:
    @contextmanager
    def serve() -> Iterator[FakeCymruServer]:
        with running_cymru_server(cymru_table()) as server:
            yield server

    started = time.monotonic()
    with seeded(pg_server, migrated_template, CYMRU_IPS) as template:
        play(CYMRU_CASES, "cymru", pg_server, template, tmp_path, serve,
             lambda s: {"IPINTEL_CYMRU_ADDR": s.addr, "IPINTEL_CYMRU_BATCH_SIZE": "3",
                        "IPINTEL_CYMRU_BATCH_TIMEOUT": str(BATCH_TIMEOUT), "IPINTEL_CYMRU_PASS_TIMEOUT": "60"},
             CYMRU_IPS)
    assert time.monotonic() - started < 2 * BOUND


def test_every_greynoise_fault_is_bounded_and_ends_in_right_data_or_recorded_failures(
        pg_server: PgServer, migrated_template: str, tmp_path: Path) -> None:
    with seeded(pg_server, migrated_template, GREYNOISE_IPS) as template:
        play(GREYNOISE_CASES, "greynoise", pg_server, template, tmp_path, greynoise_server,
             lambda fake: {"IPINTEL_GREYNOISE_URL": fake.url, "IPINTEL_GREYNOISE_KEY": DEFAULT_API_KEY,
                           "IPINTEL_GREYNOISE_RATE": "100", "IPINTEL_GREYNOISE_DAILY_BUDGET": "1000",
                           "IPINTEL_GREYNOISE_TIMEOUT": str(REQUEST_TIMEOUT)},
             GREYNOISE_IPS)
