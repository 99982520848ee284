"""The Team Cymru bulk whois client against a fake server over real TCP sockets.

Every fault must end in correct data or in a recorded failure that carries the batch's IPs:
never a wrong ASN, never an exception out of ``lookup``. Timeouts and backoff are tiny so the
whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import time

import pytest

from ipintel.sources.cymru import (
    CymruOrigin,
    CymruOutcome,
    CymruResult,
    CymruSettings,
    _split_batches,
    lookup,
    parse_bulk_response,
    split_addr,
)
from tests.fakes.cymru_server import NO_MATCH, Behaviour, FakeCymruServer, cymru_server, format_row  # noqa: F401

GOOGLE = "74.125.225.229"
UNROUTED = "89.38.234.0"
MULTI = "198.51.100.7"
OTHER = "192.0.2.50"
V6 = "2001:db8::68"
CYRILLIC = "203.0.113.9"
NO_MATCH_IP = "203.0.113.77"
CYRILLIC_NAME = "ТЕЛЕКОМ-АС, ООО «Связь», RU"

TABLE = {
    GOOGLE: [(15169, "74.125.225.0/24", "US", "arin", "2007-03-13", "GOOGLE, US")],
    UNROUTED: [(None, None, "RO", "ripencc", "2005-11-29", None)],
    MULTI: [
        (64500, "198.51.0.0/16", "US", "arin", "2001-01-01", "WIDE, US"),
        (64502, "198.51.100.0/24", "US", "arin", "2001-01-01", "NARROW-B, US"),
        (64501, "198.51.100.0/24", "US", "arin", "2001-01-01", "NARROW-A, US"),
    ],
    OTHER: [(64496, "192.0.2.0/24", "", "other", "", "EXAMPLE")],
    V6: [(64497, "2001:db8::/32", "ZZ", "ripencc", "2020-01-01", "EXAMPLE-V6")],
    CYRILLIC: [(64511, "203.0.113.0/24", "RU", "ripencc", "2010-05-05", CYRILLIC_NAME)],
    NO_MATCH_IP: NO_MATCH,
}
# The only ASN each IP may ever be given.
CURRENT_ASN = {GOOGLE: 15169, UNROUTED: None, MULTI: 64501, OTHER: 64496, V6: 64497, CYRILLIC: 64511}


def fast(server: FakeCymruServer, **overrides: float) -> CymruSettings:
    """Settings for tests: the real batching and concurrency, tiny timeouts and backoff."""
    values: dict = dict(
        addr=server.addr, connect_timeout=2.0, read_timeout=2.0, retries=1, backoff_base=0.01, backoff_max=0.02
    )
    values.update(overrides)
    return CymruSettings(**values)


def run(ips: list[str], settings: CymruSettings) -> tuple[CymruOutcome, dict[str, CymruResult], list[str], int]:
    """``lookup`` with an ``on_batch`` that collects; returns outcome, results, not_found, calls."""
    results: dict[str, CymruResult] = {}
    not_found: list[str] = []
    calls = 0

    def on_batch(batch_results: list[CymruResult], batch_not_found: list[str]) -> None:
        nonlocal calls
        calls += 1
        for result in batch_results:
            assert result.ip not in results, "an IP was delivered twice"
            results[result.ip] = result
        not_found.extend(batch_not_found)

    outcome = asyncio.run(lookup(ips, settings, on_batch))
    return outcome, results, not_found, calls


def assert_no_wrong_asn(results: dict[str, CymruResult]) -> None:
    for ip, result in results.items():
        assert result.current.asn == CURRENT_ASN[ip], ip


def many_ips(count: int) -> list[str]:
    return [str(ipaddress.IPv4Address("10.0.0.0") + i) for i in range(count)]


# --- every response form ------------------------------------------------------------------------


def test_every_response_form(cymru_server):
    server = cymru_server(TABLE)
    ips = [GOOGLE, UNROUTED, MULTI, OTHER, "2001:DB8:0::68", CYRILLIC, NO_MATCH_IP, "::ffff:74.125.225.229"]

    outcome, results, not_found, calls = run(ips, fast(server))

    assert outcome.failures == [] and outcome.garbage == 0
    assert (outcome.batches, outcome.connections, calls) == (1, 1, 1)
    # Sent once each, normalised: the IPv4-mapped duplicate and the upper-case IPv6 collapse.
    assert server.queries == [[GOOGLE, UNROUTED, MULTI, OTHER, V6, CYRILLIC, NO_MATCH_IP]]
    assert outcome.results == len(results) == 6
    assert not_found == outcome.not_found == [NO_MATCH_IP]
    assert_no_wrong_asn(results)

    assert results[GOOGLE].origins == [
        CymruOrigin(15169, "74.125.225.0/24", "US", "arin", datetime.date(2007, 3, 13), "GOOGLE, US")
    ]
    unrouted = results[UNROUTED].current
    assert unrouted == CymruOrigin(None, None, "RO", "ripencc", datetime.date(2005, 11, 29), None)

    multi = results[MULTI]
    assert [origin.asn for origin in multi.origins] == [64500, 64502, 64501]  # all kept
    # The /24s beat the /16 (most specific); between the two /24s the lowest ASN.
    current = multi.current
    assert (current.asn, current.prefix, current.as_name) == (64501, "198.51.100.0/24", "NARROW-A, US")

    assert results[OTHER].current == CymruOrigin(64496, "192.0.2.0/24", None, "other", None, "EXAMPLE")
    assert results[V6].current.prefix == "2001:db8::/32"
    assert results[CYRILLIC].current.as_name == CYRILLIC_NAME


def test_rows_are_matched_by_ip_when_the_answer_comes_out_of_order(cymru_server):
    server = cymru_server(TABLE)
    server.default = Behaviour(reverse_order=True)

    outcome, results, not_found, _ = run([GOOGLE, MULTI, OTHER, V6, CYRILLIC, NO_MATCH_IP], fast(server))

    assert outcome.failures == []
    assert set(results) == {GOOGLE, MULTI, OTHER, V6, CYRILLIC} and not_found == [NO_MATCH_IP]
    assert_no_wrong_asn(results)


def test_unknown_ip_is_an_unrouted_result_not_a_failure(cymru_server):
    server = cymru_server(TABLE)  # unknown IPs get "NA | ip | NA | | other | | NA"

    outcome, results, _, _ = run([GOOGLE, "100.64.1.1"], fast(server))

    assert outcome.failures == []
    assert results["100.64.1.1"].current == CymruOrigin(None, None, None, "other", None, None)


def test_fake_numbers_error_lines_as_the_client_maps_them(cymru_server):
    """A raw session with a non-IP line: the fake's Error numbering lands on the right request line."""
    server = cymru_server(TABLE)
    host, port = split_addr(server.addr)
    body = [GOOGLE, "www.example.com", MULTI]
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(("BEGIN\r\nVERBOSE\r\n" + "".join(f"{line}\r\n" for line in body) + "END\r\n").encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk

    lines = answer.decode().splitlines()
    assert lines[0].startswith("Bulk mode; whois.cymru.com [") and lines[0].endswith(" +0000]")
    assert "Error: no ASN or IP match on line 4." in lines
    parsed = parse_bulk_response(lines, body)
    assert parsed.not_found == ["www.example.com"] and parsed.missing == []
    assert set(parsed.results) == {GOOGLE, MULTI} and parsed.garbage == 0


def test_lookup_refuses_non_ip_input_before_connecting(cymru_server):
    server = cymru_server(TABLE)
    for bad in ("end", "AS15169", "fe80::1%eth0", "1.2.3.4\nend"):
        with pytest.raises(ValueError, match="not an IP address"):
            asyncio.run(lookup([GOOGLE, bad], fast(server)))
    assert server.connections == 0


# --- faults -------------------------------------------------------------------------------------


def test_latency_within_read_timeout_is_fine(cymru_server):
    server = cymru_server(TABLE)
    server.default = Behaviour(latency=0.2, close_delay=0.2)

    outcome, results, _, _ = run([GOOGLE, MULTI], fast(server, read_timeout=1.5))

    assert outcome.failures == [] and outcome.connections == 1
    assert_no_wrong_asn(results)


def test_latency_beyond_read_timeout_is_retried(cymru_server):
    server = cymru_server(TABLE)
    server.behaviours.append(Behaviour(latency=0.5))

    outcome, results, _, _ = run([GOOGLE, MULTI], fast(server, read_timeout=0.2))

    assert outcome.failures == [] and outcome.connections == 2
    assert set(results) == {GOOGLE, MULTI}
    assert_no_wrong_asn(results)


@pytest.mark.parametrize(
    "fault",
    [
        Behaviour(reset_after_rows=2),  # TCP reset mid-answer
        Behaviour(close_after_rows=2),  # clean close, answer cut short
        Behaviour(half_line_after_rows=2),  # half-written row, then close
        Behaviour(half_line_after_rows=1, trickle_chunk=16, trickle_delay=0.001),
        Behaviour(refuse=True),  # closed on accept
    ],
    ids=["reset", "clean-close", "half-line", "half-line-trickled", "refused"],
)
def test_broken_answer_is_retried_then_correct(cymru_server, fault):
    server = cymru_server(TABLE)
    server.behaviours.append(fault)
    ips = [GOOGLE, MULTI, OTHER, V6, CYRILLIC]

    outcome, results, _, calls = run(ips, fast(server))

    assert outcome.failures == [] and outcome.connections == 2 and calls == 1
    assert set(results) == set(ips)
    assert_no_wrong_asn(results)
    # The partial first answer was thrown away, not merged: MULTI keeps all three origins once.
    assert len(results[MULTI].origins) == 3


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Behaviour(reset_after_rows=1), "CymruConnectionError"),
        (Behaviour(close_after_rows=1), "CymruIncompleteError"),
        (Behaviour(half_line_after_rows=1), "CymruProtocolError"),
        (Behaviour(refuse=True), "Cymru"),
        (Behaviour(hang=True), "CymruTimeoutError"),
    ],
    ids=["reset", "clean-close", "half-line", "refused", "hang"],
)
def test_persistent_fault_becomes_a_recorded_failure(cymru_server, fault, error):
    server = cymru_server(TABLE)
    server.default = fault
    ips = [GOOGLE, MULTI, OTHER]

    outcome, results, not_found, calls = run(ips, fast(server, read_timeout=0.2, retries=2))

    assert (results, not_found, calls, outcome.results) == ({}, [], 0, 0)
    [failure] = outcome.failures
    assert failure.ips == ips and failure.attempts == 3 and failure.error.startswith(error)
    assert outcome.connections == server.connections == 3


def test_nothing_listening_is_a_recorded_failure():
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = CymruSettings(addr=f"127.0.0.1:{port}", connect_timeout=0.5, retries=1, backoff_base=0.01)

    outcome = asyncio.run(lookup([GOOGLE, MULTI], settings))

    [failure] = outcome.failures
    assert failure.ips == [GOOGLE, MULTI] and failure.error.startswith("CymruConnectionError")
    assert outcome.connections == 2


def test_hang_is_bounded_by_read_timeout(cymru_server):
    server = cymru_server(TABLE)
    server.default = Behaviour(hang=True)
    started = time.monotonic()

    outcome, _, _, _ = run([GOOGLE, MULTI], fast(server, read_timeout=0.2, retries=1))

    assert time.monotonic() - started < 1.5
    assert [failure.ips for failure in outcome.failures] == [[GOOGLE, MULTI]]
    assert server.queries == [[GOOGLE, MULTI], [GOOGLE, MULTI]]  # the query went out; no answer came


def test_slow_trickle_that_keeps_sending_is_fine(cymru_server):
    server = cymru_server(TABLE)
    server.default = Behaviour(trickle_chunk=16, trickle_delay=0.01)
    ips = [GOOGLE, UNROUTED, MULTI, OTHER, V6, CYRILLIC]
    started = time.monotonic()

    outcome, results, _, _ = run(ips, fast(server, read_timeout=0.25))

    # The answer took longer than read_timeout in all, but never went silent that long.
    assert time.monotonic() - started > 0.25
    assert outcome.failures == [] and outcome.connections == 1
    assert set(results) == set(ips)
    assert_no_wrong_asn(results)


def test_drip_fed_answer_is_cut_by_the_batch_deadline(cymru_server):
    """A line every 0.25 s is never silence for read_timeout (2 s): only the batch deadline ends
    such an answer. Each attempt stops at batch_timeout and the batch becomes a failure."""
    server = cymru_server(TABLE)
    server.default = Behaviour(drip=0.25)
    ips = [GOOGLE, UNROUTED, MULTI, OTHER, V6, CYRILLIC]  # banner + 8 rows: 2.25 s for a whole answer
    started = time.monotonic()

    outcome, results, not_found, calls = run(ips, fast(server, read_timeout=2.0, batch_timeout=0.6, retries=1))

    elapsed = time.monotonic() - started
    assert elapsed < 2 * 0.6 + 0.5, elapsed  # two attempts, each cut at its deadline
    assert (results, not_found, calls, outcome.results) == ({}, [], 0, 0)
    [failure] = outcome.failures
    assert failure.ips == ips and failure.attempts == 2
    assert failure.error.startswith("CymruTimeoutError: no complete answer within 0.6s"), failure.error
    assert outcome.connections == server.connections == 2
    assert (outcome.out_of_time, outcome.unfinished) == (False, [])


def test_pass_budget_bounds_a_silent_server(cymru_server):
    """Silence costs read_timeout per attempt: 10 batches x 4 attempts over 2 connections would
    take 10 s. The pass budget ends the lookup at 1.2 s; nothing is tried after it, and the
    batches not settled by then come back as unfinished, not as failures."""
    server = cymru_server(TABLE)
    server.default = Behaviour(hang=True)
    ips = [f"192.0.2.{n}" for n in range(1, 31)]
    started = time.monotonic()

    outcome, results, _, calls = run(ips, fast(server, read_timeout=0.5, retries=3, batch_size=3, pass_timeout=1.2))

    elapsed = time.monotonic() - started
    assert 1.2 <= elapsed < 1.2 + 0.5, elapsed
    assert (results, calls, outcome.failures) == ({}, 0, [])
    assert outcome.out_of_time and sorted(outcome.unfinished) == sorted(ips)
    # 2 connections at a time, each given up after 0.5 s of silence: at most 6 in 1.2 s.
    assert outcome.connections == server.connections <= 6


def test_garbage_lines_are_counted_and_never_become_data(cymru_server):
    server = cymru_server(TABLE)
    garbage = [
        "AS      | IP               | BGP Prefix          | CC | Registry | Allocated  | AS Name",
        "15169 | 74.125.225.229 | GOOGLE, US",  # 3 fields: a non-verbose row
        format_row(666, GOOGLE, "74.125.225.0/24", "US", "arin", "13/03/2007", "EVIL"),  # bad date
        format_row(666, GOOGLE, "74.125.0.0/33", "US", "arin", "2007-03-13", "EVIL"),  # bad prefix
        format_row(666, GOOGLE, "10.0.0.0/8", "US", "arin", "2007-03-13", "EVIL"),  # prefix misses the IP
        format_row(666, "74.125.225.999", "74.125.225.0/24", "US", "arin", "2007-03-13", "EVIL"),  # bad IP
        "AS666   | 74.125.225.229   | 74.125.225.0/24     | US | arin     | 2007-03-13 | EVIL",  # bad AS
        format_row(666, "8.8.8.8", "8.8.8.0/24", "US", "arin", "2014-03-14", "NOT ASKED"),  # not requested
        "\x00\xff garbage",
    ]
    server.default = Behaviour(garbage=garbage)

    outcome, results, _, _ = run([GOOGLE, MULTI], fast(server))

    assert outcome.failures == [] and outcome.garbage == len(garbage)
    assert set(results) == {GOOGLE, MULTI}
    assert results[GOOGLE].origins == [
        CymruOrigin(15169, "74.125.225.0/24", "US", "arin", datetime.date(2007, 3, 13), "GOOGLE, US")
    ]
    assert_no_wrong_asn(results)


def test_missing_ip_without_error_line_is_incomplete(cymru_server):
    server = cymru_server(TABLE, unknown="silent")  # the server says nothing about unknown IPs

    outcome, results, _, _ = run([GOOGLE, "100.64.1.1"], fast(server))

    assert results == {}
    [failure] = outcome.failures
    assert failure.ips == [GOOGLE, "100.64.1.1"] and "CymruIncompleteError" in failure.error


def test_a_failed_batch_does_not_stop_the_others(cymru_server):
    server = cymru_server(TABLE)
    server.behaviours.append(Behaviour(refuse=True))
    first, second = [GOOGLE, MULTI, OTHER], [V6, CYRILLIC, UNROUTED]

    outcome, results, _, calls = run(first + second, fast(server, batch_size=3, concurrency=1, retries=0))

    assert [failure.ips for failure in outcome.failures] == [first]
    assert set(results) == set(second) and calls == 1
    assert_no_wrong_asn(results)


# --- politeness: batching and concurrency -------------------------------------------------------


def test_default_batching_stays_polite(cymru_server):
    server = cymru_server()  # every IP unknown → one NA row each
    server.default = Behaviour(latency=0.05)  # long enough for batches to overlap
    ips = many_ips(1201)

    outcome, results, _, calls = run(ips, fast(server, batch_size=500, concurrency=2))

    assert outcome.failures == [] and len(results) == 1201
    assert (outcome.batches, outcome.connections, calls) == (3, 3, 3)
    assert sorted(len(query) for query in server.queries) == [400, 400, 401]
    assert sorted(ip for query in server.queries for ip in query) == sorted(ips)  # each IP once
    assert server.max_concurrent == 2


def test_no_ip_is_ever_sent_alone(cymru_server):
    server = cymru_server()

    outcome, _, _, _ = run(many_ips(501), fast(server, batch_size=500))
    assert outcome.failures == []
    assert sorted(len(query) for query in server.queries) == [250, 251]

    run(many_ips(1), fast(server))  # the whole input is one IP: the only time one goes alone
    assert min(len(query) for query in server.queries[:-1]) > 1 and len(server.queries[-1]) == 1


@pytest.mark.parametrize("batch_size", [3, 4, 7, 500])
def test_even_split_never_leaves_a_batch_of_one(batch_size):
    ips = many_ips(2 * batch_size + 50)
    for count in range(2, len(ips) + 1):
        sizes = [len(batch) for batch in _split_batches(ips[:count], batch_size)]
        assert sum(sizes) == count and min(sizes) >= 2 and max(sizes) <= batch_size, (count, sizes)


def test_async_on_batch_calls_never_overlap(cymru_server):
    server = cymru_server()
    running = peak = 0
    calls = 0

    async def on_batch(results: list[CymruResult], not_found: list[str]) -> None:
        nonlocal running, peak, calls
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        calls += 1

    outcome = asyncio.run(lookup(many_ips(40), fast(server, batch_size=10, concurrency=2), on_batch))

    assert outcome.results == 40 and calls == 4 and peak == 1


def test_on_batch_exception_reaches_the_caller_unwrapped(cymru_server):
    server = cymru_server()

    def on_batch(results: list[CymruResult], not_found: list[str]) -> None:
        raise RuntimeError("COPY failed")

    with pytest.raises(RuntimeError, match="COPY failed"):
        asyncio.run(lookup(many_ips(40), fast(server, batch_size=10, concurrency=2), on_batch))


# --- pure parts ---------------------------------------------------------------------------------


def test_split_addr():
    assert split_addr("whois.cymru.com:43") == ("whois.cymru.com", 43)
    assert split_addr("[::1]:4343") == ("::1", 4343)
    assert split_addr("127.0.0.1:4343") == ("127.0.0.1", 4343)
    for bad in ("whois.cymru.com", "::1:43", "host:0", "host:70000", ":43", "host:4x"):
        with pytest.raises(ValueError):
            split_addr(bad)


def test_settings_refuse_batches_that_could_hold_a_single_ip():
    with pytest.raises(ValueError, match="batch_size"):
        CymruSettings(batch_size=2)


def test_error_line_is_not_pinned_on_an_answered_ip():
    """Line 3 is GOOGLE's line, but GOOGLE got a row: the Error cannot be about it, so it is kept
    as an error and the truly unanswered IP stays missing instead of being guessed."""
    lines = [
        "Bulk mode; whois.cymru.com [2026-01-01 00:00:00 +0000]",
        format_row(15169, GOOGLE, "74.125.225.0/24", "US", "arin", "2007-03-13", "GOOGLE, US"),
        "Error: no ASN or IP match on line 3.",
    ]
    parsed = parse_bulk_response(lines, [GOOGLE, MULTI])
    assert parsed.not_found == [] and parsed.missing == [MULTI]
    assert parsed.errors == ["Error: no ASN or IP match on line 3."]
    assert parsed.banner == lines[0]


def test_repeated_rows_and_mapped_addresses_in_answers():
    row = format_row(15169, "::ffff:74.125.225.229", "74.125.225.0/24", "US", "arin", "2007-03-13", "GOOGLE, US")
    parsed = parse_bulk_response([row, row + "\r"], [GOOGLE])
    assert parsed.garbage == 0 and len(parsed.results[GOOGLE].origins) == 1


@pytest.mark.parametrize(("cc", "expected"), [("US", "US"), ("us", "US"), ("EU", "EU"), ("", None), ("USA", None),
                                              ("1A", None)])
def test_registration_country_is_two_upper_case_letters_or_none(cc: str, expected: str | None) -> None:
    """A lower-case or malformed CC from the service must not reach ip_inventory, whose
    geo_country CHECK would refuse the whole batch: upper-cased when two letters, else none."""
    row = format_row(15169, GOOGLE, "74.125.225.0/24", cc, "arin", "2007-03-13", "GOOGLE, US")
    parsed = parse_bulk_response([row], [GOOGLE])
    assert parsed.results[GOOGLE].current.registered_country == expected
