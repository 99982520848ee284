"""DShield client against the fake DShield over real sockets on 127.0.0.1: answers, every fault
switch of the fake, the politeness rules (User-Agent, pacing, 429 pauses, budget)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest

from ipintel import __version__
from ipintel.sources.dshield import (
    DShieldClient,
    DShieldOutcome,
    DShieldRefused,
    DShieldResult,
    DShieldSettings,
    contact_problem,
)
from ipintel.sources.http_api import LookupFailure
from tests.fakes import http_fake
from tests.fakes.dshield_server import (
    GARBAGE,
    HANG,
    RESET,
    DShieldFake,
    Reply,
    dshield_fake,  # noqa: F401
    dshield_record,
    rate_limited,
    server_error,
)

CONTACT = "honeypot-ops@example.org"
IPS = [f"198.51.100.{n}" for n in range(1, 21)]  # documentation addresses: never real hosts


Sink = http_fake.Sink[DShieldResult]


def make_settings(base_url: str, **overrides: Any) -> DShieldSettings:
    # Fast: little pacing, millisecond backoffs and pauses, unless a test says otherwise.
    values: dict[str, Any] = {"base_url": base_url, "contact": CONTACT, "rate_per_second": 1000.0, "timeout": 2.0,
                              "retries": 2, "backoff_base": 0.01, "backoff_max": 0.05, "rate_limit_pause": 0.05,
                              "max_retry_after": 5.0}
    return DShieldSettings(**(values | overrides))


def run(fake: DShieldFake, ips: Iterable[str], *, budget: Callable[[int], int] | None = None,
        sleep: Callable[[float], None] | None = None, **overrides: Any) -> tuple[DShieldOutcome, Sink]:
    sink = Sink()
    with DShieldClient(make_settings(fake.url, **overrides), sleep=sleep) as client:
        outcome = client.run(ips, on_results=sink, budget=budget)
    return outcome, sink


def gaps(fake: DShieldFake, ip: str) -> list[float]:
    arrivals = [seen.at for seen in fake.requests_for(ip)]
    return [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------
def test_reported_ip_is_read_from_the_real_shape(dshield_fake: DShieldFake) -> None:
    ip = IPS[0]
    dshield_fake.records[ip] = dshield_record(ip, count="1234", attacks=56, asn="14061",
                                              feeds={"blocklistde22": ("2026-11-01", "2026-11-30"),
                                                     "ciarmy": ("2026-11-02", "2026-11-29")})
    outcome, sink = run(dshield_fake, [ip])

    assert sink.results[ip] == DShieldResult(
        ip, count=1234, attacks=56, mindate="2026-01-02", maxdate="2026-11-30", updated="2026-12-01 06:12:33",
        asn=14061, as_name="DIGITALOCEAN-ASN", as_country="US", network="203.0.113.0/24",
        threatfeeds={"blocklistde22": {"firstseen": "2026-11-01", "lastseen": "2026-11-30"},
                     "ciarmy": {"firstseen": "2026-11-02", "lastseen": "2026-11-29"}})
    assert "ip" not in sink.results[ip].to_json() and sink.results[ip].to_json()["count"] == 1234
    (seen,) = dshield_fake.requests
    assert (seen.method, seen.path) == ("GET", f"/api/ip/{ip}")
    assert seen.user_agent == f"ipintel/{__version__} (contact: {CONTACT})"
    assert (outcome.requests_made, outcome.results, outcome.failures) == (1, 1, 0)


def test_unreported_ip_is_a_real_negative_answer(dshield_fake: DShieldFake) -> None:
    outcome, sink = run(dshield_fake, [IPS[0], "2001:db8::7"])  # the fake's default: no report

    for ip in (IPS[0], "2001:db8::7"):
        result = sink.results[ip]
        assert (result.count, result.attacks, result.maxdate, result.threatfeeds) == (None, None, None, {})
        assert result.asn == 14061  # ISC fills in the AS for any routed address
    assert not sink.failures and outcome.results == 2
    assert [seen.path for seen in dshield_fake.requests] == [f"/api/ip/{IPS[0]}", "/api/ip/2001:db8::7"]


def test_numbers_that_are_not_counts_or_as_numbers_are_unknown(dshield_fake: DShieldFake) -> None:
    """Counts and AS numbers come as JSON integers or strings of digits; anything else (a
    fraction, a sign, an AS number beyond 32 bits, a boolean) would not fit the database's types."""
    ip = IPS[0]
    dshield_fake.records[ip] = {**dshield_record(ip, count="-3", attacks=12.5, asn=99_999_999_999), "asname": 7}
    dshield_fake.records[IPS[1]] = dshield_record(IPS[1], count=True, attacks=" 42 ", asn="4294967295")
    _, sink = run(dshield_fake, IPS[:2])

    first, second = sink.results[ip], sink.results[IPS[1]]
    assert (first.count, first.attacks, first.asn, first.as_name) == (None, None, None, None)
    assert (second.count, second.attacks, second.asn) == (None, 42, 4_294_967_295)


def test_error_answer_is_permanent_and_not_retried(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], Reply(200, {"ip": {"error": "bad IP address"}}))
    outcome, sink = run(dshield_fake, [IPS[0], IPS[1]], retries=3)

    assert sink.failures[IPS[0]] == LookupFailure(IPS[0], "DShield: bad IP address", 200, retryable=False)
    assert len(dshield_fake.requests_for(IPS[0])) == 1
    assert IPS[1] in sink.results
    assert (outcome.results, outcome.failures) == (1, 1)


def test_invalid_input_is_a_failure_and_never_sent(dshield_fake: DShieldFake) -> None:
    _, sink = run(dshield_fake, ["not-an-ip", IPS[0]])

    assert sink.failures["not-an-ip"].retryable is False
    assert [seen.ips for seen in dshield_fake.requests] == [(IPS[0],)]


def test_results_are_flushed_in_batches(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[2], Reply(400, raw=b"bad request"))
    _, sink = run(dshield_fake, IPS[:5], flush_every=2)

    assert sink.calls == [(2, 0), (1, 1), (1, 0)]
    assert (sink.failures[IPS[2]].status, sink.failures[IPS[2]].retryable) == (400, False)


# --------------------------------------------------------------------------------------------
# Fault switches: latency, garbage, resets, timeouts, 5xx
# --------------------------------------------------------------------------------------------
def test_latency_within_the_timeout_is_only_slower(dshield_fake: DShieldFake) -> None:
    dshield_fake.latency = 0.3
    started = time.monotonic()
    outcome, sink = run(dshield_fake, IPS[:2], timeout=2.0)

    assert time.monotonic() - started >= 0.6
    assert sorted(sink.results) == sorted(IPS[:2]) and outcome.requests_made == 2


def test_latency_beyond_the_timeout_is_retried_then_a_retryable_failure(dshield_fake: DShieldFake) -> None:
    dshield_fake.latency = 0.6
    _, sink = run(dshield_fake, [IPS[0]], timeout=0.2, retries=1)

    failure = sink.failures[IPS[0]]
    assert (failure.status, failure.retryable) == (None, True)
    assert "Timeout" in failure.error
    assert len(dshield_fake.requests_for(IPS[0])) == 2


def test_garbage_is_a_retryable_failure_never_a_result(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], GARBAGE)
    _, sink = run(dshield_fake, [IPS[0]])

    assert IPS[0] not in sink.results
    assert sink.failures[IPS[0]] == LookupFailure(IPS[0], "malformed JSON response", 200, retryable=True)


def test_json_without_the_ip_object_is_garbage_too(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], Reply(200, ["not", "an", "object"]))
    dshield_fake.script(IPS[1], Reply(200, {"ip": "1.2.3.4"}))
    _, sink = run(dshield_fake, IPS[:2])

    assert {ip: f.error for ip, f in sink.failures.items()} == dict.fromkeys(IPS[:2], "malformed JSON response")


def test_reset_connection_is_retried_then_succeeds(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], RESET, Reply(200))
    outcome, sink = run(dshield_fake, [IPS[0]], retries=2)

    assert IPS[0] in sink.results
    assert len(dshield_fake.requests_for(IPS[0])) == 2 and outcome.requests_made == 2


def test_reset_on_every_attempt_is_a_retryable_failure(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], RESET)
    _, sink = run(dshield_fake, IPS[:2], retries=1)

    failure = sink.failures[IPS[0]]
    assert (failure.status, failure.retryable) == (None, True)
    assert any(kind in failure.error for kind in ("ReadError", "RemoteProtocolError", "ConnectError")), failure.error
    assert IPS[1] in sink.results  # the pass goes on


def test_server_that_never_answers_times_out_and_the_pass_goes_on(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], HANG)
    started = time.monotonic()
    _, sink = run(dshield_fake, IPS[:2], timeout=0.4, retries=1)

    assert time.monotonic() - started < 5
    assert sink.failures[IPS[0]].retryable and "Timeout" in sink.failures[IPS[0]].error
    assert IPS[1] in sink.results


def test_dripping_answer_is_cut_at_the_deadline_of_the_whole_request(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], Reply(200, drip=0.4))
    _, sink = run(dshield_fake, [IPS[0]], timeout=1.0, retries=0)

    assert "no complete answer within 1s" in sink.failures[IPS[0]].error


def test_5xx_is_retried_then_succeeds(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], server_error(500), server_error(502), Reply(200))
    outcome, sink = run(dshield_fake, [IPS[0]], retries=2)

    assert IPS[0] in sink.results
    assert len(dshield_fake.requests_for(IPS[0])) == 3 and outcome.requests_made == 3


def test_5xx_after_every_retry_is_a_retryable_failure_with_its_retry_after(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], server_error(503, retry_after="0"))
    outcome, sink = run(dshield_fake, IPS[:2], retries=2)

    failure = sink.failures[IPS[0]]
    assert (failure.error, failure.status, failure.retryable, failure.retry_after) == \
        ("HTTP 503 server error", 503, True, 0.0)
    assert len(dshield_fake.requests_for(IPS[0])) == 3
    assert (outcome.failures, outcome.results, outcome.not_attempted) == (1, 1, [])


def test_connection_refused_is_a_retryable_failure() -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Sink()
    with DShieldClient(make_settings(f"http://127.0.0.1:{port}", retries=1)) as client:
        outcome = client.run([IPS[0]], on_results=sink)

    assert "ConnectError" in sink.failures[IPS[0]].error and outcome.requests_made == 2


def test_forgetting_json_would_read_xml_garbage(dshield_fake: DShieldFake) -> None:
    """The fake answers XML without ?json, as ISC does: the client's requests always ask for JSON."""
    run(dshield_fake, [IPS[0]])
    xml = httpx.get(f"{dshield_fake.url}/api/ip/{IPS[0]}")
    assert xml.text.startswith("<?xml")
    assert IPS[0] in [ip for seen in dshield_fake.requests for ip in seen.ips]


# --------------------------------------------------------------------------------------------
# 429: obey Retry-After, or stop for rate_limit_pause (5 minutes by default)
# --------------------------------------------------------------------------------------------
def test_429_with_retry_after_holds_every_request_that_long(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], rate_limited(retry_after="1"), Reply(200))
    outcome, sink = run(dshield_fake, IPS[:2])

    assert gaps(dshield_fake, IPS[0])[0] >= 0.95
    assert IPS[0] in sink.results and IPS[1] in sink.results
    assert not outcome.rate_limited


def test_429_without_retry_after_pauses_for_rate_limit_pause(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[0], rate_limited(), Reply(200))
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    outcome, sink = run(dshield_fake, [IPS[0]], rate_limit_pause=0.8, sleep=sleep)

    assert gaps(dshield_fake, IPS[0])[0] >= 0.75
    assert 0.8 in waits  # the pause went through the sleep the pass gave (its heartbeat)
    assert IPS[0] in sink.results and not outcome.rate_limited
    assert DShieldSettings(contact=CONTACT).rate_limit_pause == 300.0  # 5 minutes unless told otherwise


def test_429_on_every_attempt_stops_the_pass_and_leaves_the_rest(dshield_fake: DShieldFake) -> None:
    dshield_fake.script_next(Reply(200), rate_limited(), rate_limited(), rate_limited())
    outcome, sink = run(dshield_fake, IPS[:4], retries=2)

    assert outcome.rate_limited and outcome.retry_after is None
    assert list(sink.results) == [IPS[0]] and not sink.failures
    assert outcome.not_attempted == IPS[1:4]
    assert len(dshield_fake.requests) == 4


def test_retry_after_beyond_max_stops_at_once(dshield_fake: DShieldFake) -> None:
    dshield_fake.script(IPS[1], rate_limited(retry_after="3600"))
    started = time.monotonic()
    outcome, sink = run(dshield_fake, IPS[:3], max_retry_after=5.0)

    assert time.monotonic() - started < 3  # no waiting an hour
    assert (outcome.rate_limited, outcome.retry_after) == (True, 3600.0)
    assert outcome.not_attempted == IPS[1:3]
    assert len(dshield_fake.requests_for(IPS[1])) == 1


def test_refused_client_stops_the_pass_naming_the_contact_setting(dshield_fake: DShieldFake) -> None:
    dshield_fake.required_contact = "someone-else@example.org"
    with pytest.raises(DShieldRefused) as raised:
        run(dshield_fake, IPS[:3])

    assert "HTTP 403" in str(raised.value) and "IPINTEL_DSHIELD_CONTACT" in str(raised.value)
    assert raised.value.outcome.not_attempted == IPS[:3]
    assert len(dshield_fake.requests) == 1


# --------------------------------------------------------------------------------------------
# Pacing and the budget
# --------------------------------------------------------------------------------------------
def test_rate_limit_holds_across_the_pass_retries_included(dshield_fake: DShieldFake) -> None:
    rate = 5.0
    dshield_fake.script(IPS[3], server_error(500), Reply(200))  # the retry counts against the rate too
    run(dshield_fake, IPS[:9], rate_per_second=rate, backoff_base=0.0)

    arrivals = [seen.at for seen in dshield_fake.requests]  # time.monotonic() at the server
    assert len(arrivals) == 10
    # No more than `rate` requests in any one second (small slack for socket jitter).
    for first, later in zip(arrivals, arrivals[int(rate):], strict=False):
        assert later - first >= 0.95, arrivals
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) <= rate * 1.05


def test_default_rate_is_one_request_a_second() -> None:
    assert DShieldSettings(contact=CONTACT).rate_per_second == 1.0


def test_budget_stops_the_pass(dshield_fake: DShieldFake) -> None:
    left, asked = 3, []

    def budget(n: int) -> int:
        nonlocal left
        asked.append(n)
        granted, left = min(n, left), left - min(n, left)
        return granted

    dshield_fake.script(IPS[1], server_error(500), Reply(200))  # a retry is not charged again
    outcome, sink = run(dshield_fake, IPS[:6], budget=budget)

    assert outcome.budget_exhausted and not outcome.rate_limited
    assert sorted(sink.results) == sorted(IPS[:3])
    assert outcome.not_attempted == IPS[3:6]
    assert asked == [1, 1, 1, 1]
    assert len(dshield_fake.requests) == 4


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("contact", ["ops@example.org", "https://example.org/honeypot", "http://example.org"])
def test_contacts_that_are_accepted(contact: str) -> None:
    assert contact_problem(contact) is None


@pytest.mark.parametrize("contact", ["", "me", "ops at example dot org", "ops@example.org (Ops)", "ftp://example.org",
                                     "ops@exa mple.org", "café@example.org", "ops@example.org\r\nX-Evil: 1",
                                     "https://user:pw@example.org"])
def test_contacts_that_are_refused(contact: str) -> None:
    assert contact_problem(contact)
    with pytest.raises(ValueError, match="DShield contact"):
        DShieldSettings(contact=contact)


def test_settings_defaults_and_bad_values() -> None:
    settings = DShieldSettings(contact=CONTACT)
    assert settings.base_url == "https://isc.sans.edu"
    with pytest.raises(ValueError, match="not an http"):
        DShieldSettings(contact=CONTACT, base_url="isc.sans.edu")
    with pytest.raises(ValueError):
        DShieldSettings(contact=CONTACT, rate_per_second=0)
    with pytest.raises(ValueError):
        DShieldSettings(contact=CONTACT, rate_limit_pause=-1)
