"""Team Cymru IP-to-ASN client: bulk whois over TCP (``whois.cymru.com:43``), asyncio.

One bulk query is one TCP connection: the client sends ``begin``, ``verbose``, one IP per line and
``end``; the server answers a banner line, then one ``|``-separated row per origin of each IP
(``AS | IP | BGP Prefix | CC | Registry | Allocated | AS Name``) and closes the connection.
Rows are matched to the request by IP, never by position, and anything that does not read as a
well-formed row is counted as garbage and dropped, so a confused answer can cost a retry but can
never put a wrong ASN into the database.

Why the defaults are polite: Cymru asks clients with more than a handful of IPs to use this bulk
interface rather than many single whois queries, and null-routes hosts that hammer the service
with individual lookups. It says about 10,000 IPs should come back in under a minute in bulk
mode, so there is no need for many connections: batches of 500 IPs over at most 2 concurrent
connections keep us a modest client (10,000 IPs are 20 connections in all), and a batch that
fails is retried only a few times, with exponential backoff and full jitter, before it is
recorded as a failure for a later run. A lone IP is never sent on its own connection unless it
is the whole input.

Nothing waits without bound: ``read_timeout`` limits the silence between two lines, and
``batch_timeout`` the whole of one bulk query, so a server that drips a line now and then cannot
hold a connection for ever. ``pass_timeout`` is the budget of one ``lookup``: once it is spent no
attempt is started or continued, and the IPs of the batches not settled by then are handed back
in ``CymruOutcome.unfinished`` (not failures: nothing was learned about them).

CC is the RIR registration country of the allocation, not a geolocation. The client holds no
database code: ``lookup`` hands each finished batch to ``on_batch`` so the caller can COPY and
merge it while the other batches are still in flight.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import ipaddress
import logging
import math
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

BANNER_PREFIX = "Bulk mode;"
_NO_MATCH = re.compile(r"Error: no ASN or IP match on line (\d+)\.?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Lines of the request that come before the first IP. The server numbers the lines of the whole
# session from 1, keywords included (public transcripts show the first IP after
# "begin\nverbose\n" reported as "line 3"), so body line i (0-based) is line i + 3.
_QUERY_HEAD = ("begin", "verbose")
_FIRST_IP_LINE = len(_QUERY_HEAD) + 1
_MAX_ASN = 2**32 - 1
# An answer row is ~100 bytes; a longer "line" means the stream is not what we think it is.
_MAX_LINE_BYTES = 64 * 1024


class CymruError(Exception):
    """A bulk query did not produce a complete, trustworthy answer; the batch may be retried."""


class CymruConnectionError(CymruError):
    """Could not connect, or the connection broke (refused, reset, unreachable)."""


class CymruTimeoutError(CymruError):
    """Connecting took longer than ``connect_timeout``, the server went silent for ``read_timeout``,
    or the whole answer did not arrive within ``batch_timeout``."""


class CymruProtocolError(CymruError):
    """The byte stream broke the protocol: a half-written last line, or an absurdly long line."""


class CymruIncompleteError(CymruError):
    """The server closed the connection without answering every requested IP."""

    def __init__(self, missing: Sequence[str], total: int) -> None:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        super().__init__(f"answer lacks {len(missing)} of {total} requested IPs ({shown})")
        self.missing = list(missing)


@dataclass(slots=True, frozen=True)
class CymruOrigin:
    """One answer row: an origin AS announcing a prefix that covers the IP.

    ``asn``, ``prefix`` and ``as_name`` are None for an allocated but unrouted address (``NA``);
    the registration fields (``registered_country``, ``registry``, ``allocated``) may still be set.
    """

    asn: int | None
    prefix: str | None
    registered_country: str | None
    registry: str | None
    allocated: datetime.date | None
    as_name: str | None


@dataclass(slots=True, frozen=True)
class CymruResult:
    """Every origin Cymru reported for one IP, and the one we treat as current."""

    ip: str  # normalised text form (IPv4-mapped IPv6 shown as IPv4)
    origins: list[CymruOrigin]
    current: CymruOrigin


@dataclass(slots=True, frozen=True)
class CymruBatchFailure:
    """A batch that got no usable answer after every attempt; its IPs are for a later run."""

    ips: list[str]
    error: str
    attempts: int


@dataclass(slots=True, frozen=True)
class CymruSettings:
    """Where the bulk whois service is and how politely to use it (see the module docstring)."""

    addr: str = "whois.cymru.com:43"  # "host:port" or "[v6 literal]:port"
    batch_size: int = 500  # IPs per connection
    concurrency: int = 2  # connections open at once
    connect_timeout: float = 10.0  # seconds
    read_timeout: float = 60.0  # seconds of silence allowed between two received lines
    # Seconds one bulk query may take in all (connect, query, whole answer). Cymru answers 10,000
    # IPs in under a minute, so 500 in 120 s leaves a slow day plenty of room.
    batch_timeout: float = 120.0
    pass_timeout: float = 1800.0  # seconds one lookup may take in all, retries and backoff included
    retries: int = 3  # further attempts for a failed batch
    backoff_base: float = 1.0  # seconds; the jitter ceiling doubles per retry
    backoff_max: float = 30.0  # seconds; cap on that ceiling

    def __post_init__(self) -> None:
        split_addr(self.addr)
        # With at least 3 IPs per batch, an even split never leaves a batch of one (see
        # _split_batches); single-IP queries are what Cymru asks clients not to make.
        if self.batch_size < 3:
            raise ValueError("Cymru batch_size must be at least 3")
        if self.concurrency < 1:
            raise ValueError("Cymru concurrency must be at least 1")
        if min(self.connect_timeout, self.read_timeout, self.batch_timeout, self.pass_timeout) <= 0:
            raise ValueError("Cymru connect_timeout, read_timeout, batch_timeout and pass_timeout must be positive")
        if self.retries < 0 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("Cymru retries and backoff must not be negative")


@dataclass(slots=True)
class ParsedBatch:
    """What one bulk answer says, matched against the request.

    ``not_found`` holds requested IPs that Cymru answered with ``Error: no ASN or IP match``;
    ``missing`` holds requested IPs the answer says nothing about. ``errors`` keeps every
    ``Error:`` line as received, whether or not it could be tied to a requested IP.
    """

    results: dict[str, CymruResult] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    garbage: int = 0
    banner: str | None = None


@dataclass(slots=True)
class CymruOutcome:
    """Totals of one ``lookup``: results delivered, negatives, failed batches, connections made,
    and the IPs left unsettled when ``pass_timeout`` ran out (``out_of_time``)."""

    results: int = 0
    not_found: list[str] = field(default_factory=list)
    failures: list[CymruBatchFailure] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    out_of_time: bool = False
    batches: int = 0
    connections: int = 0  # attempts to open a connection, retries included
    garbage: int = 0  # lines skipped in the answers that were used


OnBatch = Callable[[list[CymruResult], list[str]], Awaitable[None] | None]


def split_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[::1]:4343"`` → ``(host, port)``; ValueError if unreadable."""
    host, sep, port_text = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # a bare IPv6 literal: its own colons make the port ambiguous
        raise ValueError(f"Cymru address {addr!r}: write an IPv6 literal as [addr]:port")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"Cymru address {addr!r} is not host:port")
    return host, int(port_text)


def normalise_ip(text: str) -> str:
    """Canonical text of an IP; IPv4-mapped IPv6 becomes IPv4. ValueError if not an IP."""
    ip = ipaddress.ip_address(text.strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        raise ValueError(f"{text!r} has a zone index, which means nothing outside this host")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _normalise_unique(ips: Iterable[str]) -> list[str]:
    """Normalised IPs in first-seen order, each once.

    Only IP addresses are ever sent: any other text would be read by the server as a keyword
    (``end``, ``noasname``, ``AS15169``...) and change or cut the answer, so a non-IP is a
    caller's bug and fails here, before any connection is opened.
    """
    unique: dict[str, None] = {}
    for text in ips:
        try:
            unique[normalise_ip(text)] = None
        except ValueError:
            raise ValueError(f"not an IP address: {text!r}") from None
    return list(unique)


_COUNTRY = re.compile(r"[A-Za-z]{2}")


def _parse_row(line: str) -> tuple[str, CymruOrigin] | None:
    """``(normalised ip, origin)`` from one answer row, or None if it is not a well-formed row."""
    fields = [part.strip() for part in line.split("|", 6)]
    if len(fields) != 7:
        return None
    as_text, ip_text, prefix_text, cc, registry, allocated_text, as_name = fields
    if as_text == "NA":
        asn = None
    elif as_text.isdigit() and int(as_text) <= _MAX_ASN:
        asn = int(as_text)
    else:
        return None
    try:
        ip = normalise_ip(ip_text)
        network = None if prefix_text == "NA" else ipaddress.ip_network(prefix_text)
    except ValueError:
        return None
    # A prefix that does not cover the IP means the row is corrupt, not that the route is odd.
    if network is not None and ipaddress.ip_address(ip) not in network:
        return None
    if not allocated_text:
        allocated = None
    elif _DATE.fullmatch(allocated_text):
        try:
            allocated = datetime.date.fromisoformat(allocated_text)
        except ValueError:
            return None
    else:
        return None
    origin = CymruOrigin(
        asn=asn,
        prefix=str(network) if network is not None else None,
        # ISO 3166 alpha-2 (or an RIR's EU / AP), upper case; anything else is no country.
        registered_country=cc.upper() if _COUNTRY.fullmatch(cc) else None,
        registry=registry or None,
        allocated=allocated,
        as_name=None if as_name in ("", "NA") else as_name,
    )
    return ip, origin


def _current(origins: Sequence[CymruOrigin]) -> CymruOrigin:
    """The origin traffic to the IP follows: the most specific prefix wins (longest match is how
    routers forward); between equally specific announcements (MOAS) the lowest ASN is taken
    only so the choice is deterministic from run to run. Unrouted (NA) rows rank last."""

    def rank(origin: CymruOrigin) -> tuple[int, float]:
        length = ipaddress.ip_network(origin.prefix).prefixlen if origin.prefix else -1
        return -length, origin.asn if origin.asn is not None else math.inf

    return min(origins, key=rank)


def parse_bulk_response(lines: Iterable[str], requested: Sequence[str]) -> ParsedBatch:
    """Read a bulk answer (lines without their line ends) against the request, in order.

    ``requested`` are the IP lines exactly as sent after ``begin``/``verbose``; their positions
    are what ``Error: ... on line N`` refers to. Rows for IPs not requested, and lines that are
    not well-formed rows, are counted in ``garbage`` and never become data.
    """
    parsed = ParsedBatch()
    wanted: set[str] = set()
    for text in requested:
        try:
            wanted.add(normalise_ip(text))
        except ValueError:
            pass  # still addressable through an Error line by its position
    origins: dict[str, list[CymruOrigin]] = {}
    error_lines: list[int] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if line.startswith(BANNER_PREFIX) and parsed.banner is None:
            parsed.banner = line
            continue
        if line.startswith("Error:"):
            parsed.errors.append(line)
            if match := _NO_MATCH.fullmatch(line):
                error_lines.append(int(match.group(1)))
            continue
        row = _parse_row(line)
        if row is None or row[0] not in wanted:
            parsed.garbage += 1
            continue
        ip, origin = row
        found = origins.setdefault(ip, [])
        if origin not in found:  # a repeated identical row adds nothing
            found.append(origin)

    for ip, found in origins.items():
        parsed.results[ip] = CymruResult(ip=ip, origins=found, current=_current(found))

    # An Error line names a line number, not an IP. It is tied to the request line at that
    # position only if that line got no row: if it did, the numbering is not what we think and
    # guessing would be worse than leaving the IP missing (which makes the batch retry).
    errored: set[int] = set()
    for number in error_lines:
        index = number - _FIRST_IP_LINE
        if 0 <= index < len(requested) and not _answered(requested[index], parsed.results):
            errored.add(index)
    for index, text in enumerate(requested):
        if index in errored:
            parsed.not_found.append(text)
        elif not _answered(text, parsed.results):
            parsed.missing.append(text)
    return parsed


def _answered(text: str, results: dict[str, CymruResult]) -> bool:
    try:
        return normalise_ip(text) in results
    except ValueError:
        return False


async def _read_lines(reader: asyncio.StreamReader, read_timeout: float, deadline: float, limit: float) -> list[str]:
    """Every line until the server closes; raises if it goes silent, stops mid-line, or is still
    answering at ``deadline`` (event loop time; ``limit`` is the seconds it stands for)."""
    loop = asyncio.get_running_loop()
    lines: list[str] = []
    while True:
        # Each wait is bounded by the silence allowed and by what is left of the query's time, so
        # a server sending one line every read_timeout - 1 seconds is cut off all the same.
        wait = min(read_timeout, deadline - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            raw = await asyncio.wait_for(reader.readline(), wait)
        except TimeoutError:  # before OSError: TimeoutError is one
            if wait < read_timeout:
                raise CymruTimeoutError(f"no complete answer within {round(limit, 1):g}s ({len(lines)} lines received)") from None
            raise CymruTimeoutError(f"no complete line for {read_timeout:g}s after {len(lines)} lines") from None
        except ValueError:  # StreamReader's line limit
            raise CymruProtocolError(f"line longer than {_MAX_LINE_BYTES} bytes after {len(lines)} lines") from None
        except OSError as exc:
            raise CymruConnectionError(f"connection lost after {len(lines)} lines: {exc!r}") from exc
        if not raw:
            return lines
        if not raw.endswith(b"\n"):
            # EOF inside a line: the rest of the answer, which may include more rows, never came.
            raise CymruProtocolError(f"connection closed in the middle of a line after {len(lines)} lines")
        lines.append(raw.decode("utf-8", errors="replace").rstrip("\r\n"))


async def query_batch(ips: Sequence[str], settings: CymruSettings, time_limit: float | None = None) -> ParsedBatch:
    """One connection, one bulk query for ``ips``; raises a ``CymruError`` unless the answer is whole.

    Whole means: the server closed cleanly after complete lines and every requested IP has a
    row or an ``Error: no ASN or IP match`` line (then it is in ``not_found``). The query may take
    ``settings.batch_timeout`` seconds in all, or ``time_limit`` if that is shorter.
    """
    request = _normalise_unique(ips)
    host, port = split_addr(settings.addr)
    limit = settings.batch_timeout if time_limit is None else min(settings.batch_timeout, time_limit)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    connect_wait = min(settings.connect_timeout, limit)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=_MAX_LINE_BYTES), connect_wait
        )
    except TimeoutError:
        raise CymruTimeoutError(f"connect to {settings.addr} took over {connect_wait:g}s") from None
    except OSError as exc:
        raise CymruConnectionError(f"cannot connect to {settings.addr}: {exc!r}") from exc
    try:
        # write() only queues the query; the event loop sends it while we read the answer, so a
        # big answer can never deadlock against a query we are still waiting to flush.
        writer.write("".join(f"{line}\n" for line in (*_QUERY_HEAD, *request, "end")).encode("ascii"))
        lines = await _read_lines(reader, settings.read_timeout, deadline, limit)
    except BaseException:
        writer.transport.abort()  # nothing more to say to a server we gave up on
        raise
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass  # the answer is complete; how the socket ended no longer matters
    parsed = parse_bulk_response(lines, request)
    if parsed.missing:
        raise CymruIncompleteError(parsed.missing, len(request))
    return parsed


def _split_batches(ips: Sequence[str], batch_size: int) -> list[list[str]]:
    """As few batches as ``batch_size`` allows, sizes evenly spread (501 IPs → 251 + 250).

    Cutting plain chunks would leave a batch of one (501 → 500 + 1); with even sizes and
    ``batch_size >= 3`` every batch holds at least 2 IPs unless the whole input is one IP.
    """
    if not ips:
        return []
    count = math.ceil(len(ips) / batch_size)
    size, extra = divmod(len(ips), count)
    batches: list[list[str]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        batches.append(list(ips[start:end]))
        start = end
    return batches


async def lookup(
    ips: Sequence[str],
    settings: CymruSettings | None = None,
    on_batch: OnBatch | None = None,
) -> CymruOutcome:
    """Look every IP up in bulk; never raises for network or server faults.

    Duplicates (after normalisation) are asked once. Each batch is tried ``1 + retries`` times;
    one that still fails becomes a ``CymruBatchFailure`` carrying all its IPs, and the other
    batches go on. ``on_batch(results, not_found)`` is called once per successful batch, never
    two calls at a time, so the caller may COPY into one database connection from it; an
    exception it raises stops the lookup and propagates. ValueError if an input is not an IP.

    The whole lookup takes at most ``pass_timeout`` seconds (plus the ``on_batch`` in progress):
    then no attempt is started, the ones in flight are cut short, and every batch not settled
    yet is put in ``unfinished`` with ``out_of_time`` set; it is neither retried nor a failure.
    """
    settings = settings or CymruSettings()
    batches = _split_batches(_normalise_unique(ips), settings.batch_size)
    outcome = CymruOutcome(batches=len(batches))
    connection_slots = asyncio.Semaphore(settings.concurrency)
    delivery = asyncio.Lock()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.pass_timeout

    def time_left() -> float:
        return deadline - loop.time()

    async def deliver(parsed: ParsedBatch) -> None:
        results = list(parsed.results.values())
        outcome.results += len(results)
        outcome.not_found.extend(parsed.not_found)
        outcome.garbage += parsed.garbage
        if on_batch is not None:
            async with delivery:
                returned = on_batch(results, list(parsed.not_found))
                if inspect.isawaitable(returned):
                    await returned

    async def run(batch: list[str]) -> None:
        attempts = settings.retries + 1
        error = ""
        for attempt in range(attempts):
            if attempt:
                # Full jitter: retries of batches that failed together do not come back together.
                ceiling = min(settings.backoff_max, settings.backoff_base * 2 ** (attempt - 1))
                await asyncio.sleep(min(random.uniform(0, ceiling), max(0.0, time_left())))
            # The slot is held only while connected, not while backing off.
            async with connection_slots:
                if time_left() <= 0:
                    break
                outcome.connections += 1
                try:
                    parsed = await query_batch(batch, settings, time_left())
                except CymruError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning("Cymru batch of %d IPs, attempt %d/%d: %s", len(batch), attempt + 1, attempts, error)
                    continue
            await deliver(parsed)
            return
        if time_left() <= 0:
            # The budget ran out before the batch was settled (its last attempt may have been cut
            # short by it): nothing is known about these IPs, so they stay due, not failed.
            outcome.out_of_time = True
            outcome.unfinished.extend(batch)
        else:
            outcome.failures.append(CymruBatchFailure(ips=batch, error=error, attempts=attempts))

    tasks = [asyncio.create_task(run(batch)) for batch in batches]
    try:
        # gather, not a TaskGroup: an exception from on_batch reaches the caller as itself, not
        # wrapped in an ExceptionGroup.
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()  # no-op for finished tasks; stops the rest if one failed or we were cancelled
        await asyncio.gather(*tasks, return_exceptions=True)
    return outcome
