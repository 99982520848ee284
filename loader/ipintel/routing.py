"""`ipintel routing load`: dated routing tables (which AS originated each prefix on a given day)
→ staging (COPY) → ipintel.load_routing_snapshot() → ipintel.prefix_origins.

Formats, recognised from the file name, else from the first data line (or `--format`):
- `pfx2as`: CAIDA RouteViews prefix2as (`routeviews-rv2-YYYYMMDD-HHMM.pfx2as.gz`, `-rv6-`),
  `prefix<TAB>length<TAB>asns`; `a_b` is a multi-origin prefix, `a,b` an AS set (also inside a
  `_` group): one row per ASN.
- `ipasn`: pyasn's IPASN DAT (`ipasn_YYYYMMDD.dat`), `;` comment lines then `prefix/len<TAB>asn`.
- `iptoasn`: iptoasn.com (`ip2asn-v4.tsv`, `-v6`, `-combined`), `start<TAB>end<TAB>asn<TAB>cc<TAB>
  description`; a range is split into the CIDRs that cover it exactly; ASN 0 ("not routed") gives
  no row.
- `mrt`: MRT RIB dumps (`rib.YYYYMMDD.HHMM.bz2`, RIPE RIS `bview.*`) through pyasn's MRT parser
  (the optional extra `ipintel[mrt]`): every origin seen for a prefix, as CAIDA counts them.

Plain, .gz or .bz2 (by extension). A file is read one line (one MRT record) at a time, never
whole. A line that cannot be read becomes a reject (line number, reason, a safe excerpt) and the
load goes on; blank lines, `;` comments, default routes (/0) and iptoasn's "not routed" ranges
are skipped. A file whose dataset and date are already loaded is skipped before it is read (its
sha256 says whether it is the same file). Each file is ONE snapshot in ONE transaction: its rows
and rejects are COPYed into ipintel_staging, then load_routing_snapshot() merges them (or says
the snapshot of that dataset and date was loaded meanwhile, and changes nothing). A file that
cannot be read to its end, that
yields no row at all, or more than MAX_REJECTS rejects, is rolled back whole: a partial table
would look like routes withdrawn.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.resources
import io
import ipaddress
import re
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Protocol

import psycopg

from ipintel import dated_files, db

__all__ = ["FORMATS", "LoadResult", "PrefixOrigin", "Reject", "RoutingFileError", "RoutingInputError",
           "SnapshotFile", "demo_snapshots", "describe", "load", "parse_lines", "read"]

FORMATS = ("pfx2as", "ipasn", "iptoasn", "mrt")
MAX_ASN = 4_294_967_295
MAX_LINE_BYTES = 65_536  # real lines are under 200 bytes; a longer one is rejected, not held in memory
EXCERPT_CHARS = 200
MAX_REJECTS = 10_000  # more than this: the wrong format or a damaged file, not a table with a few bad lines
REJECTS_KEPT = 20  # rejects a LoadResult keeps to show (all of them are stored in the database)
SNIFF_BYTES = 65_536  # read from the head of every file before loading: readable, and which format
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # as routing_datasets checks it
DEMO_FOLDER = "demo_routing"  # package data: the synthetic routing set of `ipintel demo`
DEMO_DATASET = "demo_synthetic"  # what it loads as: never mistaken for a real dataset


class RoutingInputError(Exception):
    """A file that cannot be loaded as given (missing, no date, unknown format, pyasn missing):
    found before anything is loaded; the CLI says it in one line and exits 2."""


class RoutingFileError(Exception):
    """A file that failed while it was loaded (damaged, nothing readable, too many rejects): its
    transaction is rolled back, the other files still load; the CLI exits 1."""


class PrefixOrigin(NamedTuple):
    """One row of a snapshot: `prefix` (normalised CIDR text) was originated by `asn`."""

    line_no: int  # the line (for MRT, the record) it was read from
    prefix: str
    asn: int


class Reject(NamedTuple):
    """One line that cannot be read; every field is safe for a text column and a terminal."""

    line_no: int
    reason: str  # a fixed phrase, never input
    excerpt: str  # at most EXCERPT_CHARS characters, invalid bytes and control characters escaped


@dataclass(frozen=True)
class SnapshotFile:
    """A routing table file and what it is: its format, its dataset and the day it was taken."""

    path: Path
    format: str
    dataset: str
    taken_on: date


@dataclass
class LoadResult:
    snapshot: SnapshotFile
    snapshot_id: int
    loaded: bool  # False: this dataset's snapshot of that date was already loaded; nothing changed
    prefixes: int  # (prefix, origin) pairs in the snapshot
    origins_opened: int
    origins_closed: int
    rejects: int
    seconds: float
    first_rejects: list[Reject] = field(default_factory=list)
    # Not loaded because that snapshot was loaded before: from which file (None: found by the merge)
    already: dated_files.AlreadyLoaded | None = None

    @property
    def what(self) -> str:
        return f"{self.snapshot.path}: {self.snapshot.dataset} {self.snapshot.taken_on:%Y-%m-%d}"

    @property
    def recorded(self) -> str:
        return f"snapshot {self.snapshot_id}"


class Stream(Protocol):
    """What the parsers read from: an open binary file (plain, gzip, bz2) or io.BytesIO."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


class _Unreadable(Exception):
    """Raised by a line parser: the line becomes a Reject with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------------------------
# Excerpts, prefixes and ASNs
# ------------------------------------------------------------------------------------------------


def excerpt(raw: bytes) -> str:
    """The head of a line for a reject: invalid UTF-8 as \\xNN, every character that is not
    printable (controls, tabs, bidi marks, line separators) escaped; at most EXCERPT_CHARS."""
    text = raw[: EXCERPT_CHARS * 4].rstrip(b"\r\n").decode("utf-8", "backslashreplace")
    out: list[str] = []
    size = 0
    for ch in text:
        shown = ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        if size + len(shown) > EXCERPT_CHARS:
            break
        out.append(shown)
        size += len(shown)
    return "".join(out)


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_MAPPED_VALUE = int(_MAPPED.network_address)
_DIGITS = frozenset("0123456789")


def _number(text: str, what: str, most: int) -> int:
    """A plain decimal number (ASCII digits only: int() would take "+1", " 1", "1_0" or "١")."""
    if not text or len(text) > len(str(most)) or not _DIGITS.issuperset(text):
        raise _Unreadable(f"{what} is not a number")
    value = int(text)
    if value > most:
        raise _Unreadable(f"{what} is out of range")
    return value


def _asn(text: str) -> int:
    return _number(text, "ASN", MAX_ASN)


def _origin(text: str) -> int:
    asn = _asn(text)
    if asn == 0:  # RFC 7607: AS 0 in an AS_PATH makes the route malformed
        raise _Unreadable("AS 0 is never an origin")
    return asn


def _address_value(family: socket.AddressFamily, address: str) -> int:
    """The value of an address, read by the C library's inet_pton: strict (dotted quads without
    leading zeros, no scope id such as fe80::1%eth0, ASCII only), and five times faster than
    ipaddress on the million lines of a table."""
    try:
        return int.from_bytes(socket.inet_pton(family, address), "big")
    except (OSError, ValueError):  # ValueError: a NUL inside
        raise _Unreadable("bad address") from None


def _cidr(address: str, length_text: str) -> str | None:
    """The normalised CIDR of `address`/`length`, or None for a default route (/0: not the origin
    of any address in particular). Host bits set and IPv4-mapped IPv6 are unreadable."""
    if ":" in address:
        length = _number(length_text, "prefix length", 128)
        value = _address_value(socket.AF_INET6, address)
        if value & ((1 << (128 - length)) - 1):
            raise _Unreadable("prefix has host bits set")
        if length and (value ^ _MAPPED_VALUE) >> (128 - min(length, 96)) == 0:  # overlaps ::ffff:0:0/96
            raise _Unreadable("IPv4-mapped IPv6 prefix")
        return None if length == 0 else f"{socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, 'big'))}/{length}"
    length = _number(length_text, "prefix length", 32)
    value = _address_value(socket.AF_INET, address)
    if value & ((1 << (32 - length)) - 1):
        raise _Unreadable("prefix has host bits set")
    return None if length == 0 else f"{address}/{length}"  # a dotted quad inet_pton takes is canonical


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An iptoasn range end: an IPv4 or IPv6 address, or (the -u32 files) IPv4 as a number."""
    if text and _DIGITS.issuperset(text):
        return ipaddress.IPv4Address(_number(text, "address", 2**32 - 1))
    if "%" in text or not text.isascii():  # ipaddress takes a scope id (fe80::1%eth0)
        raise _Unreadable("bad address")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _Unreadable("bad address") from None
    if isinstance(address, ipaddress.IPv6Address) and address in _MAPPED:
        raise _Unreadable("IPv4-mapped IPv6 address")
    return address


# ------------------------------------------------------------------------------------------------
# One line of each text format: its (prefix, asn) rows, or _Unreadable
# ------------------------------------------------------------------------------------------------

Rows = list[tuple[str, int]]


def _pfx2as_line(fields: list[str]) -> Rows:
    if len(fields) != 3:
        raise _Unreadable("not 3 tab-separated fields")
    address, length, origins = fields
    if "/" in address:
        raise _Unreadable("bad address")
    prefix = _cidr(address, length)
    # `a_b`: several origins (MOAS); `a,b`: an AS set, alone or inside one of them. Each ASN once.
    asns = dict.fromkeys(_origin(asn) for group in origins.split("_") for asn in group.split(","))
    return [] if prefix is None else [(prefix, asn) for asn in asns]


def _ipasn_line(fields: list[str]) -> Rows:
    if len(fields) != 2:
        raise _Unreadable("not 2 tab-separated fields")
    network, origin = fields
    address, slash, length = network.partition("/")
    if not slash:
        raise _Unreadable("prefix without /length")
    prefix = _cidr(address, length)
    asn = _origin(origin)
    return [] if prefix is None else [(prefix, asn)]


def _iptoasn_line(fields: list[str]) -> Rows:
    if len(fields) != 5:
        raise _Unreadable("not 5 tab-separated fields")
    asn = _asn(fields[2])
    first, last = _address(fields[0]), _address(fields[1])
    if first.version != last.version:
        raise _Unreadable("range ends of different families")
    if int(first) > int(last):
        raise _Unreadable("range ends before it starts")
    if asn == 0:  # iptoasn: "Not routed"
        return []
    networks = ipaddress.summarize_address_range(first, last)
    return [(str(net), asn) for net in networks if net.prefixlen]


_LINE_PARSERS: dict[str, Callable[[list[str]], Rows]] = {
    "pfx2as": _pfx2as_line, "ipasn": _ipasn_line, "iptoasn": _iptoasn_line}
_COMMENT = {"ipasn": b";"}


def _lines(stream: Stream) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line, whole) for each line; an overlong line is cut to its head (whole is
    False) and the rest of it skipped, so no line is ever held whole in memory."""
    line_no = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        line_no += 1
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield line_no, raw, True
            continue
        rest = raw
        while rest and not rest.endswith(b"\n"):
            rest = stream.readline(MAX_LINE_BYTES)
        yield line_no, raw, False


def parse_lines(fmt: str, stream: Stream) -> Iterator[PrefixOrigin | Reject]:
    """The rows and rejects of a text-format table (`pfx2as`, `ipasn`, `iptoasn`), in line order."""
    parse = _LINE_PARSERS[fmt]
    comment = _COMMENT.get(fmt)
    for line_no, raw, whole in _lines(stream):
        if not whole:
            yield Reject(line_no, f"line longer than {MAX_LINE_BYTES:,} bytes", excerpt(raw))
            continue
        line = raw.strip()  # ASCII whitespace only (bytes), unlike str.strip()
        if not line or (comment and line.startswith(comment)):
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield Reject(line_no, "not UTF-8", excerpt(raw))
            continue
        try:
            rows = parse(text.split("\t"))
        except _Unreadable as exc:
            yield Reject(line_no, exc.reason, excerpt(raw))
            continue
        for prefix, asn in rows:
            yield PrefixOrigin(line_no, prefix, asn)


# ------------------------------------------------------------------------------------------------
# MRT RIB dumps, through pyasn (optional)
# ------------------------------------------------------------------------------------------------

_MRT_HEADER = struct.Struct(">IHHI")  # timestamp, type, subtype, length (RFC 6396 section 2)
_TABLE_DUMP, _TABLE_DUMP_V2 = 12, 13
_TD1_SUBTYPES = (1, 2)  # AFI_IPv4, AFI_IPv6
_TD2_PEER_INDEX, _TD2_RIB_SUBTYPES = 1, (2, 4)  # PEER_INDEX_TABLE; RIB_IPV4_UNICAST, RIB_IPV6_UNICAST
_MRT_MAX_RECORD = 1 << 24  # a RIB record is at most a few hundred KB; a larger length is damage


def pyasn_available() -> bool:
    try:
        import pyasn.mrtx  # noqa: F401
    except ImportError:
        return False
    return True


def _entry_origins(entry: Any) -> set[int]:
    """The origins pyasn finds in one RIB entry's AS_PATH: the last AS of the last sequence, or
    every AS of a final AS set, private and reserved ASNs skipped. An entry pyasn cannot read
    (no AS_PATH, an empty one: a route of the collector itself) gives none."""
    from pyasn import mrtx

    try:
        for attr in entry.attrs:  # parsed when read
            if attr.bgp_type == mrtx.BgpAttribute.ATTR_AS_PATH:
                origin = attr.path_detail().get_origin_as()
                return {int(a) for a in origin} if isinstance(origin, set) else {int(origin)}
    except Exception:  # pyasn asserts and unpacks as it parses
        pass
    return set()


def parse_mrt(stream: Stream) -> Iterator[PrefixOrigin | Reject]:
    """The rows and rejects of an MRT RIB dump (TABLE_DUMP and TABLE_DUMP_V2), one record at a
    time. Every origin any peer saw for a prefix is a row (pyasn's own converter keeps the first
    peer's only). A record that cannot be framed ends the file: RoutingFileError."""
    from pyasn import mrtx

    record_no = 0
    while header := stream.read(_MRT_HEADER.size):
        record_no += 1
        if len(header) < _MRT_HEADER.size:
            raise RoutingFileError(f"MRT record {record_no:,} is cut short (the file ends inside its header)")
        _, kind, subtype, length = _MRT_HEADER.unpack(header)
        if length > _MRT_MAX_RECORD:
            raise RoutingFileError(f"MRT record {record_no:,} claims {length:,} bytes: not an MRT file, or damaged")
        body = stream.read(length)
        if len(body) < length:
            raise RoutingFileError(f"MRT record {record_no:,} is cut short (the file ends inside it)")
        if kind == _TABLE_DUMP_V2 and subtype == _TD2_PEER_INDEX:
            continue
        if not ((kind == _TABLE_DUMP and subtype in _TD1_SUBTYPES)
                or (kind == _TABLE_DUMP_V2 and subtype in _TD2_RIB_SUBTYPES)):
            yield Reject(record_no, "not a unicast RIB record", f"MRT type {kind} subtype {subtype}")
            continue
        try:
            if kind == _TABLE_DUMP:
                detail = mrtx.MrtTD1Record(body, subtype, optimize_parse=True)
                origins = _entry_origins(detail)
            else:
                detail = mrtx.MrtTD2Record(body, subtype, optimize_parse=False)
                origins = set().union(*(_entry_origins(entry) for entry in detail.entries))
            address, _, length_text = detail.prefix.partition("/")
        except Exception:  # pyasn asserts and unpacks as it parses: the record is damaged
            yield Reject(record_no, "damaged RIB record", excerpt(body[:64].hex().encode()))
            continue
        try:
            prefix = _cidr(address, length_text)
        except _Unreadable as exc:
            yield Reject(record_no, exc.reason, excerpt(detail.prefix.encode()))
            continue
        origins.discard(0)
        if not origins:
            yield Reject(record_no, "no origin AS in any RIB entry", excerpt(detail.prefix.encode()))
            continue
        if prefix is not None:
            for asn in sorted(origins):
                yield PrefixOrigin(record_no, prefix, asn)


# ------------------------------------------------------------------------------------------------
# Files: format, date, dataset
# ------------------------------------------------------------------------------------------------

_COMPRESSED = re.compile(r"\.(gz|bz2)$")
# (format, pattern on the lower-cased name without .gz/.bz2, default dataset from the match)
_NAMES: tuple[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    # rv2 (IPv4) and rv6 (IPv6) are separate files of the same day: separate datasets, or the
    # second would be "already loaded".
    ("pfx2as", re.compile(r"^routeviews-(rv[26])-.*\.pfx2as$"), lambda m: f"routeviews_{m.group(1)}"),
    ("pfx2as", re.compile(r"\.pfx2as$"), lambda m: "routeviews"),
    ("ipasn", re.compile(r"^ipasn.*\.dat$"), lambda m: "pyasn"),
    ("iptoasn", re.compile(r"^ip2asn-(v4|v6)(?![a-z0-9]).*\.tsv$"), lambda m: f"iptoasn_{m.group(1)}"),
    ("iptoasn", re.compile(r"^ip2asn.*\.tsv$"), lambda m: "iptoasn"),
    ("mrt", re.compile(r"^(rib|bview)\.\d{8}\.\d{4}(\.mrt)?$"), lambda m: "mrt"),
)
_DEFAULT_DATASET = {"pfx2as": "routeviews", "ipasn": "pyasn", "iptoasn": "iptoasn", "mrt": "mrt"}
_DATE_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d\d)-?(\d\d)-?(\d\d)(?!\d)")


def date_from_name(name: str) -> date | None:
    """The first real date written YYYYMMDD (or YYYY-MM-DD) in a file name."""
    for match in _DATE_IN_NAME.finditer(name):
        try:
            return date(*(int(g) for g in match.groups()))
        except ValueError:
            continue
    return None


def _open(path: Path) -> io.BufferedIOBase | BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".bz2"):
        return bz2.open(path, "rb")
    return path.open("rb", buffering=1 << 20)


_READ_ERRORS = (OSError, EOFError, zlib.error)  # damaged or cut .gz / .bz2, I/O errors


def _head(path: Path) -> bytes:
    try:
        with _open(path) as stream:
            return stream.read(SNIFF_BYTES)
    except _READ_ERRORS as exc:
        raise RoutingInputError(f"{path}: cannot be read: {_one_line(exc)}") from None


def _format_from_content(head: bytes) -> str | None:
    if len(head) >= _MRT_HEADER.size:
        _, kind, subtype, length = _MRT_HEADER.unpack_from(head)
        if (kind, subtype) in ((_TABLE_DUMP_V2, _TD2_PEER_INDEX), (_TABLE_DUMP, 1), (_TABLE_DUMP, 2)) \
                and length <= _MRT_MAX_RECORD:
            return "mrt"
    for raw in head.splitlines()[:-1] or head.splitlines():  # the last line may be cut
        line = raw.strip()
        if not line:
            continue
        if line.startswith(b";"):
            return "ipasn"
        for fmt in ("pfx2as", "ipasn", "iptoasn"):
            try:
                _LINE_PARSERS[fmt](line.decode("utf-8").split("\t"))
            except (_Unreadable, UnicodeDecodeError):
                continue
            return fmt
        return None
    return None


def describe(path: Path, *, fmt: str | None = None, taken_on: date | None = None,
             dataset: str | None = None) -> SnapshotFile:
    """What `path` is as a routing snapshot: its format (`fmt`, else from its name, else from its
    first data line), its date (`taken_on`, else from its name) and its dataset (`dataset`, else
    from its name and format). Reads the head of the file, so an unreadable one is found now.
    Raises RoutingInputError."""
    if path.is_dir():
        raise RoutingInputError(f"{path}: is a folder; name the files (e.g. {path}/*.pfx2as.gz)")
    if not path.is_file():
        raise RoutingInputError(f"{path}: no such file")
    base = _COMPRESSED.sub("", path.name.lower())
    if base.startswith("updates."):
        raise RoutingInputError(f"{path}: MRT update files hold changes, not a table: load a RIB dump (rib.*)")
    head = _head(path)
    named = next(((f, default(m)) for f, pattern, default in _NAMES if (m := pattern.search(base))), None)
    if fmt is None:
        fmt = named[0] if named else _format_from_content(head)
        if fmt is None:
            raise RoutingInputError(f"{path}: cannot tell its format from its name or its first line; "
                                    f"give it with --format ({', '.join(FORMATS)})")
    if fmt not in FORMATS:
        raise RoutingInputError(f"{path}: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "mrt" and not pyasn_available():
        raise RoutingInputError(f"{path}: MRT RIB dumps are read with pyasn, which is not installed: "
                                "pip install 'ipintel[mrt]'")
    day = taken_on or date_from_name(path.name)
    if day is None:
        raise RoutingInputError(f"{path}: no date in the file name (YYYYMMDD); give it with --date YYYY-MM-DD")
    if dataset is None:
        dataset = named[1] if named and named[0] == fmt else _DEFAULT_DATASET[fmt]
    return SnapshotFile(path, fmt, dataset, day)


def read(snapshot: SnapshotFile) -> Iterator[PrefixOrigin | Reject]:
    """The rows and rejects of a snapshot file, streamed. RoutingFileError when the file cannot
    be read to its end (cut or damaged compression, I/O error)."""
    try:
        with _open(snapshot.path) as stream:
            if snapshot.format == "mrt":
                yield from parse_mrt(stream)
            else:
                yield from parse_lines(snapshot.format, stream)
    except _READ_ERRORS as exc:
        raise RoutingFileError(f"cannot be read to its end: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ------------------------------------------------------------------------------------------------
# Loading: one file, one batch, one transaction
# ------------------------------------------------------------------------------------------------


def load(conn: psycopg.Connection[Any], snapshot: SnapshotFile) -> LoadResult:
    """Load one snapshot file through staging and ipintel.load_routing_snapshot(), in one
    transaction of `conn` (autocommit: the transaction is opened here); a snapshot of that
    dataset and date already loaded is skipped before the file is read. Raises RoutingFileError
    (rolled back) for a file that cannot be read to its end, has no row, or too many rejects."""
    started = time.monotonic()
    try:
        sha256, found = dated_files.already_loaded(conn, snapshot.path, db.query("routing_snapshot_loaded"), {
            "dataset": snapshot.dataset, "taken_on": snapshot.taken_on})
    except OSError as exc:
        raise RoutingFileError(f"cannot be read: {_one_line(exc)}") from None
    if found is not None:
        return LoadResult(snapshot=snapshot, snapshot_id=found.number, loaded=False, prefixes=0, origins_opened=0,
                          origins_closed=0, rejects=0, seconds=time.monotonic() - started, already=found)

    def work() -> tuple[dict[str, Any], list[Reject]]:
        batch = db.query_one(conn, db.query("next_batch_id"))
        assert batch is not None
        rows = 0
        rejects: list[Reject] = []
        with conn.cursor() as cur:
            with cur.copy(db.query("copy_routing_prefixes")) as copy:
                for item in read(snapshot):
                    if type(item) is PrefixOrigin:
                        copy.write_row((batch["id"], item.prefix, item.asn))
                        rows += 1
                    else:
                        rejects.append(item)  # type: ignore[arg-type]  # the other kind
                        if len(rejects) > MAX_REJECTS:
                            raise RoutingFileError(
                                f"more than {MAX_REJECTS:,} lines rejected (line {rejects[0].line_no}: "
                                f"{rejects[0].reason}): not a {snapshot.format} file? nothing loaded from it")
            if not rows:
                raise RoutingFileError(f"no prefix could be read ({len(rejects):,} lines rejected): "
                                       "nothing loaded from it")
            if rejects:
                with cur.copy(db.query("copy_routing_rejects")) as copy:
                    for r in rejects:
                        copy.write_row((batch["id"], r.line_no, r.reason, r.excerpt))
        result = db.query_one(conn, db.query("load_routing_snapshot"), {
            "dataset": snapshot.dataset, "taken_on": snapshot.taken_on, "file": str(snapshot.path),
            "batch": batch["id"], "sha256": sha256})
        assert result is not None
        return result, rejects

    # After a deadlock or serialization failure the whole file is read and loaded again.
    result, rejects = db.in_transaction_with_retry(conn, work)
    return LoadResult(
        snapshot=snapshot, snapshot_id=int(result["snapshot_id"]), loaded=bool(result["loaded"]),
        prefixes=int(result["prefixes"]), origins_opened=int(result["origins_opened"]),
        origins_closed=int(result["origins_closed"]), rejects=int(result["rejects"]),
        seconds=time.monotonic() - started, first_rejects=rejects[:REJECTS_KEPT])


def demo_snapshots() -> list[SnapshotFile]:
    """The synthetic routing set shipped for `ipintel demo` (see demo_routing/README.md), oldest
    first, as the dataset DEMO_DATASET."""
    folder = importlib.resources.files("ipintel").joinpath(DEMO_FOLDER)
    if not isinstance(folder, Path) or not folder.is_dir():
        raise RoutingInputError(f"this ipintel is incomplete: its package has no {DEMO_FOLDER} folder; "
                                "reinstall ipintel")
    return [describe(path, dataset=DEMO_DATASET) for path in sorted(folder.glob("*.pfx2as.gz"))]
