"""`ipintel enrich --source dshield` end to end: a real PostgreSQL, the fake DShield over real sockets
on 127.0.0.1, the real engine and the real CLI, into ip_inventory and the session snapshots.

Addresses are public-looking but never leave the machine (the fake answers them); a bogon is
never sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ipintel import __version__, cli, enrich, passes
from ipintel.sources import dshield
from tests.fakes.dshield_server import (
    GARBAGE,
    DShieldFake,
    Reply,
    dshield_fake,  # noqa: F401
    dshield_record,
    rate_limited,
    server_error,
)
from tests.fakes.http_fake import override_settings
from tests.test_enrich_greynoise import flat, query, seed

CONTACT = "honeypot-ops@example.org"
V4 = [f"185.100.88.{n}" for n in range(1, 30)]
V6 = "2a01:4f8:c17:2::6"
BOGON = "10.20.30.41"
FEEDS = {"blocklistde22": ("2026-11-01", "2026-11-30"), "ciarmy": ("2026-11-02", "2026-11-29")}


@pytest.fixture(autouse=True)
def client_overrides(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Millisecond backoffs and 429 pauses (the pass keeps its 3 retries); a test may add keys.

    DShieldPass builds `dshield.DShieldSettings(...)` through the module attribute, so this wraps it."""
    return override_settings(monkeypatch, dshield, "DShieldSettings",
                             {"backoff_base": 0.01, "backoff_max": 0.05, "rate_limit_pause": 0.05, "timeout": 5.0})


@pytest.fixture
def cli_env(db: str, dshield_fake: DShieldFake, monkeypatch: pytest.MonkeyPatch,
            cli_database: Callable[[str], None]) -> Iterator[pytest.MonkeyPatch]:
    """Environment for `ipintel enrich` against this test's database and the fake."""
    cli_database(db)
    monkeypatch.setenv("IPINTEL_DSHIELD_URL", dshield_fake.url)
    monkeypatch.setenv("IPINTEL_DSHIELD_CONTACT", CONTACT)
    monkeypatch.setenv("IPINTEL_DSHIELD_RATE", "10")
    yield monkeypatch


def run_cli(*args: str) -> int:
    return cli.main(["enrich", "--source", "dshield", *args])


def runs(db: str) -> list[dict[str, Any]]:
    return query(db, "SELECT status, requested, fetched, merged, failed, provenance, message "
                     "FROM ipintel.enrichment_runs WHERE source = 'dshield' ORDER BY run_id")


def counts(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["status"], row["requested"], row["fetched"], row["merged"], row["failed"]


def due(db: str) -> list[str]:
    return [r["ip"] for r in query(db, "SELECT host(ip) AS ip FROM ipintel.ips_due('dshield')")]


def inventory(db: str) -> dict[str, dict[str, Any]]:
    rows = query(db, "SELECT host(ip) AS ip, enrichment -> 'dshield' AS doc, is_known_attacker, "
                     "is_known_attacker_source, threatfeeds, current_asn, current_asn_source FROM ipintel.ip_inventory")
    return {r["ip"]: r for r in rows}


def snapshots(db: str) -> dict[str, tuple[Any, ...]]:
    rows = query(db, "SELECT host(source_ip) AS ip, snapshot_is_known_attacker, snapshot_threatfeeds, "
                     "snapshot_is_known_attacker_source FROM ipintel.session_summaries")
    return {r["ip"]: (r["snapshot_is_known_attacker"], r["snapshot_threatfeeds"],
                      r["snapshot_is_known_attacker_source"]) for r in rows}


def test_dshield_pass_into_ip_inventory_and_the_snapshots(
        db: str, dshield_fake: DShieldFake, cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = dshield_fake
    reported, unreported, refused, flaky, broken, garbled = V4[:6]
    seed(db, [reported, unreported, refused, flaky, broken, garbled, V6, BOGON])
    fake.records[reported] = dshield_record(reported, count="1234", feeds=FEEDS)
    fake.records[flaky] = dshield_record(flaky, count=3, asn=64600, asname="FLAKY-AS", ascountry="de")
    fake.script(refused, Reply(200, {"ip": {"error": "bad IP address"}}))
    fake.script(flaky, server_error(502), Reply(200))
    fake.script(broken, server_error(503))  # for ever
    fake.script(garbled, GARBAGE)

    assert run_cli() == 1  # recorded failures

    (run,) = runs(db)
    assert counts(run) == ("finished_with_failures", 7, 4, 4, 3)  # 7 due: never the bogon
    assert run["provenance"] == {"api": fake.url, "endpoint": "/api/ip/{ip}?json",
                                 "user_agent": f"ipintel/{__version__} (contact: {CONTACT})",
                                 "rate_per_second": 10.0, "daily_budget": 1000, "attribution": dshield.ATTRIBUTION}
    rows = inventory(db)
    assert rows[reported]["doc"] == {
        "count": 1234, "attacks": 56, "mindate": "2026-01-02", "maxdate": "2026-11-30",
        "updated": "2026-12-01 06:12:33", "asn": 14061, "as_name": "DIGITALOCEAN-ASN", "as_country": "US",
        "network": "203.0.113.0/24",
        "threatfeeds": {"blocklistde22": {"firstseen": "2026-11-01", "lastseen": "2026-11-30"},
                        "ciarmy": {"firstseen": "2026-11-02", "lastseen": "2026-11-29"}}}
    facts = {ip: (r["is_known_attacker"], r["is_known_attacker_source"], r["threatfeeds"]) for ip, r in rows.items()}
    assert facts == {
        reported: (True, "dshield", ["blocklistde22", "ciarmy"]),
        unreported: (False, "dshield", []),
        flaky: (True, "dshield", []),
        V6: (False, "dshield", []),
        refused: (None, None, None), broken: (None, None, None), garbled: (None, None, None), BOGON: (None, None, None),
    }
    # No other source has run: DShield's AS is current, as a fallback, with its name.
    assert (rows[flaky]["current_asn"], rows[flaky]["current_asn_source"]) == (64600, "dshield")
    assert query(db, "SELECT as_name FROM ipintel.asn_inventory WHERE asn = 64600") == [{"as_name": "FLAKY-AS"}]

    fails = {r["ip"]: r for r in query(db, "SELECT host(ip) AS ip, error, retryable FROM ipintel.enrichment_failures "
                                           "WHERE source = 'dshield'")}
    assert {ip: (f["error"], f["retryable"]) for ip, f in fails.items()} == {
        refused: ("DShield: bad IP address", False), broken: ("HTTP 503 server error", True),
        garbled: ("malformed JSON response", True)}

    # What the fake saw: every request polite, the bogon never; the 5xx retried (3 retries).
    assert {seen.user_agent for seen in fake.requests} == {f"ipintel/{__version__} (contact: {CONTACT})"}
    assert fake.requests_for(BOGON) == []
    assert (len(fake.requests_for(flaky)), len(fake.requests_for(broken)), len(fake.requests_for(refused))) == (2, 4, 1)
    # The budget counts lookups, not attempts.
    assert query(db, "SELECT used FROM ipintel.api_budget WHERE source = 'dshield'") == [{"used": 7}]

    # The snapshots: the known-attacker field is DShield's (rank 1) as soon as it answered.
    snaps = snapshots(db)
    assert snaps[reported] == (True, ["blocklistde22", "ciarmy"], "dshield")
    assert snaps[unreported] == (False, [], "dshield")
    assert snaps[broken] == (None, None, None)  # still awaited: its failure may pass
    assert snaps[BOGON] == (None, None, "bogon")

    # Next run: only the retryable failures are due, DShield has recovered.
    assert sorted(due(db)) == sorted([broken, garbled])
    fake.script(broken, Reply(200))
    fake.script(garbled, Reply(200))
    capsys.readouterr()
    assert run_cli() == 0
    assert counts(runs(db)[1]) == ("succeeded", 2, 2, 2, 0)
    assert due(db) == []
    assert snapshots(db)[broken] == (False, [], "dshield")

    # The report credits the data, as ISC's licence asks.
    capsys.readouterr()
    assert cli.main(["report"]) == 0
    assert f"dshield: {dshield.ATTRIBUTION}" in flat(capsys.readouterr().out)


@pytest.mark.parametrize("contact", [None, ""], ids=["unset", "empty"])
def test_no_contact_skips_the_pass_with_one_clear_line(
        db: str, dshield_fake: DShieldFake, cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        contact: str | None) -> None:
    if contact is None:
        cli_env.delenv("IPINTEL_DSHIELD_CONTACT")
    else:
        cli_env.setenv("IPINTEL_DSHIELD_CONTACT", contact)
    seed(db, V4[:2])

    assert run_cli() == 0

    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if "IPINTEL_DSHIELD_CONTACT" in line]
    assert lines == [f"dshield: skipped: {passes.DSHIELD_SKIPPED}"]
    assert dshield_fake.requests == []
    (run,) = runs(db)
    assert (counts(run), run["message"]) == (("skipped", 0, 0, 0, 0), passes.DSHIELD_SKIPPED)
    assert due(db) == V4[:2]


def test_daily_budget_is_shared_by_runs_on_the_same_day(
        db: str, dshield_fake: DShieldFake, cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.setenv("IPINTEL_DSHIELD_DAILY_BUDGET", "3")
    ips = V4[:5]
    seed(db, ips)

    assert run_cli("--limit", "2") == 0
    assert run_cli() == 0  # a spent budget is normal daily operation
    out, err = capsys.readouterr()
    message = ("daily budget of 3 DShield lookups spent (IPINTEL_DSHIELD_DAILY_BUDGET); "
               "2 IPs stay due for a later run")
    assert message in flat(out + err)
    assert run_cli() == 0  # a third run the same day sends nothing

    assert len(dshield_fake.requests) == 3
    assert [counts(r) for r in runs(db)] == [("succeeded", 2, 2, 2, 0), ("stopped", 3, 1, 1, 0),
                                             ("stopped", 2, 0, 0, 0)]
    assert query(db, "SELECT source, day, used FROM ipintel.api_budget") == [
        {"source": "dshield", "day": datetime.now(UTC).date(), "used": 3}]
    assert due(db) == ips[3:]


def test_rate_limited_pass_stops_cleanly_and_the_next_run_resumes(
        db: str, dshield_fake: DShieldFake, cli_env: pytest.MonkeyPatch, client_overrides: dict[str, Any],
        capsys: pytest.CaptureFixture[str]) -> None:
    client_overrides["max_retry_after"] = 5.0
    ips = V4[:4]
    seed(db, ips)
    dshield_fake.script_next(Reply(200), rate_limited(retry_after="7200"))

    assert run_cli() == 0  # normal operation: the rest stays due
    out, err = capsys.readouterr()
    message = "DShield rate limited ipintel (HTTP 429, Retry-After 7200 s); 3 IPs stay due for a later run"
    assert message in flat(out + err)
    (run,) = runs(db)
    assert (counts(run), run["message"]) == (("stopped", 4, 1, 1, 0), message)
    assert query(db, "SELECT count(*) AS n FROM ipintel.enrichment_failures") == [{"n": 0}]
    assert due(db) == ips[1:]

    assert run_cli() == 0
    assert due(db) == []
    assert len(dshield_fake.requests) == 5


def test_refused_client_fails_the_pass_with_exit_2_naming_the_setting(
        db: str, dshield_fake: DShieldFake, cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    dshield_fake.required_contact = "someone-else@example.org"
    seed(db, V4[:3])

    assert run_cli() == 2

    out, err = capsys.readouterr()
    assert "IPINTEL_DSHIELD_CONTACT" in flat(out + err) and "HTTP 403" in flat(out + err)
    (run,) = runs(db)
    assert run["status"] == "failed" and "HTTP 403" in run["message"]
    assert len(dshield_fake.requests) == 1 and due(db) == V4[:3]


def test_a_pause_after_429_keeps_the_status_file_alive(
        db: str, dshield_fake: DShieldFake, cli_env: pytest.MonkeyPatch, client_overrides: dict[str, Any],
        tmp_path: Path) -> None:
    """A 429 without Retry-After stops every request for rate_limit_pause (5 minutes by default):
    meanwhile the status file is still rewritten (its keepalive), so a monitor sees the run alive."""
    client_overrides["rate_limit_pause"] = 1.2
    cli_env.setattr(passes, "HEARTBEAT_SECONDS", 0.05)
    cli_env.setattr(enrich.StatusFile, "KEEPALIVE_SECONDS", 0.2)
    written: list[float] = []
    real_write = enrich.StatusFile.write

    def write(self: enrich.StatusFile, state: str, summary: enrich.EnrichSummary, exit_code: int | None = None) -> None:
        written.append(time.monotonic())
        real_write(self, state, summary, exit_code)

    cli_env.setattr(enrich.StatusFile, "write", write)
    seed(db, V4[:1])
    dshield_fake.script(V4[0], rate_limited(), Reply(200))
    status_file = tmp_path / "status.json"

    assert run_cli("--status-file", str(status_file)) == 0

    first, second = (seen.at for seen in dshield_fake.requests)
    assert second - first >= 1.15
    during = [t for t in written if first < t < second]
    assert len(during) >= 4, (first, second, written)  # every 0.2 s of the 1.2 s pause
    assert json.loads(status_file.read_text())["state"] == "finished"
