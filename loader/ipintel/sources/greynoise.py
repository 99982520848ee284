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
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx

from ipintel import __version__
from ipintel.sources.http_api import (
    Api,
    ApiClient,
    ApiSettings,
    Batcher,
    Exhausted,
    IPInput,
    LookupFailure,
    Outcome,
    Reply,
    Retry,
    Sleep,
    base_url_problem,
    drain,
    error_text,
    parse_ips,
    parse_retry_after,
    redact,
)

__all__ = ["GreyNoiseAuthError", "GreyNoiseClient", "GreyNoiseFailure", "GreyNoiseOutcome", "GreyNoiseResult",
           "GreyNoiseSettings", "Tier", "base_url_problem", "parse_retry_after", "plain_http_problem", "redact"]

log = logging.getLogger(__name__)

Tier = Literal["community", "enterprise"]


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
class GreyNoiseSettings(ApiSettings):
    """How to reach GreyNoise and how politely. ``repr`` never shows the key. A Retry-After on a
    429 longer than ``max_retry_after`` means the daily quota is gone."""

    base_url: str = "https://api.greynoise.io"
    api_key: str = field(repr=False)
    tier: Tier = "community"
    chunk_size: int = 1000  # IPs per enterprise request

    def __post_init__(self) -> None:
        if self.tier not in ("community", "enterprise"):
            raise ValueError(f"GreyNoise tier must be 'community' or 'enterprise', not {self.tier!r}")
        self.check("GreyNoise")
        if not self.api_key:
            raise ValueError("GreyNoise API key is empty")
        problem = plain_http_problem(self.base_url)
        if problem:
            raise ValueError(f"GreyNoise base_url: {problem}")
        if self.chunk_size < 1:
            raise ValueError("GreyNoise chunk_size must be at least 1")


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


# One IP that got no answer this pass (the failure every lookup API's client records).
GreyNoiseFailure = LookupFailure


@dataclass
class GreyNoiseOutcome(Outcome):
    """Counts and flags of one pass; ``not_attempted`` is what a later run should resume with."""

    skipped_ipv6: list[str] = field(default_factory=list)
    quota_exhausted: bool = False
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


_Reply = Reply[GreyNoiseResult, GreyNoiseFailure, _Stop]


class GreyNoiseClient(ApiClient):
    """Runs GreyNoise passes over lists of IPs; a context manager that closes its connections.

    ``sleep`` is how it waits (pacing, backoff): a pass may give one that reports it is alive.
    """

    def __init__(self, settings: GreyNoiseSettings, *, sleep: Sleep | None = None) -> None:
        self.settings = settings
        self._api = Api(settings, headers={"key": settings.api_key, "accept": "application/json",
                                           "user-agent": f"ipintel/{__version__}"},
                        name="GreyNoise", secret=settings.api_key, sleep=sleep)

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
        batcher = Batcher(on_results, s.flush_every, outcome, GreyNoiseResult)

        def accept(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
            if addr.version == 6 and s.tier == "community":
                # The community endpoint answers IPv4 only; sending IPv6 would just spend quota.
                outcome.skipped_ipv6.append(str(addr))
                return False
            return True

        pending = parse_ips(ips, batcher, accept)
        size = s.chunk_size if s.tier == "enterprise" else 1
        stopped = drain(pending, size=size, lookup=lambda batch: self._lookup(batch, outcome), batcher=batcher,
                        outcome=outcome, budget=budget, name="GreyNoise")
        if stopped is not None and stopped.stop is _Stop.QUOTA:
            log.warning("GreyNoise quota exhausted; IPs left for a later run: %d", len(outcome.not_attempted))
            outcome.quota_exhausted = True
        if stopped is not None and stopped.stop is _Stop.AUTH:
            outcome.auth_failed = True
            # The message names the setting, never the value.
            raise GreyNoiseAuthError(
                f"GreyNoise rejected the API key (HTTP {stopped.status}): "
                "check IPINTEL_GREYNOISE_KEY and the key's plan",
                outcome,
            )
        return outcome

    def _lookup(self, batch: list[str], outcome: GreyNoiseOutcome) -> _Reply:
        """One lookup with retries. Returns per-IP items, or a stop signal with no items."""
        verdict = self._api.ask(lambda: self._request(batch), lambda response: self._classify(batch, response),
                                outcome, _describe(batch))
        if not isinstance(verdict, Exhausted):
            return verdict
        if verdict.status == 429:  # still rate limited after every retry: the daily quota is gone
            return _Reply(stop=_Stop.QUOTA, status=429)
        return _Reply(verdict.failures(batch))

    def _request(self, batch: list[str]) -> httpx.Request:
        if self.settings.tier == "community":
            return self._api.request("GET", f"/v3/community/{batch[0]}")
        return self._api.request("POST", "/v3/ip", json={"ips": batch})

    def _classify(self, batch: list[str], response: httpx.Response) -> _Reply | Retry:
        s = self.settings
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 200:
            return _Reply(self._parse(batch, response))
        if status == 404 and s.tier == "community":
            return _Reply([_not_observed(batch[0])])
        if status in (401, 403):
            return _Reply(stop=_Stop.AUTH, status=status)
        if status == 429:
            if retry_after is not None and retry_after > s.max_retry_after:  # a longer wait: the quota is gone
                return _Reply(stop=_Stop.QUOTA, status=status)
            return Retry("HTTP 429 rate limited", s.honoured(retry_after))  # else backoff
        # 400 (not a routable IPv4) and any other client error: asking again cannot help.
        error = _error_text(response, s.api_key)
        return _Reply([GreyNoiseFailure(ip, error, status, retryable=False) for ip in batch])

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
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body["message"] if isinstance(body, dict) and isinstance(body.get("message"), str) else ""
    return error_text(response, key, message)


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
