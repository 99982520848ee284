"""GreyNoise client: looks IPs up one pass at a time and hands results back in batches.

Two tiers speak two endpoints:

* community: ``GET {base}/v3/community/{ip}``, one IPv4 address per request;
* enterprise: ``POST {base}/v3/ip`` with ``{"ips": [...]}``, ``chunk_size`` addresses per request.

Both authenticate with a ``key`` header. The key is a secret: it never goes into a URL, a log
line, an exception message, a result or a failure string (``redact`` scrubs every text that
comes from an exception before it is kept).

The client holds no database code. The caller supplies

* ``on_results(results, failures)``, called every ``flush_every`` looked-up IPs so it can COPY and
  merge in batches;
* optionally ``budget(n) -> granted``, the shared daily allowance kept in PostgreSQL.

A pass ends early, cleanly, when the API key is refused (``GreyNoiseAuthError``), when
GreyNoise says the quota is gone (``quota_exhausted``) or when the budget grants nothing
(``budget_exhausted``); the IPs it did not reach are returned in ``not_attempted`` so a later
run can resume with exactly those.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import math
import random
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from ipintel import __version__

log = logging.getLogger(__name__)

Tier = Literal["community", "enterprise"]
# An enterprise answer for 1,000 IPs is about a megabyte; far more is not a GreyNoise answer.
MAX_BODY_BYTES = 16 << 20
IPInput = str | ipaddress.IPv4Address | ipaddress.IPv6Address


def redact(text: str, key: str) -> str:
    """Return ``text`` with every occurrence of ``key`` masked.

    Applied to every message derived from an exception before it is stored or raised: transport
    errors are not expected to carry headers, but the key must not leak even if one ever does.
    """
    if not key:
        return text
    return text.replace(key, "[REDACTED]")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delay-seconds or HTTP-date).

    Returns None when the header is absent or unreadable; a date in the past means 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; treat a naive one the same way
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return max(0.0, seconds) if math.isfinite(seconds) else None


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the API's base URL (an http(s) URL with a host), or None when it can.

    Checked before the pass starts: a base URL that is not a URL would otherwise fail every
    request after the daily budget was counted for it.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "no http:// or https:// scheme" if not parts.scheme else f"scheme {parts.scheme!r}"
    if not parts.hostname:
        return "no host"
    if any(ch.isspace() for ch in url):
        return "contains whitespace"
    if parts.query or parts.fragment:
        return "a base URL has no ?query or #fragment"
    if parts.username or parts.password:
        return "credentials belong in IPINTEL_GREYNOISE_KEY, not in the URL"
    return None


def plain_http_problem(url: str) -> str | None:
    """Why the API key may not be sent to ``url``, or None: plain http carries it in clear text to
    anyone on the path, so it goes over https only, or over http to this machine (a local proxy,
    the tests' fakes)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        return None
    host = parts.hostname or ""
    try:
        local = host.lower() == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if local:
        return None
    return (f"plain http to {host}, which is not this machine: the API key is sent over https only "
            "(or over http to 127.0.0.1, ::1 or localhost)")


@dataclass(frozen=True, kw_only=True)
class GreyNoiseSettings:
    """How to reach GreyNoise and how politely. ``repr`` never shows the key."""

    base_url: str = "https://api.greynoise.io"
    api_key: str = field(repr=False)
    tier: Tier = "community"
    rate_per_second: float = 1.0  # across the whole pass, retries included
    timeout: float = 10.0  # seconds one request may take, its whole answer read
    retries: int = 3  # extra attempts after a 5xx, 429 or transport error
    backoff_base: float = 0.5  # first backoff in seconds, doubled per attempt
    backoff_max: float = 30.0
    max_retry_after: float = 60.0  # a longer Retry-After on 429 means the quota is gone
    chunk_size: int = 1000  # IPs per enterprise request
    flush_every: int = 100  # IPs per on_results call

    def __post_init__(self) -> None:
        if self.tier not in ("community", "enterprise"):
            raise ValueError(f"GreyNoise tier must be 'community' or 'enterprise', not {self.tier!r}")
        problem = base_url_problem(self.base_url)
        if problem:
            raise ValueError(f"GreyNoise base_url {self.base_url!r} is not an http(s) URL: {problem}")
        if not self.api_key:
            raise ValueError("GreyNoise API key is empty")
        problem = plain_http_problem(self.base_url)
        if problem:
            raise ValueError(f"GreyNoise base_url: {problem}")
        if self.rate_per_second <= 0 or self.timeout <= 0:
            raise ValueError("GreyNoise rate_per_second and timeout must be positive")
        if self.retries < 0 or self.backoff_base < 0 or self.backoff_max < 0 or self.max_retry_after < 0:
            raise ValueError("GreyNoise retries, backoff and max_retry_after must not be negative")
        if self.chunk_size < 1 or self.flush_every < 1:
            raise ValueError("GreyNoise chunk_size and flush_every must be at least 1")


@dataclass(frozen=True)
class GreyNoiseResult:
    """What GreyNoise knows about one IP; ``observed=False`` is a real, cacheable negative."""

    ip: str
    observed: bool
    noise: bool
    riot: bool
    classification: str | None = None
    name: str | None = None
    link: str | None = None
    last_seen: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON-ready dict for the ``enrichment`` JSONB."""
        return asdict(self)


@dataclass(frozen=True)
class GreyNoiseFailure:
    """One IP that got no answer this pass. ``retryable=False`` means asking again is pointless."""

    ip: str
    error: str
    status: int | None
    retryable: bool
    retry_after: float | None = None


@dataclass
class GreyNoiseOutcome:
    """Counts and flags of one pass; ``not_attempted`` is what a later run should resume with."""

    requests_made: int = 0
    results: int = 0
    failures: int = 0
    not_attempted: list[str] = field(default_factory=list)
    skipped_ipv6: list[str] = field(default_factory=list)
    quota_exhausted: bool = False
    budget_exhausted: bool = False
    auth_failed: bool = False


class GreyNoiseAuthError(Exception):
    """GreyNoise refused the API key; the pass stopped. ``outcome`` tells how far it got."""

    def __init__(self, message: str, outcome: GreyNoiseOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


OnResults = Callable[[list[GreyNoiseResult], list[GreyNoiseFailure]], None]
Budget = Callable[[int], int]


class _Stop(enum.Enum):
    AUTH = "auth"
    QUOTA = "quota"


@dataclass
class _Reply:
    """What one lookup (a single IP or an enterprise chunk) produced."""

    items: list[GreyNoiseResult | GreyNoiseFailure] = field(default_factory=list)
    stop: _Stop | None = None
    status: int | None = None  # of the response that caused ``stop``


class _Pacer:
    """Fixed spacing between requests: never more than ``rate`` requests in any one second."""

    def __init__(self, rate_per_second: float) -> None:
        self._interval = 1.0 / rate_per_second
        self._next = 0.0  # monotonic time of the next free slot

    def wait(self) -> None:
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


class _Batcher:
    """Buffers results and failures and hands them to ``on_results`` ``flush_every`` at a time."""

    def __init__(self, on_results: OnResults, flush_every: int, outcome: GreyNoiseOutcome) -> None:
        self._on_results = on_results
        self._flush_every = flush_every
        self._outcome = outcome
        self._items: list[GreyNoiseResult | GreyNoiseFailure] = []

    def add(self, item: GreyNoiseResult | GreyNoiseFailure) -> None:
        if isinstance(item, GreyNoiseResult):
            self._outcome.results += 1
        else:
            self._outcome.failures += 1
        self._items.append(item)
        if len(self._items) >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._items:
            return
        items, self._items = self._items, []
        self._on_results(
            [i for i in items if isinstance(i, GreyNoiseResult)],
            [i for i in items if isinstance(i, GreyNoiseFailure)],
        )


class GreyNoiseClient:
    """Runs GreyNoise passes over lists of IPs; a context manager that closes its connections."""

    def __init__(self, settings: GreyNoiseSettings) -> None:
        self.settings = settings
        self._http = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            headers={
                "key": settings.api_key,
                "accept": "application/json",
                "user-agent": f"ipintel/{__version__}",
            },
            timeout=settings.timeout,
        )
        # One pacer per client so the rate holds across passes made with the same client.
        self._pacer = _Pacer(settings.rate_per_second)

    def __enter__(self) -> GreyNoiseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(
        self,
        ips: Iterable[IPInput],
        *,
        on_results: OnResults,
        budget: Budget | None = None,
    ) -> GreyNoiseOutcome:
        """Look every IP up once; return the pass outcome.

        ``budget(n)`` is asked before each lookup for ``n`` IP lookups (1 on the community tier,
        the chunk on the enterprise tier) and may grant fewer; retries of the same lookup are
        not charged again, since GreyNoise counts answered lookups, not attempts. Units granted
        to a lookup that then meets a spent quota or a refused key are not handed back.

        IPv6 is skipped on the community tier (its endpoint is IPv4-only) and sent on the
        enterprise tier.

        Raises GreyNoiseAuthError when the key is refused, after handing over what was gathered.
        """
        s = self.settings
        outcome = GreyNoiseOutcome()
        batcher = _Batcher(on_results, s.flush_every, outcome)
        pending: deque[str] = deque()
        for raw in ips:
            try:
                addr = ipaddress.ip_address(raw)
            except ValueError:
                batcher.add(GreyNoiseFailure(str(raw), "not an IP address", None, retryable=False))
                continue
            if addr.version == 6 and s.tier == "community":
                # The community endpoint answers IPv4 only; sending IPv6 would just spend quota.
                outcome.skipped_ipv6.append(str(addr))
            else:
                pending.append(str(addr))

        size = s.chunk_size if s.tier == "enterprise" else 1
        refused_status: int | None = None
        while pending:
            batch = [pending.popleft() for _ in range(min(size, len(pending)))]
            if budget is not None:
                granted = max(0, min(budget(len(batch)), len(batch)))
                pending.extendleft(reversed(batch[granted:]))
                batch = batch[:granted]
                if not batch:
                    log.info("GreyNoise daily budget used up; IPs left for a later run: %d", len(pending))
                    outcome.budget_exhausted = True
                    break
            reply = self._lookup(batch, outcome)
            for item in reply.items:
                batcher.add(item)
            if reply.stop is not None:
                pending.extendleft(reversed(batch))  # the batch got no answer: not attempted
                if reply.stop is _Stop.QUOTA:
                    log.warning("GreyNoise quota exhausted; IPs left for a later run: %d", len(pending))
                    outcome.quota_exhausted = True
                else:
                    outcome.auth_failed = True
                    refused_status = reply.status
                break
        outcome.not_attempted.extend(pending)
        batcher.flush()
        if outcome.auth_failed:
            # The message names the setting, never the value.
            raise GreyNoiseAuthError(
                f"GreyNoise rejected the API key (HTTP {refused_status}): "
                "check IPINTEL_GREYNOISE_KEY and the key's plan",
                outcome,
            )
        return outcome

    def _lookup(self, batch: list[str], outcome: GreyNoiseOutcome) -> _Reply:
        """One lookup with retries. Returns per-IP items, or a stop signal with no items."""
        s = self.settings
        error, status, retry_after = "", None, None
        for attempt in range(s.retries + 1):
            if attempt:
                time.sleep(self._retry_delay(retry_after, attempt))
            self._pacer.wait()
            outcome.requests_made += 1
            try:
                response = self._send(batch)
            except httpx.RequestError as exc:  # timeouts, refused or dropped connections, bad encodings
                error = redact(f"{type(exc).__name__}: {exc}", s.api_key)
                status, retry_after = None, None
                log.debug("GreyNoise request for %s failed: %s", _describe(batch), error)
                continue
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            log.debug("GreyNoise %s -> HTTP %d", _describe(batch), status)
            if status == 200:
                return _Reply(self._parse(batch, response))
            if status == 404 and s.tier == "community":
                return _Reply([_not_observed(batch[0])])
            if status in (401, 403):
                return _Reply(stop=_Stop.AUTH, status=status)
            if status == 429:
                if retry_after is not None and retry_after > s.max_retry_after:
                    return _Reply(stop=_Stop.QUOTA, status=status)
                error = "HTTP 429 rate limited"
                continue
            if status >= 500:
                error = f"HTTP {status} server error"
                continue
            # 400 (not a routable IPv4) and any other client error: asking again cannot help.
            error = _error_text(response, s.api_key)
            return _Reply([GreyNoiseFailure(ip, error, status, retryable=False) for ip in batch])
        if status == 429:  # still rate limited after every retry: the daily quota is gone
            return _Reply(stop=_Stop.QUOTA, status=status)
        return _Reply(
            [GreyNoiseFailure(ip, error, status, retryable=True, retry_after=retry_after) for ip in batch]
        )

    def _send(self, batch: list[str]) -> httpx.Response:
        """One request, its answer read whole within ``timeout`` seconds of sending it.

        httpx's timeouts bound each wait (connect, every read), not the answer: a server that
        drips a line every few seconds would hold a request for as long as it likes. The body is
        therefore read here against a deadline for all of it, and at most MAX_BODY_BYTES of it.
        """
        if self.settings.tier == "community":
            request = self._http.build_request("GET", f"/v3/community/{batch[0]}")
        else:
            request = self._http.build_request("POST", "/v3/ip", json={"ips": batch})
        deadline = time.monotonic() + self.settings.timeout
        response = self._http.send(request, stream=True)
        body = bytearray()
        try:
            for chunk in response.iter_raw():
                body += chunk
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"no complete answer within {self.settings.timeout:g}s", request=request)
                if len(body) > MAX_BODY_BYTES:
                    raise httpx.RemoteProtocolError(f"answer larger than {MAX_BODY_BYTES:,} bytes", request=request)
        finally:
            response.close()
        # The raw (still content-encoded) bytes, so the new response decodes them as the old one would.
        return httpx.Response(response.status_code, headers=response.headers, content=bytes(body), request=request)

    def _retry_delay(self, retry_after: float | None, attempt: int) -> float:
        """Wait before retry ``attempt`` (1-based): the server's Retry-After if within bounds, else backoff."""
        if retry_after is not None and retry_after <= self.settings.max_retry_after:
            return retry_after
        # Jitter spreads retries of concurrent clients apart; the cap bounds a single wait.
        base = min(self.settings.backoff_max, self.settings.backoff_base * 2.0 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)

    def _parse(self, batch: list[str], response: httpx.Response) -> list[GreyNoiseResult | GreyNoiseFailure]:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return [GreyNoiseFailure(ip, "malformed JSON response", 200, retryable=True) for ip in batch]
        if self.settings.tier == "community":
            return [_community_result(batch[0], payload)]
        return _multi_results(batch, payload)


def _describe(batch: list[str]) -> str:
    return batch[0] if len(batch) == 1 else f"{len(batch)} IPs"


def _error_text(response: httpx.Response, key: str) -> str:
    """``HTTP <status>: <message>`` from a GreyNoise error body (bounded, redacted)."""
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    text = f"HTTP {response.status_code}: {message}" if message else f"HTTP {response.status_code}"
    return redact(text[:300], key)


def _not_observed(ip: str) -> GreyNoiseResult:
    return GreyNoiseResult(ip, observed=False, noise=False, riot=False)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _community_result(ip: str, body: dict[str, Any]) -> GreyNoiseResult:
    return GreyNoiseResult(
        ip,
        observed=True,
        noise=bool(body.get("noise")),
        riot=bool(body.get("riot")),
        classification=_str_or_none(body.get("classification")),
        name=_str_or_none(body.get("name")),
        link=_str_or_none(body.get("link")),
        last_seen=_str_or_none(body.get("last_seen")),
    )


def _v3_result(ip: str, record: dict[str, Any]) -> GreyNoiseResult:
    """Map a v3 record; community-shaped records (noise/riot/...) are accepted too."""
    scanner = record.get("internet_scanner_intelligence")
    business = record.get("business_service_intelligence")
    if not isinstance(scanner, dict) and not isinstance(business, dict):
        return _community_result(ip, record)
    scanner = scanner if isinstance(scanner, dict) else {}
    business = business if isinstance(business, dict) else {}
    noise = bool(scanner.get("found"))
    riot = bool(business.get("found"))
    return GreyNoiseResult(
        ip,
        # A v3 record may say "found: false" for both datasets: GreyNoise knows nothing about it.
        observed=noise or riot,
        noise=noise,
        riot=riot,
        classification=_str_or_none(scanner.get("classification")),
        # The scanner's actor, else the business service's name (what community calls "name").
        name=_str_or_none(scanner.get("actor")) or _str_or_none(business.get("name")),
        link=_str_or_none(record.get("link")),
        last_seen=_str_or_none(scanner.get("last_seen")),
    )


def _canonical(value: object) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


def _multi_results(batch: list[str], payload: dict[str, Any]) -> list[GreyNoiseResult | GreyNoiseFailure]:
    records: dict[str, dict[str, Any]] = {}
    for record in payload.get("data") or []:
        if isinstance(record, dict) and (ip := _canonical(record.get("ip"))) is not None:
            records[ip] = record
    metadata = payload.get("request_metadata")
    not_found_raw = metadata.get("ips_not_found") if isinstance(metadata, dict) else None
    not_found = {ip for raw in not_found_raw or [] if (ip := _canonical(raw)) is not None}
    items: list[GreyNoiseResult | GreyNoiseFailure] = []
    for ip in batch:
        if ip in records:
            items.append(_v3_result(ip, records[ip]))
        elif ip in not_found:
            items.append(_not_observed(ip))
        else:
            items.append(GreyNoiseFailure(ip, "missing from the GreyNoise response", 200, retryable=True))
    return items
