"""GreyNoise client against the fake GreyNoise over real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from ipintel.sources.greynoise import (
    GreyNoiseAuthError,
    GreyNoiseClient,
    GreyNoiseOutcome,
    GreyNoiseResult,
    GreyNoiseSettings,
    parse_retry_after,
    redact,
)
from tests.fakes import http_fake
from tests.fakes.greynoise_server import (
    GreyNoiseFake,
    Reply,
    community_record,
    greynoise_fake,  # noqa: F401
    v3_record,
)

# Documentation addresses (RFC 5737 / 3849): never real hosts.
IPS = [f"198.51.100.{n}" for n in range(1, 21)]


Sink = http_fake.Sink[GreyNoiseResult]


def make_settings(base_url: str, api_key: str, **overrides: Any) -> GreyNoiseSettings:
    # Fast defaults: no pacing to speak of and millisecond backoffs, unless a test says otherwise.
    values: dict[str, Any] = {
        "base_url": base_url,
        "api_key": api_key,
        "rate_per_second": 1000.0,
        "timeout": 2.0,
        "retries": 2,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "max_retry_after": 5.0,
    }
    return GreyNoiseSettings(**(values | overrides))


def run(
    fake: GreyNoiseFake,
    ips: Iterable[str],
    *,
    budget: Callable[[int], int] | None = None,
    **overrides: Any,
) -> tuple[GreyNoiseOutcome, Sink]:
    sink = Sink()
    settings = make_settings(fake.url, overrides.pop("api_key", fake.api_key), **overrides)
    with GreyNoiseClient(settings) as client:
        outcome = client.run(ips, on_results=sink, budget=budget)
    return outcome, sink


def counting_budget(total: int) -> tuple[Callable[[int], int], list[int]]:
    """A budget of ``total`` lookups, like the caller's PostgreSQL counter; records each ask."""
    asked: list[int] = []
    left = total

    def budget(n: int) -> int:
        nonlocal left
        asked.append(n)
        granted = min(n, left)
        left -= granted
        return granted

    return budget, asked


def test_200_observed_ip_is_kept(greynoise_fake: GreyNoiseFake) -> None:
    ip = IPS[0]
    greynoise_fake.script(
        ip, Reply(200, community_record(ip, noise=False, riot=True, classification="benign", name="Google"))
    )
    outcome, sink = run(greynoise_fake, [ip])

    assert sink.results[ip] == GreyNoiseResult(
        ip,
        observed=True,
        noise=False,
        riot=True,
        classification="benign",
        name="Google",
        link=f"https://viz.greynoise.io/ip/{ip}",
        last_seen="2026-01-15",
    )
    assert sink.results[ip].to_json() == {
        "ip": ip,
        "observed": True,
        "noise": False,
        "riot": True,
        "classification": "benign",
        "name": "Google",
        "link": f"https://viz.greynoise.io/ip/{ip}",
        "last_seen": "2026-01-15",
    }
    (seen,) = greynoise_fake.requests
    assert (seen.method, seen.path, seen.key) == ("GET", f"/v3/community/{ip}", greynoise_fake.api_key)
    assert (outcome.requests_made, outcome.results, outcome.failures) == (1, 1, 0)


def test_404_is_a_negative_result(greynoise_fake: GreyNoiseFake) -> None:
    outcome, sink = run(greynoise_fake, [IPS[0]])  # the fake answers 404 for unknown IPv4

    assert sink.results[IPS[0]] == GreyNoiseResult(IPS[0], observed=False, noise=False, riot=False)
    assert not sink.failures
    assert outcome.results == 1


def test_400_is_permanent_and_not_retried(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[0], Reply(400))
    outcome, sink = run(greynoise_fake, [IPS[0], IPS[1]], retries=3)

    failure = sink.failures[IPS[0]]
    assert (failure.status, failure.retryable) == (400, False)
    assert "routable IPv4" in failure.error
    assert len(greynoise_fake.requests_for(IPS[0])) == 1
    assert IPS[1] in sink.results  # the pass goes on
    assert (outcome.results, outcome.failures) == (1, 1)


def test_invalid_ip_input_is_a_failure_and_never_sent(greynoise_fake: GreyNoiseFake) -> None:
    outcome, sink = run(greynoise_fake, ["not-an-ip", IPS[0]])

    assert sink.failures["not-an-ip"].retryable is False
    assert [seen.ips for seen in greynoise_fake.requests] == [(IPS[0],)]
    assert outcome.failures == 1


def test_401_stops_the_pass_without_showing_the_key(greynoise_fake: GreyNoiseFake) -> None:
    wrong_key = "gn-wrong-key-0a9f8e7d6c"
    with pytest.raises(GreyNoiseAuthError) as raised:
        run(greynoise_fake, IPS[:3], api_key=wrong_key)

    message = str(raised.value)
    assert "key" in message and "401" in message
    assert wrong_key not in message and wrong_key not in repr(raised.value)
    outcome = raised.value.outcome
    assert outcome.auth_failed
    assert outcome.not_attempted == IPS[:3]
    assert outcome.requests_made == 1
    assert [seen.key for seen in greynoise_fake.requests] == [wrong_key]


def test_401_mid_pass_hands_over_what_was_gathered(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[1], Reply(401))
    sink = Sink()
    with (
        GreyNoiseClient(make_settings(greynoise_fake.url, greynoise_fake.api_key)) as client,
        pytest.raises(GreyNoiseAuthError) as raised,
    ):
        client.run(IPS[:4], on_results=sink)

    assert list(sink.results) == [IPS[0]]
    assert raised.value.outcome.not_attempted == IPS[1:4]
    assert len(greynoise_fake.requests) == 2


def test_429_retry_after_is_honoured(greynoise_fake: GreyNoiseFake) -> None:
    ip = IPS[0]
    greynoise_fake.script(ip, Reply(429, retry_after="1"), Reply(200))
    outcome, sink = run(greynoise_fake, [ip])

    first, second = greynoise_fake.requests_for(ip)
    assert second.at - first.at >= 0.95
    assert sink.results[ip].observed
    assert not outcome.quota_exhausted


def test_retry_after_longer_than_max_means_quota_gone(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[1], Reply(429, retry_after="3600"))
    outcome, sink = run(greynoise_fake, IPS[:4], max_retry_after=5.0)

    assert outcome.quota_exhausted
    assert outcome.not_attempted == IPS[1:4]
    assert list(sink.results) == [IPS[0]]
    assert len(greynoise_fake.requests_for(IPS[1])) == 1  # no waiting an hour, no retry


def test_daily_quota_stops_cleanly_and_a_second_run_resumes(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.quota = 3
    ips = IPS[:5]
    outcome, sink = run(greynoise_fake, ips)

    assert outcome.quota_exhausted and not outcome.budget_exhausted
    assert sorted(sink.results) == sorted(ips[:3])
    assert not sink.failures
    assert outcome.not_attempted == ips[3:]
    assert outcome.requests_made == 4

    greynoise_fake.reset_quota()  # the next day
    second, sink2 = run(greynoise_fake, outcome.not_attempted)
    assert not second.quota_exhausted and second.not_attempted == []
    assert sorted(sink2.results) == sorted(ips[3:])
    # Every IP was answered exactly once over the two days.
    assert all(len(greynoise_fake.requests_for(ip)) == 1 for ip in ips[:3] + ips[4:])


def test_429_after_every_retry_means_quota_gone(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[0], Reply(429, retry_after="0"))
    outcome, sink = run(greynoise_fake, IPS[:2], retries=2)

    assert outcome.quota_exhausted
    assert outcome.not_attempted == IPS[:2]
    assert len(greynoise_fake.requests_for(IPS[0])) == 3
    assert not sink.failures and not sink.results


def test_5xx_is_retried_then_succeeds(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[0], Reply(500), Reply(502), Reply(200))
    outcome, sink = run(greynoise_fake, [IPS[0]], retries=2)

    assert sink.results[IPS[0]].observed
    assert len(greynoise_fake.requests_for(IPS[0])) == 3
    assert outcome.requests_made == 3


def test_5xx_after_every_retry_is_a_retryable_failure(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[0], Reply(503, retry_after="0"))
    outcome, sink = run(greynoise_fake, IPS[:2], retries=2)

    failure = sink.failures[IPS[0]]
    assert (failure.status, failure.retryable, failure.retry_after) == (503, True, 0.0)
    assert len(greynoise_fake.requests_for(IPS[0])) == 3
    assert IPS[1] in sink.results
    assert (outcome.failures, outcome.results, outcome.not_attempted) == (1, 1, [])


def test_timeout_is_retried_then_succeeds(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[0], Reply(200, delay=0.6), Reply(200))
    _, sink = run(greynoise_fake, [IPS[0]], timeout=0.2, retries=1)

    assert sink.results[IPS[0]].observed
    assert len(greynoise_fake.requests_for(IPS[0])) == 2


def test_timeout_after_every_retry_is_a_retryable_failure(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[0], Reply(200, delay=0.6))
    _, sink = run(greynoise_fake, [IPS[0]], timeout=0.2, retries=1)

    failure = sink.failures[IPS[0]]
    assert (failure.status, failure.retryable) == (None, True)
    assert "Timeout" in failure.error
    assert len(greynoise_fake.requests_for(IPS[0])) == 2


def test_connection_refused_is_a_retryable_failure() -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Sink()
    settings = make_settings(f"http://127.0.0.1:{port}", "gn-unused-key", retries=1)
    with GreyNoiseClient(settings) as client:
        outcome = client.run([IPS[0]], on_results=sink)

    failure = sink.failures[IPS[0]]
    assert (failure.status, failure.retryable) == (None, True)
    assert "ConnectError" in failure.error
    assert outcome.requests_made == 2


def test_rate_limit_holds_across_the_pass(greynoise_fake: GreyNoiseFake) -> None:
    rate = 5.0
    greynoise_fake.script(IPS[3], Reply(500), Reply(200))  # retries count against the rate too
    run(greynoise_fake, IPS[:9], rate_per_second=rate, backoff_base=0.0)

    arrivals = [seen.at for seen in greynoise_fake.requests]
    assert len(arrivals) == 10
    window = int(rate)
    # No more than `rate` requests in any one-second window (small slack for socket jitter).
    for first, later in zip(arrivals, arrivals[window:], strict=False):
        assert later - first >= 0.95
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) <= rate * 1.05


def test_budget_stops_the_pass(greynoise_fake: GreyNoiseFake) -> None:
    budget, asked = counting_budget(3)
    outcome, sink = run(greynoise_fake, IPS[:6], budget=budget)

    assert outcome.budget_exhausted and not outcome.quota_exhausted
    assert len(sink.results) == 3
    assert outcome.not_attempted == IPS[3:6]
    assert len(greynoise_fake.requests) == 3
    assert asked == [1, 1, 1, 1]


def test_budget_partial_grant_shrinks_an_enterprise_chunk(greynoise_fake: GreyNoiseFake) -> None:
    budget, asked = counting_budget(6)
    outcome, sink = run(greynoise_fake, IPS[:10], budget=budget, tier="enterprise", chunk_size=4)

    assert [seen.ips for seen in greynoise_fake.requests] == [tuple(IPS[0:4]), tuple(IPS[4:6])]
    assert asked == [4, 4, 4]
    assert outcome.budget_exhausted
    assert outcome.not_attempted == IPS[6:10]
    assert len(sink.results) == 6


def test_ipv6_is_skipped_and_never_sent(greynoise_fake: GreyNoiseFake) -> None:
    outcome, sink = run(greynoise_fake, ["2001:db8::1", IPS[0], "2001:DB8:0:0::2"])

    assert outcome.skipped_ipv6 == ["2001:db8::1", "2001:db8::2"]
    assert [seen.ips for seen in greynoise_fake.requests] == [(IPS[0],)]
    assert list(sink.results) == [IPS[0]]


def test_enterprise_multi_endpoint_with_not_found_and_chunks(greynoise_fake: GreyNoiseFake) -> None:
    ips = IPS[:7]
    greynoise_fake.records = {
        ips[0]: v3_record(ips[0], actor="Shodan.io", classification="benign"),
        ips[1]: v3_record(ips[1], noise=False, riot=True, service="Cloudflare DNS"),
        ips[4]: community_record(ips[4], classification="malicious", name="unknown"),
        ips[6]: v3_record(ips[6], noise=False, riot=False),
    }
    outcome, sink = run(greynoise_fake, ips, tier="enterprise", chunk_size=3)

    sent = [seen for seen in greynoise_fake.requests]
    assert [(seen.method, seen.path) for seen in sent] == [("POST", "/v3/ip")] * 3
    assert [len(seen.ips) for seen in sent] == [3, 3, 1]
    assert sink.results[ips[0]] == GreyNoiseResult(
        ips[0], True, noise=True, riot=False, classification="benign", name="Shodan.io", last_seen="2026-01-15"
    )
    assert sink.results[ips[1]] == GreyNoiseResult(ips[1], True, noise=False, riot=True, name="Cloudflare DNS")
    community_shaped = sink.results[ips[4]]
    assert (community_shaped.observed, community_shaped.noise, community_shaped.name) == (True, True, "unknown")
    for ip in (ips[2], ips[3], ips[5]):  # listed in ips_not_found
        assert sink.results[ip] == GreyNoiseResult(ip, observed=False, noise=False, riot=False)
    assert sink.results[ips[6]].observed is False  # a record that is found in neither dataset
    assert (outcome.requests_made, outcome.results, outcome.failures) == (3, 7, 0)


def test_enterprise_chunk_5xx_retried_and_429_quota(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.records = {ip: v3_record(ip) for ip in IPS[:9]}
    greynoise_fake.script_multi(Reply(500), Reply(200))
    greynoise_fake.quota = 4  # lookups: the first two chunks fit, the third is refused
    outcome, sink = run(greynoise_fake, IPS[:9], tier="enterprise", chunk_size=3)

    assert outcome.requests_made == 4  # 500, 200, 200, 429 (Retry-After: a day)
    assert outcome.quota_exhausted
    assert sorted(sink.results) == sorted(IPS[:6])
    assert outcome.not_attempted == IPS[6:9]


def test_results_are_flushed_in_batches(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[2], Reply(400))
    _, sink = run(greynoise_fake, IPS[:5], flush_every=2)

    assert sink.calls == [(2, 0), (1, 1), (1, 0)]


def test_api_key_never_leaks(greynoise_fake: GreyNoiseFake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx, httpcore and ipintel at their chattiest
    key = greynoise_fake.api_key
    greynoise_fake.script(IPS[0], Reply(400))
    greynoise_fake.script(IPS[1], Reply(500, {"message": f"echoing {key}"}))
    greynoise_fake.script(IPS[2], Reply(200, delay=0.5))
    greynoise_fake.script(IPS[3], Reply(429, retry_after="0"))
    texts: list[str] = []

    outcome, sink = run(greynoise_fake, IPS[:5], retries=1, timeout=0.2)
    texts += [repr(outcome), repr(make_settings(greynoise_fake.url, key))]
    texts += [f.error for f in sink.failures.values()] + [repr(f) for f in sink.failures.values()]
    texts += [repr(r.to_json()) for r in sink.results.values()]
    assert sink.failures and outcome.quota_exhausted  # the error paths above were exercised

    greynoise_fake.script(IPS[5], Reply(401))
    with pytest.raises(GreyNoiseAuthError) as raised:
        run(greynoise_fake, [IPS[5]])
    texts += [str(raised.value), repr(raised.value), repr(raised.value.outcome)]

    texts.append(caplog.text)
    assert "HTTP Request" in caplog.text  # httpx did log its requests
    for text in texts:
        assert key not in text


def test_settings_repr_hides_key_and_bad_values_are_refused() -> None:
    settings = GreyNoiseSettings(api_key="gn-secret-1234")
    assert "gn-secret-1234" not in repr(settings)
    assert settings.base_url == "https://api.greynoise.io" and settings.tier == "community"
    with pytest.raises(ValueError):
        GreyNoiseSettings(api_key="k", tier="pro")  # type: ignore[arg-type]  # deliberately not a Tier: refused at run time
    with pytest.raises(ValueError):
        GreyNoiseSettings(api_key="k", rate_per_second=0)
    with pytest.raises(ValueError):
        GreyNoiseSettings(api_key="")


def test_redact() -> None:
    assert redact("boom with secret-key inside secret-key", "secret-key") == "boom with [REDACTED] inside [REDACTED]"
    assert redact("nothing to hide", "") == "nothing to hide"


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("inf") is None
    assert parse_retry_after(None) is None


def test_http_date_retry_after_is_honoured(greynoise_fake: GreyNoiseFake) -> None:
    # HTTP-dates have one-second resolution: the retry must not come before the second named.
    # Checked on the wall clock (the fake stamps arrivals with time.monotonic(), in this process),
    # not as a gap after the first request: on a loaded machine the 429 may arrive late, and the
    # wait left until the date is then rightly shorter.
    wall_minus_monotonic = time.time() - time.monotonic()
    not_before = int(time.time()) + 2
    when = datetime.fromtimestamp(not_before, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    greynoise_fake.script(IPS[0], Reply(429, retry_after=when), Reply(200))
    _, sink = run(greynoise_fake, [IPS[0]])

    first, second = greynoise_fake.requests_for(IPS[0])
    assert second.at + wall_minus_monotonic >= not_before - 0.05  # the retry waited for the date
    assert second.at > first.at
    assert sink.results[IPS[0]].observed


def test_dripping_answer_is_cut_at_the_deadline_of_the_whole_request(greynoise_fake: GreyNoiseFake) -> None:
    # A line every 0.4 s never leaves the client waiting 1 s for one read, so httpx's own
    # timeout never fires: only the deadline for the whole answer ends it.
    greynoise_fake.script(IPS[0], Reply(200, drip=0.4))
    started = time.monotonic()
    _, sink = run(greynoise_fake, [IPS[0]], timeout=1.0, retries=1)
    elapsed = time.monotonic() - started

    failure = sink.failures[IPS[0]]
    assert failure.retryable and "no complete answer within 1s" in failure.error
    assert len(greynoise_fake.requests_for(IPS[0])) == 2
    assert elapsed < 2 * (1.0 + 0.4) + 1.0  # two attempts, each cut just after its deadline


def test_server_that_accepts_and_never_answers_is_a_retryable_failure(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[0], Reply(hang=True))
    greynoise_fake.script(IPS[1], Reply(200))
    started = time.monotonic()
    _, sink = run(greynoise_fake, IPS[:2], timeout=0.5, retries=1)

    assert time.monotonic() - started < 5
    assert sink.failures[IPS[0]].retryable and "Timeout" in sink.failures[IPS[0]].error
    assert sink.results[IPS[1]].observed  # the next IP is asked all the same


def test_garbage_body_is_a_retryable_failure_never_a_result(greynoise_fake: GreyNoiseFake) -> None:
    greynoise_fake.script(IPS[0], Reply(200, raw=b"\x1b[31m<html>not json\x00\xff"))
    _, sink = run(greynoise_fake, [IPS[0]])

    assert IPS[0] not in sink.results
    assert (sink.failures[IPS[0]].error, sink.failures[IPS[0]].retryable) == ("malformed JSON response", True)


def test_redirect_is_not_followed_so_the_key_stays_with_the_api(greynoise_fake: GreyNoiseFake) -> None:
    with socket.socket() as elsewhere:  # where a redirect would take the key: nothing may connect
        elsewhere.bind(("127.0.0.1", 0))
        elsewhere.listen()
        elsewhere.settimeout(0.5)
        greynoise_fake.script(IPS[0], Reply(302, headers={"Location": f"http://127.0.0.1:{elsewhere.getsockname()[1]}/"}))
        _, sink = run(greynoise_fake, [IPS[0]])
        with pytest.raises(TimeoutError):
            elsewhere.accept()
    assert (sink.failures[IPS[0]].status, sink.failures[IPS[0]].retryable) == (302, False)


@pytest.mark.parametrize("url", ["http://api.greynoise.io", "http://10.0.0.5:8080", "http://[2001:db8::1]"])
def test_key_is_never_sent_over_plain_http_to_another_host(url: str) -> None:
    with pytest.raises(ValueError, match="the API key is sent over https only"):
        make_settings(url, "k")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://127.8.9.10", "http://[::1]:81", "http://localhost",
                                 "https://api.greynoise.io"])
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert make_settings(url, "k").base_url == url
