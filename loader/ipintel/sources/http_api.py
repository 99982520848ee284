"""What the clients of HTTP lookup APIs share (GreyNoise, DShield): one request at a time, paced.

* ``Pacer``: a fixed spacing between requests (never more than the rate in any one second);
* ``Api.ask``: one lookup, retried with backoff and jitter (or after the wait the server asked
  for) after a transport error or a 5xx, each answer read whole within a deadline and a size
  limit; the client's ``classify`` says what every other answer means (its status codes);
* ``drain``: the pass loop: the daily budget asked before each lookup, results and failures handed
  over in batches (``Batcher``), and a stop signal that leaves the rest not attempted.

The helpers hold no database code and never put a secret in what they return: every text taken
from an exception goes through ``redact`` first.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import random
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Generic, Self, TypeVar

import httpx

log = logging.getLogger(__name__)

# A lookup API's answer is at most about a megabyte (a GreyNoise enterprise chunk of 1,000 IPs);
# far more is not an answer.
MAX_BODY_BYTES = 16 << 20
IPInput = str | ipaddress.IPv4Address | ipaddress.IPv6Address
Sleep = Callable[[float], None]


def redact(text: str, secret: str) -> str:
    """Return ``text`` with every occurrence of ``secret`` masked.

    Applied to every message derived from an exception before it is stored or raised: transport
    errors are not expected to carry headers, but a key must not leak even if one ever does.
    """
    if not secret:
        return text
    return text.replace(secret, "[REDACTED]")


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
    """Why ``url`` cannot be an API's base URL (an http(s) URL with a host), or None when it can.

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
        return "credentials do not belong in the URL (an API key has a setting of its own)"
    return None


class Pacer:
    """Fixed spacing between requests: never more than ``rate`` requests in any one second."""

    def __init__(self, rate_per_second: float, sleep: Sleep) -> None:
        self._interval = 1.0 / rate_per_second
        self._sleep = sleep
        self._next = 0.0  # monotonic time of the next free slot

    def wait(self) -> None:
        now = time.monotonic()
        if now < self._next:
            self._sleep(self._next - now)
            now = max(self._next, time.monotonic())
        self._next = now + self._interval


@dataclass
class Outcome:
    """Counts and flags of one pass; ``not_attempted`` is what a later run should resume with."""

    requests_made: int = 0
    results: int = 0
    failures: int = 0
    not_attempted: list[str] = field(default_factory=list)
    budget_exhausted: bool = False


R = TypeVar("R")  # a source's result type
F = TypeVar("F")  # its failure type
T = TypeVar("T")  # what its classify function returns when the answer is final
S = TypeVar("S")  # its stop signals


class Batcher(Generic[R, F]):
    """Buffers results and failures and hands them to ``on_results`` ``flush_every`` at a time."""

    def __init__(self, on_results: Callable[[list[R], list[F]], None], flush_every: int, outcome: Outcome,
                 result_type: type[R]) -> None:
        self._on_results = on_results
        self._flush_every = flush_every
        self._outcome = outcome
        self._result_type = result_type
        self._items: list[R | F] = []

    def add(self, item: R | F) -> None:
        if isinstance(item, self._result_type):
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
        results = [i for i in items if isinstance(i, self._result_type)]
        failures: list[F] = [i for i in items if not isinstance(i, self._result_type)]  # type: ignore[misc]
        self._on_results(results, failures)


@dataclass(frozen=True)
class LookupFailure:
    """One IP that got no answer this pass. ``retryable=False`` means asking again is pointless."""

    ip: str
    error: str
    status: int | None
    retryable: bool
    retry_after: float | None = None


@dataclass
class Reply(Generic[R, F, S]):
    """What one lookup (a single IP or a chunk) produced: per-IP items, or a stop signal."""

    items: Sequence[R | F] = field(default_factory=list)
    stop: S | None = None
    status: int | None = None  # of the response that caused ``stop``


@dataclass(frozen=True)
class Retry:
    """A classify verdict: asking again may help. ``wait``: seconds the server asked for (its
    Retry-After, or the pause its rules ask for); None: exponential backoff with jitter."""

    error: str
    wait: float | None = None


@dataclass(frozen=True)
class Exhausted:
    """What ``Api.ask`` returns when the last attempt, too, was to be retried."""

    error: str
    status: int | None  # of the last answer; None after a transport error
    retry_after: float | None  # the last answer's Retry-After, parsed

    def failures(self, batch: list[str]) -> list[LookupFailure]:
        """The batch's failures: retryable, not before the last Retry-After."""
        return [LookupFailure(ip, self.error, self.status, retryable=True, retry_after=self.retry_after) for ip in batch]


def parse_ips(ips: Iterable[IPInput], batcher: Batcher[R, LookupFailure],
              accept: Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool] = lambda _: True) -> deque[str]:
    """The addresses to look up, canonical; what is not an address is a failure never sent, and
    what ``accept`` declines (it records why) is left out."""
    pending: deque[str] = deque()
    for raw in ips:
        try:
            addr = ipaddress.ip_address(raw)
        except ValueError:
            batcher.add(LookupFailure(str(raw), "not an IP address", None, retryable=False))
            continue
        if accept(addr):
            pending.append(str(addr))
    return pending


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """How to reach a lookup API and how politely; each source's settings extend it."""

    base_url: str
    rate_per_second: float = 1.0  # across the whole pass, retries included
    timeout: float = 10.0  # seconds one request may take, its whole answer read
    retries: int = 3  # extra attempts after a retryable answer or a transport error
    backoff_base: float = 0.5  # first backoff in seconds, doubled per attempt
    backoff_max: float = 30.0
    max_retry_after: float = 60.0  # the longest Retry-After waited for; what a longer one means is the source's
    flush_every: int = 100  # IPs per on_results call

    def check(self, name: str) -> None:
        """ValueError, naming the service, for a value no pass can run with."""
        problem = base_url_problem(self.base_url)
        if problem:
            raise ValueError(f"{name} base_url {self.base_url!r} is not an http(s) URL: {problem}")
        if self.rate_per_second <= 0 or self.timeout <= 0:
            raise ValueError(f"{name} rate_per_second and timeout must be positive")
        if self.retries < 0 or self.backoff_base < 0 or self.backoff_max < 0 or self.max_retry_after < 0:
            raise ValueError(f"{name} retries, backoff and max_retry_after must not be negative")
        if self.flush_every < 1:
            raise ValueError(f"{name} flush_every must be at least 1")

    def honoured(self, retry_after: float | None) -> float | None:
        """The server's Retry-After when it is within ``max_retry_after``; else None (backoff)."""
        return retry_after if retry_after is not None and retry_after <= self.max_retry_after else None


class Api:
    """An httpx client for one base URL: its pacing, retries and deadline per answer.

    Redirects are never followed (httpx's default): a key stays with the API it was meant for.
    ``sleep`` is how it waits (pacing, backoff, a server's pause): a pass may give one that says,
    while it waits, that the run is alive.
    """

    def __init__(self, settings: ApiSettings, *, headers: dict[str, str], name: str, secret: str = "",
                 sleep: Sleep | None = None) -> None:
        self.settings = settings
        self.name = name  # how log lines name the service
        self.sleep = sleep or time.sleep
        self._secret = secret
        self._http = httpx.Client(base_url=settings.base_url.rstrip("/"), headers=headers, timeout=settings.timeout)
        # One pacer per client so the rate holds across passes made with the same client.
        self._pacer = Pacer(settings.rate_per_second, self.sleep)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Request:
        return self._http.build_request(method, path, **kwargs)  # type: ignore[arg-type]

    def ask(self, build: Callable[[], httpx.Request], classify: Callable[[httpx.Response], T | Retry],
            outcome: Outcome, what: str) -> T | Exhausted:
        """One lookup: send ``build()``, retried after a transport error, a 5xx (after its
        Retry-After when within bounds) or while ``classify`` says Retry."""
        error, status, retry_after, wait = "", None, None, None
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self.sleep(wait if wait is not None else self._backoff(attempt))
            self._pacer.wait()
            outcome.requests_made += 1
            try:
                response = self._send(build())
            except httpx.RequestError as exc:  # timeouts, refused or dropped connections, bad encodings
                error = redact(f"{type(exc).__name__}: {exc}", self._secret)
                status, retry_after, wait = None, None, None
                log.debug("%s request for %s failed: %s", self.name, what, error)
                continue
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            log.debug("%s %s -> HTTP %d", self.name, what, status)
            if status >= 500:
                error, wait = f"HTTP {status} server error", self.settings.honoured(retry_after)
                continue
            verdict = classify(response)
            if not isinstance(verdict, Retry):
                return verdict
            error, wait = verdict.error, verdict.wait
        return Exhausted(error, status, retry_after)

    def _send(self, request: httpx.Request) -> httpx.Response:
        """One request, its answer read whole within ``timeout`` seconds of sending it.

        httpx's timeouts bound each wait (connect, every read), not the answer: a server that
        drips a line every few seconds would hold a request for as long as it likes. The body is
        therefore read here against a deadline for all of it, and at most MAX_BODY_BYTES of it.
        """
        timeout = self.settings.timeout
        deadline = time.monotonic() + timeout
        response = self._http.send(request, stream=True)
        body = bytearray()
        try:
            for chunk in response.iter_raw():
                body += chunk
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"no complete answer within {timeout:g}s", request=request)
                if len(body) > MAX_BODY_BYTES:
                    raise httpx.RemoteProtocolError(f"answer larger than {MAX_BODY_BYTES:,} bytes", request=request)
        finally:
            response.close()
        # The raw (still content-encoded) bytes, so the new response decodes them as the old one would.
        return httpx.Response(response.status_code, headers=response.headers, content=bytes(body), request=request)

    def _backoff(self, attempt: int) -> float:
        """Wait before retry ``attempt`` (1-based) when the server named none."""
        # Jitter spreads retries of concurrent clients apart; the cap bounds a single wait.
        base = min(self.settings.backoff_max, self.settings.backoff_base * 2.0 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)


class ApiClient:
    """A lookup API's client (its ``_api``): a context manager that closes its connections."""

    _api: Api

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._api.close()


def error_text(response: httpx.Response, secret: str, message: str = "") -> str:
    """``HTTP <status>: <message>`` (bounded, redacted) for a failure record."""
    text = f"HTTP {response.status_code}: {message}" if message else f"HTTP {response.status_code}"
    return redact(text[:300], secret)


def drain(pending: deque[str], *, size: int, lookup: Callable[[list[str]], Reply[R, F, S]],
          batcher: Batcher[R, F], outcome: Outcome, budget: Callable[[int], int] | None,
          name: str) -> Reply[R, F, S] | None:
    """Look up ``pending`` ``size`` IPs at a time until done, the budget grants nothing or a lookup
    says stop. Returns the stopping reply (its batch is put back: not attempted), else None.

    ``budget(n)`` is asked before each lookup and may grant fewer; retries of the same lookup
    are not charged again. Units granted to a lookup that then stops are not handed back.
    Whatever is left in ``pending`` ends in ``outcome.not_attempted``; the batcher is flushed.
    """
    stopped: Reply[R, F, S] | None = None
    while pending:
        batch = [pending.popleft() for _ in range(min(size, len(pending)))]
        if budget is not None:
            granted = max(0, min(budget(len(batch)), len(batch)))
            pending.extendleft(reversed(batch[granted:]))
            batch = batch[:granted]
            if not batch:
                log.info("%s daily budget used up; IPs left for a later run: %d", name, len(pending))
                outcome.budget_exhausted = True
                break
        reply = lookup(batch)
        for item in reply.items:
            batcher.add(item)
        if reply.stop is not None:
            pending.extendleft(reversed(batch))  # the batch got no answer: not attempted
            stopped = reply
            break
    outcome.not_attempted.extend(pending)
    batcher.flush()
    return stopped
