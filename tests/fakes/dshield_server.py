"""A fake SANS ISC / DShield API on 127.0.0.1 (pytest-httpserver), speaking the real HTTP shape.

``GET /api/ip/{ip}?json`` answers ``{"ip": {...}}``: the record in ``fake.records`` (built with
``dshield_record``), else the record DShield gives an IP it holds no report of (``count`` and the
rest null, ``threatfeeds`` an empty list), with the AS fields ISC fills in for any routed address.
Without ``?json`` the real API answers XML; so does the fake (a client that forgot it reads garbage).
An address that is not one answers ``{"ip": {"error": "bad IP address"}}``.

Fault switches, per IP with ``fake.script(ip, *replies)`` (in order, the last repeats) or for the
next requests whatever their IP with ``fake.script_next(*replies)``; ``fake.latency`` delays every
answer. Ready-made replies: ``GARBAGE`` (an HTML page with a 200), ``RESET`` (TCP reset),
``HANG`` (never answers: a client timeout), ``rate_limited(retry_after)`` (ISC's 429 page, with
or without Retry-After), ``server_error(status)`` (a 5xx page); any ``Reply`` of
tests/fakes/http_fake.py works too.

``fake.required_contact``: when set, a request whose User-Agent does not carry it is refused with a
403, as ISC refuses clients it cannot identify. Every request is recorded with its arrival time
and User-Agent.

Use in a test module::

    from tests.fakes.dshield_server import dshield_fake  # noqa: F401
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.fakes.http_fake import Reply, ScriptedFake, Seen, serving

__all__ = ["GARBAGE", "HANG", "RESET", "DShieldFake", "Reply", "dshield_fake", "dshield_record", "rate_limited",
           "server_error"]

GARBAGE = Reply(200, raw=b"<html><head><title>SANS ISC</title></head><body>Maintenance\x00\xff</body></html>")
RESET = Reply(reset=True)
HANG = Reply(hang=True)


def rate_limited(retry_after: str | None = None) -> Reply:
    """ISC's answer to a client that asks too fast: an HTML page, not JSON."""
    return Reply(429, raw=b"<html><body>Too Many Requests</body></html>", retry_after=retry_after)


def server_error(status: int = 503, retry_after: str | None = None) -> Reply:
    return Reply(status, raw=f"<html><body>{status} Service Unavailable</body></html>".encode(),
                 retry_after=retry_after)


def dshield_record(ip: str, *, count: int | str | None = 1234, attacks: int | str | None = 56,
                   feeds: dict[str, tuple[str, str]] | None = None, asn: int | str | None = 14061,
                   asname: str | None = "DIGITALOCEAN-ASN", ascountry: str | None = "US",
                   network: str | None = "203.0.113.0/24") -> dict[str, Any]:
    """The object under "ip" for a reported address, with the real field names. ``feeds``: name ->
    (firstseen, lastseen); none gives the empty list PHP encodes an empty array as."""
    return {
        "number": ip,
        "count": count,
        "attacks": attacks,
        "maxdate": "2026-11-30" if count else None,
        "mindate": "2026-01-02" if count else None,
        "updated": "2026-12-01 06:12:33" if count else None,
        "comment": None,
        "maxrisk": None,
        "asabusecontact": "abuse@example.net",
        "as": asn,
        "asname": asname,
        "ascountry": ascountry,
        "assize": 2345,
        "network": network,
        "threatfeeds": {name: {"firstseen": first, "lastseen": last} for name, (first, last) in feeds.items()}
        if feeds else [],
    }


def unreported_record(ip: str) -> dict[str, Any]:
    """What DShield answers for an address it holds no report of."""
    return dshield_record(ip, count=None, attacks=None)


class DShieldFake(ScriptedFake):
    """State and handlers of the fake; the test reads and writes the public attributes."""

    content_type = "application/json; charset=utf-8"

    def __init__(self, server: HTTPServer) -> None:
        super().__init__(server)
        self.records: dict[str, dict[str, Any]] = {}
        self.latency = 0.0
        self.required_contact: str | None = None
        self._next: list[Reply] = []
        server.expect_request(re.compile(r"^/api/ip/[^/]+$"), method="GET").respond_with_handler(self._ip)

    def script_next(self, *replies: Reply) -> None:
        """Answer the next requests, whatever their IP, with ``replies`` in order; then as usual."""
        with self._lock:
            self._next = list(replies)

    def _ip(self, request: Request) -> Response:
        ip = request.path.rsplit("/", 1)[1]
        user_agent = request.headers.get("user-agent")
        with self._lock:
            self.requests.append(Seen(request.method, request.path, (ip,), None, time.monotonic(), user_agent))
            reply = self._next.pop(0) if self._next else self._scripted(ip) or Reply(200)
        if self.required_contact is not None and self.required_contact not in (user_agent or ""):
            reply = Reply(403, raw=b"<html><body>Forbidden: please identify yourself</body></html>")
        if self.latency:
            self.released.wait(timeout=self.latency)
        if "json" not in request.args:
            reply = dataclasses.replace(reply, raw=f"<?xml version='1.0'?><ip><number>{ip}</number></ip>".encode())
        return self._respond(request, reply, lambda: self._body(ip))

    def _body(self, ip: str) -> dict[str, Any]:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return {"ip": {"error": "bad IP address"}}
        return {"ip": self.records.get(ip) or unreported_record(ip)}


@pytest.fixture
def dshield_fake() -> Iterator[DShieldFake]:
    """A fresh fake DShield per test, listening on 127.0.0.1."""
    with serving(DShieldFake) as fake:
        yield fake
