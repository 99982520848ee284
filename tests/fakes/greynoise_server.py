"""A fake GreyNoise API on 127.0.0.1 (pytest-httpserver), scripted per IP by the test.

Endpoints, as the real v3 API shapes them:

* ``GET /v3/community/{ip}``: by default a 404 "not observed" for any IPv4 and a 400 for anything
  else; ``fake.script(ip, *replies)`` makes an IP answer the given replies in order (the last
  one repeats), e.g. ``Reply(500), Reply(500), Reply(200)`` or ``Reply(200, delay=1.0)``.
* ``POST /v3/ip`` with ``{"ips": [...]}``: answers from ``fake.records`` (v3 records by IP),
  listing every other IP in ``request_metadata.ips_not_found``; ``fake.script_multi(*replies)``
  scripts whole requests (5xx, 429, ...) the same way.

Fault replies beyond status codes: ``Reply(200, raw=b"...")`` sends those bytes as the body
(garbage that is not JSON), ``Reply(hang=True)`` accepts the request and never answers (until the
fake is stopped), ``Reply(200, drip=20)`` sends the headers, then the body one line every 20 s,
``Reply(302, headers={"Location": ...})`` any extra headers.

Every request needs the ``key`` header equal to ``fake.api_key`` (else 401). ``fake.quota``
counts answered lookups; once spent, everything answers 429 with ``Retry-After: fake.quota_retry_after``
(a day), like GreyNoise's daily limit. Every request is recorded with its arrival time and key.

Use in a test module::

    from tests.fakes.greynoise_server import greynoise_fake  # noqa: F401
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

__all__ = ["DEFAULT_API_KEY", "GreyNoiseFake", "Reply", "Seen", "community_record", "greynoise_fake", "v3_record"]

# Distinctive so a leak is easy to grep for in failure strings and logs.
DEFAULT_API_KEY = "gn-fake-key-7c1d9e4a2b"


def community_record(
    ip: str,
    *,
    noise: bool = True,
    riot: bool = False,
    classification: str = "malicious",
    name: str = "unknown",
    last_seen: str = "2026-01-15",
) -> dict[str, Any]:
    """A community 200 body."""
    return {
        "ip": ip,
        "noise": noise,
        "riot": riot,
        "classification": classification,
        "name": name,
        "link": f"https://viz.greynoise.io/ip/{ip}",
        "last_seen": last_seen,
        "message": "Success",
    }


def v3_record(
    ip: str,
    *,
    noise: bool = True,
    riot: bool = False,
    classification: str = "malicious",
    actor: str = "unknown",
    service: str | None = None,
    last_seen: str = "2026-01-15",
) -> dict[str, Any]:
    """A ``data`` entry of ``POST /v3/ip`` as the v3 API shapes it."""
    return {
        "ip": ip,
        "business_service_intelligence": {
            "found": riot,
            "category": "public_dns" if riot else "",
            "name": service or "",
            "trust_level": "1" if riot else "",
        },
        "internet_scanner_intelligence": {
            "found": noise,
            "classification": classification if noise else "",
            "last_seen": last_seen if noise else "",
            "actor": actor if noise else "",
            "tags": [],
        },
    }


def _default_body(status: int, ip: str | None) -> dict[str, Any]:
    if status == 404:
        return {
            "ip": ip,
            "noise": False,
            "riot": False,
            "message": "IP not observed scanning the internet or contained in RIOT data set.",
        }
    if status == 400:
        return {"message": "Request is not a valid routable IPv4 address"}
    if status == 401:
        return {"message": "Authentication required"}
    if status == 429:
        return {
            "plan": "community",
            "rate-limit": "50-lookups/day",
            "message": "You have hit your daily rate limit.",
        }
    return {"message": f"HTTP {status}"}


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


class GreyNoiseFake(ScriptedFake):
    """State and handlers of the fake; the test reads and writes the public attributes."""

    def __init__(self, server: HTTPServer, api_key: str = DEFAULT_API_KEY) -> None:
        super().__init__(server)
        self.api_key = api_key
        self.records: dict[str, dict[str, Any]] = {}
        self.quota: int | None = None
        self.quota_retry_after = "86400"
        self._multi_script: list[Reply] = []
        self._spent = 0
        server.expect_request(re.compile(r"^/v3/community/[^/]+$"), method="GET").respond_with_handler(
            self._community
        )
        server.expect_request("/v3/ip", method="POST").respond_with_handler(self._multi)

    def script_multi(self, *replies: Reply) -> None:
        """Answer the next ``POST /v3/ip`` requests with ``replies`` in order; then from records."""
        self._multi_script = list(replies)

    def reset_quota(self) -> None:
        """A new day: the quota is whole again."""
        with self._lock:
            self._spent = 0

    def _gate(self, request: Request, ips: tuple[str, ...]) -> Response | None:
        """Record the request; answer 401 or quota-429 here, or None to go on."""
        key = request.headers.get("key")
        with self._lock:
            self.requests.append(Seen(request.method, request.path, ips, key, time.monotonic()))
            if key != self.api_key:
                return self._answer(request, Reply(401), None)
            if self.quota is not None and self._spent >= self.quota:
                return self._answer(request, Reply(429, retry_after=self.quota_retry_after), None)
        return None

    def _spend(self, reply: Reply, lookups: int) -> None:
        # Called with the lock held. Like the real quota, only answered lookups count.
        if reply.status < 500 and reply.status != 429:
            self._spent += lookups

    def _community(self, request: Request) -> Response:
        ip = request.path.rsplit("/", 1)[1]
        refused = self._gate(request, (ip,))
        if refused is not None:
            return refused
        with self._lock:
            reply = self._scripted(ip) or Reply(404 if _is_ipv4(ip) else 400)
            self._spend(reply, 1)
        if reply.status == 200 and reply.body is None and reply.raw is None:
            reply = dataclasses.replace(reply, body=community_record(ip))
        return self._answer(request, reply, ip)

    def _multi(self, request: Request) -> Response:
        payload = request.get_json(silent=True)
        raw = payload.get("ips") if isinstance(payload, dict) else None
        if not isinstance(raw, list):
            return self._answer(request, Reply(400, {"message": "body must be {\"ips\": [...]}"}), None)
        ips = tuple(str(ip) for ip in raw)
        refused = self._gate(request, ips)
        if refused is not None:
            return refused
        with self._lock:
            reply = self._multi_script.pop(0) if self._multi_script else Reply(200)
            self._spend(reply, len(ips))
        if reply.status == 200 and reply.body is None and reply.raw is None:
            found = [ip for ip in ips if ip in self.records]
            body = {
                "data": [{**self.records[ip], "ip": ip} for ip in found],
                "request_metadata": {
                    "restricted_fields": [],
                    "message": "",
                    "ips_not_found": [ip for ip in ips if ip not in self.records],
                },
            }
            reply = dataclasses.replace(reply, body=body)
        return self._answer(request, reply, None)

    def _answer(self, request: Request, reply: Reply, ip: str | None) -> Response:
        return self._respond(request, reply, lambda: _default_body(reply.status, ip))


@pytest.fixture
def greynoise_fake() -> Iterator[GreyNoiseFake]:
    """A fresh fake GreyNoise per test, listening on 127.0.0.1."""
    with serving(GreyNoiseFake) as fake:
        yield fake
