"""`ipintel enrich --source greynoise` end to end: a real PostgreSQL, the fake GreyNoise over real
sockets on 127.0.0.1, the real engine (`ipintel.enrich.enrich`) and the real CLI.

Addresses are public-looking but never leave the machine (the fake answers them); the
documentation ranges (198.51.100.0/24, 2001:db8::/32, ...) are bogons here and would never be sent.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ipintel import cli, passes
from ipintel.config import Settings
from ipintel.enrich import EnrichOptions, EnrichSummary, enrich
from ipintel.sources import greynoise
from tests.fakes.greynoise_server import (
    GreyNoiseFake,
    Reply,
    community_record,
    greynoise_fake,  # noqa: F401
    v3_record,
)
from tests.fakes.http_fake import override_settings

FAST_RATE = 50.0  # requests per second in every test but the rate test
BIG_BUDGET = 1_000

V4 = [f"185.100.87.{n}" for n in range(1, 30)]
V6 = "2a01:4f8:c17:1::6"
BOGON = "10.20.30.40"

IPV6_REASON = "IPv6 is not served by the GreyNoise Community API"
AUTH_MESSAGE = "GreyNoise rejected the API key (HTTP 401): check IPINTEL_GREYNOISE_KEY and the key's plan"
NOT_OBSERVED = {"observed": False, "noise": False, "riot": False, "classification": None, "name": None,
                "link": None, "last_seen": None}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def client_overrides(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Millisecond backoffs (the pass keeps its 3 retries), and room for a test to shrink chunks.

    GreyNoisePass builds `greynoise.GreyNoiseSettings(...)` through the module attribute, so
    this wraps it; a test may add keys (e.g. chunk_size) before the pass is built.
    """
    return override_settings(monkeypatch, greynoise, "GreyNoiseSettings",
                             {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0})


@pytest.fixture
def cli_env(db: str, greynoise_fake: GreyNoiseFake, monkeypatch: pytest.MonkeyPatch,
            cli_database: Callable[[str], None]) -> Iterator[pytest.MonkeyPatch]:
    """Environment for `ipintel enrich` against this test's database and the fake."""
    cli_database(db)
    monkeypatch.setenv("IPINTEL_GREYNOISE_URL", greynoise_fake.url)
    monkeypatch.setenv("IPINTEL_GREYNOISE_KEY", greynoise_fake.api_key)
    monkeypatch.setenv("IPINTEL_GREYNOISE_RATE", str(FAST_RATE))
    monkeypatch.setenv("IPINTEL_GREYNOISE_DAILY_BUDGET", str(BIG_BUDGET))
    yield monkeypatch


def make_settings(db: str, fake: GreyNoiseFake, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db, "geoip_dir": None, "cymru_addr": "127.0.0.1:9",
        "greynoise_url": fake.url, "greynoise_key": fake.api_key, "greynoise_tier": "community",
        "greynoise_rate": FAST_RATE, "greynoise_daily_budget": BIG_BUDGET,
    }
    return Settings(**(values | overrides))


def run_pass(db: str, fake: GreyNoiseFake, **overrides: Any) -> EnrichSummary:
    limit = overrides.pop("limit", None)
    settings = make_settings(db, fake, **overrides)
    return enrich(settings, EnrichOptions(sources=["greynoise"], limit=limit),
                  passes=passes.make_passes(settings, ["greynoise"]))


def run_cli(*args: str) -> int:
    return cli.main(["enrich", "--source", "greynoise", *args])


def query(db: str, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with psycopg.connect(db, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def seed(db: str, ips: Sequence[str], *, sessions: dict[str, int] | None = None,
         logged_in: Sequence[str] = ()) -> None:
    """ip_inventory rows (last_seen descending in list order, so ips_due keeps that order) and
    their session_summaries (session_count kept true; one successful login for `logged_in`)."""
    sessions = sessions or {}
    now = datetime.now(UTC)
    seen = [now - timedelta(minutes=i + 1) for i in range(len(ips))]
    counts = [sessions.get(ip, 1) for ip in ips]
    logins = [ip in logged_in for ip in ips]
    with psycopg.connect(db, autocommit=True) as conn, conn.transaction():
        conn.execute(
            """INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
               SELECT u.ip, u.seen - interval '1 hour', u.seen, u.n
               FROM unnest(%(ips)s::inet[], %(seen)s::timestamptz[], %(n)s::bigint[]) AS u(ip, seen, n)""",
            {"ips": list(ips), "seen": seen, "n": counts})
        conn.execute(
            """INSERT INTO ipintel.session_summaries
                   (session_id, sensor, first_event_at, last_event_at, protocol, source_ip,
                    login_attempts, login_successes, event_count)
               SELECT md5(host(u.ip) || '/' || g), 'hp-test', u.seen - interval '1 hour', u.seen, 'ssh', u.ip,
                      1, CASE WHEN u.ok AND g = 1 THEN 1 ELSE 0 END, 3
               FROM unnest(%(ips)s::inet[], %(seen)s::timestamptz[], %(n)s::bigint[], %(ok)s::boolean[])
                    AS u(ip, seen, n, ok)
               CROSS JOIN LATERAL generate_series(1, u.n) AS g""",
            {"ips": list(ips), "seen": seen, "n": counts, "ok": logins})


def ip_rows(db: str) -> dict[str, dict[str, Any]]:
    """ip_inventory rows, with `fetched_at`: when GreyNoise last answered (enrichment_state)."""
    rows = query(db, "SELECT host(i.ip) AS ip, i.enrichment, i.is_scanner, i.is_riot, i.ip_type, i.is_bogon, "
                     "e.fetched_at FROM ipintel.ip_inventory i "
                     "LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = 'greynoise'")
    return {r["ip"]: r for r in rows}


def greynoise_doc(row: dict[str, Any]) -> dict[str, Any] | None:
    """enrichment->'greynoise' (its facts), after checking the answer was recorded recently."""
    doc = row["enrichment"].get("greynoise")
    if doc is None:
        assert row["fetched_at"] is None
        return None
    assert timedelta(0) <= datetime.now(UTC) - row["fetched_at"] < timedelta(minutes=5)
    return doc


def due(db: str) -> list[str]:
    return [r["ip"] for r in query(db, "SELECT host(ip) AS ip FROM ipintel.ips_due('greynoise')")]


def runs(db: str) -> list[dict[str, Any]]:
    return query(db, "SELECT run_id, source, status, requested, fetched, merged, failed, provenance, message "
                     "FROM ipintel.enrichment_runs WHERE source = 'greynoise' ORDER BY run_id")


def failures(db: str) -> dict[str, dict[str, Any]]:
    rows = query(db, "SELECT host(ip) AS ip, run_id, error, retryable, retry_after, resolved_at "
                     "FROM ipintel.enrichment_failures WHERE source = 'greynoise' ORDER BY failure_id")
    return {r["ip"]: r for r in rows}


def counts(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["status"], row["requested"], row["fetched"], row["merged"], row["failed"]


def pass_counts(summary: EnrichSummary) -> tuple[Any, ...]:
    (p,) = summary.passes
    return p.status, p.due, p.fetched, p.merged, p.failed


def flat(text: str) -> str:
    """Captured rich output with its line wrapping undone."""
    return " ".join(text.split())


def requested_ips(fake: GreyNoiseFake, since: int = 0) -> list[str]:
    return [ip for seen in fake.requests[since:] for ip in seen.ips]


# --------------------------------------------------------------------------------------------
# 200 / 404 / 400 / 5xx, exact documents, runs and the next run
# --------------------------------------------------------------------------------------------
def test_community_pass_merges_each_answer_and_the_next_run_asks_only_what_is_due(
        db: str, greynoise_fake: GreyNoiseFake) -> None:
    fake = greynoise_fake
    scanner, riot, unseen, invalid, flaky, broken = V4[:6]
    seed(db, [scanner, riot, unseen, invalid, flaky, broken, V6, BOGON])
    fake.script(scanner, Reply(200))
    fake.script(riot, Reply(200, community_record(riot, noise=False, riot=True, classification="benign",
                                                  name="Google")))
    # `unseen` is the fake's default 404 (not observed).
    fake.script(invalid, Reply(400))
    fake.script(flaky, Reply(500), Reply(200))
    fake.script(broken, Reply(500))  # repeats for ever

    summary = run_pass(db, fake)

    # 7 due (the bogon never is); 5 answers merged (4 IPv4 + the IPv6 "not supported"); 2 failures.
    assert pass_counts(summary) == ("finished_with_failures", 7, 5, 5, 2)
    assert summary.exit_code == 1
    (run1,) = runs(db)
    assert counts(run1) == ("finished_with_failures", 7, 5, 5, 2)
    assert run1["message"] is None
    assert run1["provenance"] == {"api": fake.url, "tier": "community", "endpoint": "/v3/community/{ip}",
                                  "rate_per_second": FAST_RATE, "daily_budget": BIG_BUDGET}

    rows = ip_rows(db)
    scanner_doc = {"observed": True, "noise": True, "riot": False, "classification": "malicious",
                   "name": "unknown", "link": f"https://viz.greynoise.io/ip/{scanner}", "last_seen": "2026-01-15"}
    assert greynoise_doc(rows[scanner]) == scanner_doc
    assert (rows[scanner]["is_scanner"], rows[scanner]["is_riot"], rows[scanner]["ip_type"]) == (True, False, "scanner")

    assert greynoise_doc(rows[riot]) == {"observed": True, "noise": False, "riot": True, "classification": "benign",
                                         "name": "Google", "link": f"https://viz.greynoise.io/ip/{riot}",
                                         "last_seen": "2026-01-15"}
    assert (rows[riot]["is_scanner"], rows[riot]["is_riot"], rows[riot]["ip_type"]) == (False, True, "riot")

    assert greynoise_doc(rows[unseen]) == NOT_OBSERVED
    assert (rows[unseen]["is_scanner"], rows[unseen]["is_riot"]) == (False, False)

    assert greynoise_doc(rows[flaky]) == {**scanner_doc, "link": f"https://viz.greynoise.io/ip/{flaky}"}
    assert rows[flaky]["is_scanner"] is True

    assert greynoise_doc(rows[V6]) == {"supported": False, "reason": IPV6_REASON}
    assert (rows[V6]["is_scanner"], rows[V6]["is_riot"]) == (None, None)

    for ip in (invalid, broken, BOGON):
        assert "greynoise" not in rows[ip]["enrichment"], ip
        assert rows[ip]["is_scanner"] is None
    assert rows[BOGON]["ip_type"] == "bogon"

    fails = failures(db)
    assert set(fails) == {invalid, broken}
    assert fails[invalid]["error"] == "HTTP 400: Request is not a valid routable IPv4 address"
    assert (fails[invalid]["retryable"], fails[invalid]["retry_after"], fails[invalid]["resolved_at"]) == \
        (False, None, None)
    assert fails[broken]["error"] == "HTTP 500 server error"
    assert (fails[broken]["retryable"], fails[broken]["retry_after"], fails[broken]["resolved_at"]) == \
        (True, None, None)
    assert {f["run_id"] for f in fails.values()} == {run1["run_id"]}

    # What the fake saw: 400 once (never retried), the 5xx retried (3 retries), nothing else extra.
    assert len(fake.requests_for(invalid)) == 1
    assert len(fake.requests_for(flaky)) == 2
    assert len(fake.requests_for(broken)) == 4
    for ip in (scanner, riot, unseen):
        assert len(fake.requests_for(ip)) == 1
    assert fake.requests_for(V6) == [] and fake.requests_for(BOGON) == []
    assert all(seen.method == "GET" and seen.path == f"/v3/community/{seen.ips[0]}" for seen in fake.requests)
    assert any("IPv6" in notice for notice in summary.notices)

    # Only the retryable failure is due again: not the 404 (cached), not the 400, not IPv6.
    assert due(db) == [broken]

    # Next run: GreyNoise has recovered.
    fake.script(broken, Reply(200, community_record(broken, noise=False, classification="unknown")))
    before = len(fake.requests)
    summary2 = run_pass(db, fake)

    assert pass_counts(summary2) == ("succeeded", 1, 1, 1, 0)
    assert summary2.exit_code == 0
    run2 = runs(db)[1]
    assert counts(run2) == ("succeeded", 1, 1, 1, 0)
    assert requested_ips(fake, before) == [broken]
    assert len(fake.requests_for(unseen)) == 1  # the 404 was cached
    assert len(fake.requests_for(invalid)) == 1  # the 400 was not asked again
    rows = ip_rows(db)
    assert greynoise_doc(rows[broken]) == {"observed": True, "noise": False, "riot": False,
                                           "classification": "unknown", "name": "unknown",
                                           "link": f"https://viz.greynoise.io/ip/{broken}",
                                           "last_seen": "2026-01-15"}
    fails = failures(db)
    assert fails[broken]["resolved_at"] is not None
    assert fails[invalid]["resolved_at"] is None  # still open, still not due
    assert due(db) == []


# --------------------------------------------------------------------------------------------
# 401: the pass fails, names the setting, never the key
# --------------------------------------------------------------------------------------------
def test_refused_key_fails_the_pass_with_exit_2_and_names_the_setting(
        db: str, greynoise_fake: GreyNoiseFake, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    wrong_key = "gn-refused-key-3f9a0c55e1"
    cli_env.setenv("IPINTEL_GREYNOISE_KEY", wrong_key)
    seed(db, V4[:3])

    assert run_cli() == 2  # a refused key is bad configuration

    out, err = capsys.readouterr()
    text = flat(out + err)
    assert "IPINTEL_GREYNOISE_KEY" in text
    assert AUTH_MESSAGE in text
    assert wrong_key not in re.sub(r"\s+", "", out + err)
    (run,) = runs(db)
    assert run["status"] == "failed"
    assert run["message"] == AUTH_MESSAGE
    assert wrong_key not in json.dumps(run, default=str)
    # The pass stopped at the first refusal; nothing was recorded as a failure; all stay due.
    assert len(greynoise_fake.requests) == 1 and greynoise_fake.requests[0].key == wrong_key
    assert failures(db) == {}
    assert due(db) == V4[:3]


# --------------------------------------------------------------------------------------------
# 429 quota: stop cleanly, resume with exactly the rest
# --------------------------------------------------------------------------------------------
def test_quota_429_stops_cleanly_and_the_next_run_resumes_with_the_rest(
        db: str, greynoise_fake: GreyNoiseFake) -> None:
    fake = greynoise_fake
    ips = V4[:6]
    seed(db, ips)
    fake.quota = 3  # answered lookups; then 429 with Retry-After of a day

    summary = run_pass(db, fake)

    assert pass_counts(summary) == ("stopped", 6, 3, 3, 0)
    assert summary.exit_code == 0  # a spent daily quota is normal daily operation
    (p,) = summary.passes
    assert p.message == "GreyNoise quota exhausted (HTTP 429); 3 IPs stay due for a later run"
    (run1,) = runs(db)
    assert counts(run1) == ("stopped", 6, 3, 3, 0)
    assert run1["message"] == p.message
    assert requested_ips(fake) == ips[:4]  # three answered, the fourth met the 429 once
    assert failures(db) == {}  # a spent quota is not the IP's failure
    assert due(db) == ips[3:]
    rows = ip_rows(db)
    for ip in ips[:3]:
        assert greynoise_doc(rows[ip]) == NOT_OBSERVED
    for ip in ips[3:]:
        assert "greynoise" not in rows[ip]["enrichment"]

    fake.reset_quota()  # a new day
    before = len(fake.requests)
    summary2 = run_pass(db, fake)

    assert pass_counts(summary2) == ("succeeded", 3, 3, 3, 0)
    assert sorted(requested_ips(fake, before)) == sorted(ips[3:])
    assert len(fake.requests) - before == 3
    assert due(db) == []


# --------------------------------------------------------------------------------------------
# Daily budget shared by runs on one UTC day
# --------------------------------------------------------------------------------------------
def test_daily_budget_is_shared_by_runs_on_the_same_day(
        db: str, greynoise_fake: GreyNoiseFake, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.setenv("IPINTEL_GREYNOISE_DAILY_BUDGET", "3")
    ips = V4[:5]
    seed(db, ips)

    assert run_cli("--limit", "2") == 0
    assert len(greynoise_fake.requests) == 2
    capsys.readouterr()

    assert run_cli() == 0  # a spent budget is normal daily operation: the notice says what stays due
    out, err = capsys.readouterr()
    message = ("daily budget of 3 GreyNoise lookups spent (IPINTEL_GREYNOISE_DAILY_BUDGET); "
               "2 IPs stay due for a later run")
    assert message in flat(out + err)
    assert len(greynoise_fake.requests) == 3

    # A third run the same day sends nothing at all.
    assert run_cli() == 0
    assert len(greynoise_fake.requests) == 3
    assert sorted(requested_ips(greynoise_fake)) == sorted(ips[:3])

    r1, r2, r3 = runs(db)
    assert counts(r1) == ("succeeded", 2, 2, 2, 0)
    assert counts(r2) == ("stopped", 3, 1, 1, 0)
    assert r2["message"] == message
    assert counts(r3) == ("stopped", 2, 0, 0, 0)
    budget = query(db, "SELECT source, day, used FROM ipintel.api_budget")
    assert budget == [{"source": "greynoise", "day": datetime.now(UTC).date(), "used": 3}]
    assert due(db) == ips[3:]


# --------------------------------------------------------------------------------------------
# Client-side rate limit, measured at the server
# --------------------------------------------------------------------------------------------
def test_rate_limit_holds_at_the_server(db: str, greynoise_fake: GreyNoiseFake) -> None:
    ips = V4[:10]
    seed(db, ips)

    summary = run_pass(db, greynoise_fake, greynoise_rate=5.0)

    assert pass_counts(summary) == ("succeeded", 10, 10, 10, 0)
    arrivals = [seen.at for seen in greynoise_fake.requests]
    assert len(arrivals) == 10
    # Any 6 consecutive requests span about 1 s or more: never more than 5 in one second (the
    # tolerance absorbs arrival jitter on a busy machine; a broken pacer at 10/s spans 0.5 s).
    for first, sixth in zip(arrivals, arrivals[5:], strict=False):  # the pairs five apart
        assert sixth - first >= 0.85, arrivals
    overall = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert overall <= 5.0 * 1.05, arrivals


# --------------------------------------------------------------------------------------------
# Enterprise tier: POST /v3/ip in chunks
# --------------------------------------------------------------------------------------------
def test_enterprise_tier_posts_chunks_and_not_found_is_observed_false(
        db: str, greynoise_fake: GreyNoiseFake, client_overrides: dict[str, Any]) -> None:
    fake = greynoise_fake
    client_overrides["chunk_size"] = 2
    scanner, riot, a, b, c = V4[:5]
    ips = [scanner, riot, a, b, c, V6]
    seed(db, [*ips, BOGON])
    fake.records[scanner] = v3_record(scanner, actor="Mirai", last_seen="2026-02-01")
    fake.records[riot] = v3_record(riot, noise=False, riot=True, service="Google Public DNS")
    fake.script_multi(Reply(503), Reply(200))  # the first chunk is retried once

    summary = run_pass(db, fake, greynoise_tier="enterprise")

    assert pass_counts(summary) == ("succeeded", 6, 6, 6, 0)
    assert runs(db)[0]["provenance"]["endpoint"] == "/v3/ip"
    assert all(seen.method == "POST" and seen.path == "/v3/ip" for seen in fake.requests)
    assert [seen.ips for seen in fake.requests] == [
        (scanner, riot), (scanner, riot), (a, b), (c, V6)]
    # Budget counts lookups (IPs), not attempts: the retried chunk is charged once.
    assert query(db, "SELECT used FROM ipintel.api_budget") == [{"used": 6}]

    rows = ip_rows(db)
    assert greynoise_doc(rows[scanner]) == {"observed": True, "noise": True, "riot": False,
                                            "classification": "malicious", "name": "Mirai", "link": None,
                                            "last_seen": "2026-02-01"}
    assert (rows[scanner]["is_scanner"], rows[scanner]["ip_type"]) == (True, "scanner")
    assert greynoise_doc(rows[riot]) == {"observed": True, "noise": False, "riot": True, "classification": None,
                                         "name": "Google Public DNS", "link": None, "last_seen": None}
    assert (rows[riot]["is_scanner"], rows[riot]["ip_type"]) == (False, "riot")
    for ip in (a, b, c, V6):  # listed in request_metadata.ips_not_found
        assert greynoise_doc(rows[ip]) == NOT_OBSERVED
        assert rows[ip]["is_scanner"] is False
    assert "greynoise" not in rows[BOGON]["enrichment"]
    assert due(db) == []


def test_greynoise_tier_flag_selects_the_multi_endpoint_and_no_default_budget(
        db: str, greynoise_fake: GreyNoiseFake, cli_env: pytest.MonkeyPatch) -> None:
    fake = greynoise_fake
    scanner, other = V4[:2]
    seed(db, [scanner, other])
    fake.records[scanner] = v3_record(scanner, actor="Mirai", last_seen="2026-02-01")
    cli_env.delenv("IPINTEL_GREYNOISE_DAILY_BUDGET")  # enterprise: no budget unless configured

    assert run_cli("--greynoise-tier", "enterprise") == 0

    assert [(seen.method, seen.path) for seen in fake.requests] == [("POST", "/v3/ip")]
    assert runs(db)[0]["provenance"]["tier"] == "enterprise"
    assert query(db, "SELECT count(*) AS n FROM ipintel.api_budget") == [{"n": 0}]
    rows = ip_rows(db)
    assert rows[scanner]["is_scanner"] is True and rows[other]["is_scanner"] is False


# --------------------------------------------------------------------------------------------
# No key: skipped, said once, exit 0, nothing sent
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [None, ""], ids=["unset", "empty"])
def test_no_key_skips_the_pass_with_one_clear_line(
        db: str, greynoise_fake: GreyNoiseFake, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], key: str | None) -> None:
    if key is None:
        cli_env.delenv("IPINTEL_GREYNOISE_KEY")
    else:
        cli_env.setenv("IPINTEL_GREYNOISE_KEY", key)
    seed(db, V4[:2])

    assert run_cli() == 0

    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if "IPINTEL_GREYNOISE_KEY" in line]
    assert lines == [f"greynoise: skipped: {passes.GREYNOISE_SKIPPED}"]
    assert greynoise_fake.requests == []
    (run,) = runs(db)
    assert counts(run) == ("skipped", 0, 0, 0, 0)
    assert run["message"] == passes.GREYNOISE_SKIPPED
    assert due(db) == V4[:2]


# --------------------------------------------------------------------------------------------
# IPv6 on the community tier
# --------------------------------------------------------------------------------------------
def test_ipv6_on_community_tier_is_recorded_unsupported_and_never_sent(
        db: str, greynoise_fake: GreyNoiseFake) -> None:
    other_v6 = "2a01:4f8:c17:1::7"
    seed(db, [V6, other_v6, V4[0]])

    summary = run_pass(db, greynoise_fake)

    assert pass_counts(summary) == ("succeeded", 3, 3, 3, 0)
    assert "greynoise: 2 IPv6 addresses skipped (the Community API answers IPv4 only)" in summary.notices
    assert requested_ips(greynoise_fake) == [V4[0]]
    rows = ip_rows(db)
    for ip in (V6, other_v6):
        assert greynoise_doc(rows[ip]) == {"supported": False, "reason": IPV6_REASON}
        assert (rows[ip]["is_scanner"], rows[ip]["is_riot"]) == (None, None)
    assert failures(db) == {}
    # The answer counts as fetched: the session's snapshot is taken with is_scanner unknown.
    snap = query(db, "SELECT snapshot_is_scanner, snapshot_at FROM ipintel.session_summaries "
                     "WHERE source_ip = %(ip)s::inet", {"ip": V6})
    assert snap[0]["snapshot_at"] is not None and snap[0]["snapshot_is_scanner"] is None

    # Not due next run: nothing is sent.
    summary2 = run_pass(db, greynoise_fake)
    assert pass_counts(summary2) == ("succeeded", 0, 0, 0, 0)
    assert not any("IPv6" in notice for notice in summary2.notices)
    assert len(greynoise_fake.requests) == 1


# --------------------------------------------------------------------------------------------
# Policy filter for small quotas
# --------------------------------------------------------------------------------------------
def test_min_session_count_and_or_login_success_filter_what_is_asked(
        db: str, greynoise_fake: GreyNoiseFake) -> None:
    one, two, three, one_login = V4[:4]
    seed(db, [one, two, three, one_login], sessions={two: 2, three: 3}, logged_in=[one_login])
    query(db, "UPDATE ipintel.enrichment_policy SET min_session_count = 2 WHERE source = 'greynoise' "
              "RETURNING source")

    summary = run_pass(db, greynoise_fake)

    assert pass_counts(summary) == ("succeeded", 2, 2, 2, 0)
    assert sorted(requested_ips(greynoise_fake)) == sorted([two, three])

    query(db, "UPDATE ipintel.enrichment_policy SET or_login_success = true WHERE source = 'greynoise' "
              "RETURNING source")
    before = len(greynoise_fake.requests)
    summary2 = run_pass(db, greynoise_fake)

    assert pass_counts(summary2) == ("succeeded", 1, 1, 1, 0)
    assert requested_ips(greynoise_fake, before) == [one_login]
    assert greynoise_fake.requests_for(one) == []
    rows = ip_rows(db)
    assert "greynoise" not in rows[one]["enrichment"]
    assert due(db) == []


# --------------------------------------------------------------------------------------------
# The key never leaks
# --------------------------------------------------------------------------------------------
def test_api_key_never_appears_in_output_logs_status_file_or_tables(
        db: str, greynoise_fake: GreyNoiseFake, cli_env: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx, httpcore and ipintel at their chattiest
    sentinel = "gn-SENTINEL-KEY-5b2e8f1a7c4d"
    wrong = "gn-SENTINEL-WRONG-0d3c6a9e2f71"
    fake = greynoise_fake
    fake.api_key = sentinel
    cli_env.setenv("IPINTEL_GREYNOISE_KEY", sentinel)
    ok, failing, refused = V4[:3]
    seed(db, [ok, failing, refused])
    fake.script(ok, Reply(200))
    fake.script(failing, Reply(502))  # 5xx for ever: a recorded failure
    fake.script(refused, Reply(401))  # the key refused mid-pass
    status_file = tmp_path / "status.json"

    assert run_cli("--status-file", str(status_file)) == 2
    status_texts = [status_file.read_text(encoding="utf-8")]
    status = json.loads(status_texts[0])
    assert (status["state"], status["exit_code"]) == ("failed", 2)
    assert status["passes"][0]["status"] == "failed"
    assert status["passes"][0]["message"] == AUTH_MESSAGE

    # A second run with a key the server does not know: a real 401 at the gate.
    cli_env.setenv("IPINTEL_GREYNOISE_KEY", wrong)
    assert run_cli("--status-file", str(status_file)) == 2
    status_texts.append(status_file.read_text(encoding="utf-8"))

    # The keys did go over the wire, so a leak had every chance to happen.
    assert {seen.key for seen in fake.requests} == {sentinel, wrong}
    assert failures(db)[failing]["error"] == "HTTP 502 server error"
    assert [r["status"] for r in runs(db)] == ["failed", "failed"]
    assert "GreyNoise" in caplog.text and "HTTP Request" in caplog.text  # the loggers did talk

    out, err = capsys.readouterr()
    texts = {
        "status file": "\n".join(status_texts),
        "stdout": out,
        "stderr": err,
        "logs": caplog.text + "\n".join(
            f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records),
        "enrichment_runs": json.dumps(query(db, "SELECT provenance, message FROM ipintel.enrichment_runs"),
                                      default=str),
        "enrichment_failures": json.dumps(query(db, "SELECT error FROM ipintel.enrichment_failures"),
                                          default=str),
        "ip_inventory": json.dumps(query(db, "SELECT enrichment FROM ipintel.ip_inventory"), default=str),
    }
    for where, text in texts.items():
        squeezed = re.sub(r"\s+", "", text)
        for key in (sentinel, wrong):
            assert key not in text and key not in squeezed, f"the API key leaked into {where}"
    assert "IPINTEL_GREYNOISE_KEY" in flat(out + err)
