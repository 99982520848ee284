"""DShield (SANS Internet Storm Center) client: ``GET {base}/api/ip/{ip}?json``, one IP a request.

The answer wraps its fields in an object under ``"ip"``: ``count`` (reports of the IP attacking
DShield's sensors), ``attacks`` (targets it hit), ``mindate`` / ``maxdate`` (first and last
report), ``updated``, ``as`` / ``asname`` / ``ascountry`` (its AS), ``network`` and
``threatfeeds`` (``{feed: {"firstseen": ..., "lastseen": ...}}``, an empty list when none). An IP
DShield holds no report of comes back with those fields null: a real, cacheable "no". Numbers
may come as JSON numbers or as strings of digits; both are read.

The ISC asks its API's users to be gentle and to say who they are, so this client:

* sends a User-Agent naming ipintel, its version and the operator's contact
  (``ipintel/<version> (contact: <contact>)``); without a contact there is no client;
* paces its requests (1 per second by default) across the pass, retries included;
* on a 429, waits the Retry-After it names, or 5 minutes when it names none, before any further
  request; a Retry-After beyond ``max_retry_after``, or a 429 after every retry, ends the pass
  (``rate_limited``) and leaves the rest for a later run;
* asks the caller's daily budget (kept in PostgreSQL) before each lookup.

The client holds no database code: results and failures go to ``on_results`` in batches.
"""

from __future__ import annotations

import enum
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from ipintel import __version__
from ipintel.config import DSHIELD_DEFAULT_URL
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
    drain,
    error_text,
    parse_ips,
    parse_retry_after,
)

log = logging.getLogger(__name__)

DEFAULT_URL = DSHIELD_DEFAULT_URL
ENDPOINT = "/api/ip/{ip}?json"
ASN_MAX = 4_294_967_295  # 32-bit AS numbers: a larger "as" is not one
RATE_LIMIT_PAUSE = 300.0  # seconds without any request after a 429 that names no Retry-After
ATTRIBUTION = "DShield data from the SANS Internet Storm Center (https://isc.sans.edu)"

# A contact the ISC can use: an e-mail address or an http(s) URL, as one User-Agent comment
# (visible ASCII; no parentheses or backslash, which a comment would have to escape).
_EMAIL = re.compile(r"[^@\s()\\]+@[^@\s()\\]+\.[^@\s()\\]+")
_TEXT = re.compile(r"[\x20-\x7e]{3,200}")


def contact_problem(contact: str) -> str | None:
    """Why ``contact`` cannot stand in the User-Agent as the operator's contact, or None."""
    if not _TEXT.fullmatch(contact) or any(ch in contact for ch in "()\\"):
        return "it must be 3 to 200 printable ASCII characters, without parentheses or backslashes"
    parts = urllib.parse.urlsplit(contact)
    if parts.scheme in ("http", "https"):
        if parts.hostname and " " not in contact and "@" not in parts.netloc:
            return None
    elif _EMAIL.fullmatch(contact):
        return None
    return "it must be an e-mail address or an http(s) URL where SANS ISC can reach you"


def user_agent(contact: str) -> str:
    return f"ipintel/{__version__} (contact: {contact})"


@dataclass(frozen=True, kw_only=True)
class DShieldSettings(ApiSettings):
    """How to reach DShield and how politely. A Retry-After longer than ``max_retry_after`` ends
    the pass instead of holding the run that long."""

    base_url: str = DEFAULT_URL
    contact: str
    rate_limit_pause: float = RATE_LIMIT_PAUSE
    max_retry_after: float = 900.0

    def __post_init__(self) -> None:
        self.check("DShield")
        problem = contact_problem(self.contact)
        if problem:
            raise ValueError(f"DShield contact {self.contact!r}: {problem}")
        if self.rate_limit_pause < 0:
            raise ValueError("DShield rate_limit_pause must not be negative")


@dataclass(frozen=True)
class DShieldResult:
    """What DShield knows about one IP; ``count=None`` (no report) is a real, cacheable answer."""

    ip: str
    count: int | None = None  # reports of the IP
    attacks: int | None = None  # targets it attacked
    mindate: str | None = None
    maxdate: str | None = None
    updated: str | None = None
    asn: int | None = None
    as_name: str | None = None
    as_country: str | None = None
    network: str | None = None
    threatfeeds: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The answer's facts as a JSON-ready dict for the ``enrichment`` JSONB (no IP: it is the key)."""
        document = asdict(self)
        document.pop("ip")
        return document


@dataclass
class DShieldOutcome(Outcome):
    """Counts and flags of one pass. ``rate_limited``: DShield kept answering 429, the pass stopped."""

    rate_limited: bool = False
    retry_after: float | None = None  # the wait DShield asked for when the pass stopped, if it named one


class DShieldRefused(Exception):
    """DShield refused ipintel's requests (401 / 403); the pass stopped. ``outcome`` tells how far it got."""

    def __init__(self, message: str, outcome: DShieldOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class _Stop(enum.Enum):
    REFUSED = "refused"
    RATE_LIMITED = "rate limited"


_Reply = Reply[DShieldResult, LookupFailure, _Stop]
OnResults = Callable[[list[DShieldResult], list[LookupFailure]], None]


class DShieldClient(ApiClient):
    """Runs DShield passes over lists of IPs; a context manager that closes its connections.

    ``sleep`` is how it waits (pacing, backoff, a 429's pause): a pass may give one that reports
    it is alive while it waits.
    """

    def __init__(self, settings: DShieldSettings, *, sleep: Sleep | None = None) -> None:
        self.settings = settings
        self.user_agent = user_agent(settings.contact)
        self._api = Api(settings, headers={"accept": "application/json", "user-agent": self.user_agent},
                        name="DShield", sleep=sleep)

    def run(self, ips: Iterable[IPInput], *, on_results: OnResults,
            budget: Callable[[int], int] | None = None) -> DShieldOutcome:
        """Look every IP up once (IPv4 and IPv6); return the pass outcome.

        ``budget(n)`` is asked for one lookup before each request and may grant none; retries are
        not charged again. Raises DShieldRefused (after handing over what was gathered) when
        DShield answers 401 or 403.
        """
        outcome = DShieldOutcome()
        batcher = Batcher(on_results, self.settings.flush_every, outcome, DShieldResult)
        stopped = drain(parse_ips(ips, batcher), size=1, lookup=lambda batch: self._lookup(batch[0], outcome),
                        batcher=batcher, outcome=outcome, budget=budget, name="DShield")
        if stopped is not None and stopped.stop is _Stop.RATE_LIMITED:
            log.warning("DShield rate limited this client (HTTP 429); IPs left for a later run: %d",
                        len(outcome.not_attempted))
            outcome.rate_limited = True
        if stopped is not None and stopped.stop is _Stop.REFUSED:
            raise DShieldRefused(
                f"DShield refused ipintel's requests (HTTP {stopped.status}): SANS ISC blocks clients it cannot "
                "identify or that asked too much; check IPINTEL_DSHIELD_CONTACT and IPINTEL_DSHIELD_RATE",
                outcome)
        return outcome

    def _lookup(self, ip: str, outcome: DShieldOutcome) -> _Reply:
        """One IP with retries. Returns its result or failure, or a stop signal with no items."""
        verdict = self._api.ask(lambda: self._api.request("GET", ENDPOINT.format(ip=ip)),
                                lambda response: self._classify(ip, response, outcome), outcome, ip)
        if not isinstance(verdict, Exhausted):
            return verdict
        if verdict.status == 429:  # still rate limited after every pause: leave the rest for later
            return _Reply(stop=_Stop.RATE_LIMITED, status=429)
        return _Reply(verdict.failures([ip]))

    def _classify(self, ip: str, response: httpx.Response, outcome: DShieldOutcome) -> _Reply | Retry:
        s = self.settings
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 200:
            return _Reply([_parse(ip, response)])
        if status == 429:
            outcome.retry_after = retry_after
            if retry_after is not None and retry_after > s.max_retry_after:
                return _Reply(stop=_Stop.RATE_LIMITED, status=status)
            # Every further request waits: the Retry-After DShield named, else 5 minutes.
            wait = retry_after if retry_after is not None else s.rate_limit_pause
            log.info("DShield answered 429: no request for %.0f s", wait)
            return Retry("HTTP 429 rate limited", wait)
        if status in (401, 403):
            return _Reply(stop=_Stop.REFUSED, status=status)
        # 400: not an address DShield takes, asking again cannot help; any other client error (a
        # base URL that leads elsewhere, say) may pass: the IP stays due.
        return _Reply([LookupFailure(ip, error_text(response, ""), status, retryable=status != 400)])


def _int(value: object) -> int | None:
    """A count or an AS number: a whole number (a JSON integer or a string of ASCII digits), not
    negative; anything else is unknown."""
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,20}\s*", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _feeds(value: object) -> dict[str, dict[str, str | None]]:
    """``threatfeeds``: feed name -> its first and last sighting; an empty list (PHP's empty
    array) or anything else that is not an object: none."""
    if not isinstance(value, dict):
        return {}
    return {name: {"firstseen": _text(seen.get("firstseen")), "lastseen": _text(seen.get("lastseen"))}
            if isinstance(seen, dict) else {"firstseen": None, "lastseen": None}
            for name, seen in value.items() if isinstance(name, str) and name}


def _parse(ip: str, response: httpx.Response) -> DShieldResult | LookupFailure:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    record = payload.get("ip") if isinstance(payload, dict) else None
    if not isinstance(record, dict):
        # e.g. the HTML page a proxy or an overloaded server sends with a 200
        return LookupFailure(ip, "malformed JSON response", 200, retryable=True)
    if "error" in record:  # {"ip": {"error": "bad IP address"}}: not an address DShield takes
        return LookupFailure(ip, f"DShield: {str(record['error'])[:200]}", 200, retryable=False)
    asn = _int(record.get("as"))
    return DShieldResult(
        ip,
        count=_int(record.get("count")),
        attacks=_int(record.get("attacks")),
        mindate=_text(record.get("mindate")),
        maxdate=_text(record.get("maxdate")),
        updated=_text(record.get("updated")),
        asn=asn if asn is not None and asn <= ASN_MAX else None,
        as_name=_text(record.get("asname")),
        as_country=_text(record.get("ascountry")),
        network=_text(record.get("network")),
        threatfeeds=_feeds(record.get("threatfeeds")),
    )
