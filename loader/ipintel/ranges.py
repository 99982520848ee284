"""`ipintel ranges load` / `ipintel ranges fetch`: the address ranges cloud and CDN providers
publish, the Tor exit lists and the curated hosting-ASN list, as dated snapshots
→ staging (COPY) → ipintel.load_range_snapshot() → ipintel.listed_ranges / listed_asns; then
ipintel.classify_inventory() brings ip_inventory.ip_type up to date.

Kinds (one range list each, `ipintel.range_lists`), with the fields read:
- `aws`: AWS `ip-ranges.json`: `prefixes[].ip_prefix`, `ipv6_prefixes[].ipv6_prefix`, `service`,
  `region`; dated by `createDate`. The service AMAZON (every AWS range, including those listed
  again under a specific service) is stored as no service.
- `gcp`: Google Cloud `cloud.json`: `prefixes[].ipv4Prefix | ipv6Prefix`, `service`, `scope` (the
  region); dated by `creationTime`. Google's goog.json (all of Google, not its cloud) is refused.
- `azure`: Azure Service Tags `ServiceTags_Public_YYYYMMDD.json`: `values[].properties.
  addressPrefixes`, `systemService`, `region`; dated by the file name.
- `oracle`: Oracle Cloud `public_ip_ranges.json`: `regions[].region`, `regions[].cidrs[].cidr`,
  `tags` (the service); dated by `last_updated_timestamp`.
- `digitalocean`: DigitalOcean's geofeed `geo/google.csv` (RFC 8805: prefix, country, region,
  city, postal code); the region is the ISO 3166-2 region, else the country.
- `cloudflare_ipv4`, `cloudflare_ipv6`: Cloudflare's `ips-v4` / `ips-v6`, one range per line.
- `tor_bulk_exit_list`: Tor's `torbulkexitlist`, one exit address per line.
- `tor_exit_addresses`: Tor's `exit-addresses` (ExitNode / Published / LastStatus / ExitAddress
  lines); dated by its latest time.
- `hosting_asns`: `asn,name,source` rows (ipintel_ranges_data/hosting_asns.csv is the curated one
  ipintel ships); dated by a `# as of YYYY-MM-DD` line.

The kind is recognised from the content (the JSON lists, exit-addresses, the hosting list), else
from the name the publisher gives the file (ips-v4, ips-v6, torbulkexitlist, google.csv), else
given with --kind. The date: --date, else the file's own, else a YYYYMMDD in its name. A file is
read whole and checked before anything is loaded: one that is not what its kind says (bad JSON,
a field missing, a range that is not one, no entry at all) is refused in one line naming the
file and what is wrong, and nothing of it is loaded (what earlier loads stored stays).
"""

from __future__ import annotations

import csv
import importlib.resources
import ipaddress
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import psycopg

from ipintel import db
from ipintel.routing import date_from_name, excerpt

__all__ = ["CURATED_HOSTING_ASNS", "FETCH_URLS", "KINDS", "Classified", "Fetched", "ListFile", "ListedAsn", "LoadResult", "Range", "RangesFileError",
           "RangesInputError", "classify", "curated_hosting_asns", "describe", "fetch", "load", "parse"]

KINDS = ("aws", "gcp", "azure", "oracle", "digitalocean", "cloudflare_ipv4", "cloudflare_ipv6",
         "tor_bulk_exit_list", "tor_exit_addresses", "hosting_asns")
MAX_FILE_BYTES = 256 * 1024 * 1024  # Azure's Service Tags, the largest, are a few MB
CURATED_HOSTING_ASNS = "ranges_data/hosting_asns.csv"  # package data
_TEXT_MAX = 200  # characters of a field kept in the database (a service or region name is short)


class RangesInputError(Exception):
    """A file that cannot be taken as given (missing, a folder, its kind or date unknown): found
    before anything is loaded; the CLI says it in one line and exits 2."""


class RangesFileError(Exception):
    """A file that is not what its kind says (malformed): refused whole, before anything of it is
    loaded; the CLI says it in one line, loads the other files and exits 1."""


class Range(NamedTuple):
    """One entry of a range list: a normalised CIDR, with the service and region it names ('': none)."""

    prefix: str
    service: str
    region: str


class ListedAsn(NamedTuple):
    """One entry of an ASN list (the hosting-ASN list)."""

    asn: int
    name: str
    source: str


Entries = list[Range] | list[ListedAsn]


@dataclass(frozen=True)
class ListFile:
    """A range-list file read and checked: its kind (= the list it is a snapshot of), its day and
    its distinct entries."""

    path: Path
    kind: str
    taken_on: date
    entries: tuple[Range, ...] | tuple[ListedAsn, ...]


@dataclass
class LoadResult:
    file: ListFile
    snapshot_id: int
    loaded: bool  # False: this list's snapshot of that day was already loaded; nothing changed
    entries: int
    opened: int
    closed: int
    seconds: float


class _Bad(Exception):
    """Raised by a parser: the file is malformed; the message says where and what."""


# ------------------------------------------------------------------------------------------------
# Fields
# ------------------------------------------------------------------------------------------------


def _shown(value: object) -> str:
    """A value of the file, quoted safely for a one-line message."""
    text = value if isinstance(value, str) else json.dumps(value)[:_TEXT_MAX * 2]
    return repr(excerpt(text.encode("utf-8", "backslashreplace")))


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _network(value: object, where: str, version: int | None = None) -> str:
    """A published range as a normalised CIDR; host bits set, a /0, IPv4-mapped IPv6 or the wrong
    family are malformed."""
    if not isinstance(value, str) or not value.isascii() or "%" in value or value != value.strip():
        raise _Bad(f"{where}: not a network: {_shown(value)}")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        reason = "host bits set" if "host bits" in str(exc) else "not a network"
        raise _Bad(f"{where}: {reason}: {_shown(value)}") from None
    if network.prefixlen == 0:
        raise _Bad(f"{where}: a range of the whole address space: {_shown(value)}")
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        raise _Bad(f"{where}: IPv4-mapped IPv6: {_shown(value)}")
    if version is not None and network.version != version:
        raise _Bad(f"{where}: an IPv{network.version} range in a list of IPv{version} ranges: {_shown(value)}")
    return str(network)


def _address(value: str, where: str) -> str:
    """An exit address as a host range (/32 or /128)."""
    if not value.isascii() or "%" in value:
        raise _Bad(f"{where}: not an IP address: {_shown(value)}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _Bad(f"{where}: not an IP address: {_shown(value)}") from None
    if isinstance(address, ipaddress.IPv6Address) and address in _MAPPED:
        raise _Bad(f"{where}: IPv4-mapped IPv6: {_shown(value)}")
    return str(ipaddress.ip_network(address))


def _text(value: object, where: str, *, required: bool = False) -> str:
    """A name field (service, region): a string, '' when absent (unless required)."""
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Bad(f"{where}: not a name: {_shown(value)}")
    if len(value) > _TEXT_MAX or not value.isprintable():
        raise _Bad(f"{where}: not a name (too long, or control characters): {_shown(value)}")
    return value.strip()


def _list(doc: dict[str, Any], key: str, where: str = "") -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise _Bad(f"{where}{key}: missing or not a list")
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{where}: not an object")
    return value


def _day(value: object, where: str) -> date | None:
    """The day a timestamp field starts with (YYYY-MM-DD...); None when the field is absent."""
    if value is None:
        return None
    match = re.match(r"(\d{4})-(\d{2})-(\d{2})(?!\d)", value) if isinstance(value, str) else None
    try:
        if match is None:
            raise ValueError
        return date(*(int(g) for g in match.groups()))
    except ValueError:
        raise _Bad(f"{where}: not a date: {_shown(value)}") from None


# ------------------------------------------------------------------------------------------------
# The parsers: text → (entries, the day the file says it was published, or None)
# ------------------------------------------------------------------------------------------------

Parsed = tuple[Entries, date | None]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Bad(f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None


def _aws(text: str) -> Parsed:
    doc = _object(_json(text), "the document")
    entries: list[Range] = []
    for key, field in (("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")):
        if key == "ipv6_prefixes" and key not in doc:
            continue
        for i, item in enumerate(_list(doc, key)):
            where = f"{key}[{i}]"
            entry = _object(item, where)
            service = _text(entry.get("service"), f"{where}.service", required=True)
            entries.append(Range(_network(entry.get(field), f"{where}.{field}"),
                                 # AMAZON is every AWS range, each listed again under its own service
                                 "" if service == "AMAZON" else service,
                                 _text(entry.get("region"), f"{where}.region")))
    # createDate: "2026-11-30-05-13-09"
    return entries, _day(doc.get("createDate"), "createDate")


def _gcp(text: str) -> Parsed:
    doc = _object(_json(text), "the document")
    entries: list[Range] = []
    scoped = False
    for i, item in enumerate(_list(doc, "prefixes")):
        where = f"prefixes[{i}]"
        entry = _object(item, where)
        field = "ipv4Prefix" if "ipv4Prefix" in entry else "ipv6Prefix"
        scoped = scoped or "scope" in entry
        entries.append(Range(_network(entry.get(field), f"{where}.{field}"),
                             _text(entry.get("service"), f"{where}.service"),
                             _text(entry.get("scope"), f"{where}.scope")))
    if entries and not scoped:
        raise _Bad("no prefix names a scope: Google's goog.json (all of Google), not Google Cloud's cloud.json")
    # creationTime: "2026-11-30T05:13:09.123456"
    return entries, _day(doc.get("creationTime"), "creationTime")


def _azure(text: str) -> Parsed:
    doc = _object(_json(text), "the document")
    entries: list[Range] = []
    for i, item in enumerate(_list(doc, "values")):
        where = f"values[{i}]"
        props = _object(_object(item, where).get("properties"), f"{where}.properties")
        service = _text(props.get("systemService"), f"{where}.properties.systemService")
        region = _text(props.get("region"), f"{where}.properties.region")
        for j, prefix in enumerate(_list(props, "addressPrefixes", f"{where}.properties.")):
            entries.append(Range(_network(prefix, f"{where}.properties.addressPrefixes[{j}]"), service, region))
    return entries, None


def _oracle(text: str) -> Parsed:
    doc = _object(_json(text), "the document")
    entries: list[Range] = []
    for i, item in enumerate(_list(doc, "regions")):
        where = f"regions[{i}]"
        region_doc = _object(item, where)
        region = _text(region_doc.get("region"), f"{where}.region", required=True)
        for j, cidr in enumerate(_list(region_doc, "cidrs", f"{where}.")):
            entry = _object(cidr, f"{where}.cidrs[{j}]")
            tags = entry.get("tags", [])
            if not isinstance(tags, list):
                raise _Bad(f"{where}.cidrs[{j}].tags: not a list")
            service = ",".join(sorted(_text(t, f"{where}.cidrs[{j}].tags", required=True) for t in tags))
            entries.append(Range(_network(entry.get("cidr"), f"{where}.cidrs[{j}].cidr"), service, region))
    # last_updated_timestamp: "2026-11-30T05:13:09.123456"
    return entries, _day(doc.get("last_updated_timestamp"), "last_updated_timestamp")


def _lines(text: str) -> Iterable[tuple[int, str]]:
    """(line number, line) of the lines that are neither blank nor # comments."""
    for line_no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield line_no, stripped


def _cloudflare(version: int) -> Callable[[str], Parsed]:
    def parse_list(text: str) -> Parsed:
        return [Range(_network(line, f"line {n}", version), "", "") for n, line in _lines(text)], None
    return parse_list


def _digitalocean(text: str) -> Parsed:
    entries: list[Range] = []
    for n, line in _lines(text):
        fields = next(csv.reader([line]))
        if not 1 <= len(fields) <= 5:
            raise _Bad(f"line {n}: not a geofeed row (prefix,country,region,city,postal code): {_shown(line)}")
        fields += [""] * (5 - len(fields))
        country, region = fields[1].strip(), fields[2].strip()
        entries.append(Range(_network(fields[0].strip(), f"line {n}"), "",
                             _text(region or country, f"line {n}: region")))
    return entries, None


def _tor_bulk(text: str) -> Parsed:
    return [Range(_address(line, f"line {n}"), "", "") for n, line in _lines(text)], None


_TOR_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def _tor_exit_addresses(text: str) -> Parsed:
    entries: list[Range] = []
    latest: date | None = None
    for n, line in _lines(text):
        keyword, _, rest = line.partition(" ")
        if keyword == "ExitNode":
            continue
        if keyword not in ("Published", "LastStatus", "ExitAddress"):
            raise _Bad(f"line {n}: not an exit-addresses line (ExitNode, Published, LastStatus, ExitAddress): "
                       f"{_shown(line)}")
        if keyword == "ExitAddress":
            address, _, rest = rest.partition(" ")
            entries.append(Range(_address(address, f"line {n}"), "", ""))
        if not _TOR_TIME.fullmatch(rest):
            raise _Bad(f"line {n}: {keyword} without a time (YYYY-MM-DD HH:MM:SS): {_shown(line)}")
        try:
            day = datetime.strptime(rest, "%Y-%m-%d %H:%M:%S").date()
        except ValueError:
            raise _Bad(f"line {n}: not a time: {_shown(rest)}") from None
        latest = day if latest is None else max(latest, day)
    return entries, latest


_AS_OF = re.compile(r"#\s*as of\s+(\d{4}-\d{2}-\d{2})\s*$", re.IGNORECASE)
_HOSTING_HEADER = ["asn", "name", "source"]


def _hosting_asns(text: str) -> Parsed:
    entries: list[ListedAsn] = []
    as_of: date | None = None
    header = False
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if (match := _AS_OF.match(stripped)) is not None:
            try:
                as_of = date.fromisoformat(match.group(1))
            except ValueError:
                raise _Bad(f"line {n}: not a date: {_shown(match.group(1))}") from None
            continue
        if not stripped or stripped.startswith("#"):
            continue
        fields = [f.strip() for f in next(csv.reader([stripped]))]
        if not header:
            if fields != _HOSTING_HEADER:
                raise _Bad(f"line {n}: the header must be asn,name,source, not {_shown(stripped)}")
            header = True
            continue
        if len(fields) != 3:
            raise _Bad(f"line {n}: not 3 fields (asn,name,source): {_shown(stripped)}")
        digits = fields[0].upper().removeprefix("AS")
        if not digits.isdigit() or not digits.isascii() or int(digits) > 4_294_967_295:
            raise _Bad(f"line {n}: not an AS number: {_shown(fields[0])}")
        if not re.match(r"https?://\S+$", fields[2]):
            raise _Bad(f"line {n}: the source must be an http(s) URL: {_shown(fields[2])}")
        entries.append(ListedAsn(int(digits), _text(fields[1], f"line {n}: name", required=True),
                                 _text(fields[2], f"line {n}: source", required=True)))
    if not header:
        raise _Bad("no header line asn,name,source")
    return entries, as_of


PARSERS: dict[str, Callable[[str], Parsed]] = {
    "aws": _aws, "gcp": _gcp, "azure": _azure, "oracle": _oracle, "digitalocean": _digitalocean,
    "cloudflare_ipv4": _cloudflare(4), "cloudflare_ipv6": _cloudflare(6), "tor_bulk_exit_list": _tor_bulk,
    "tor_exit_addresses": _tor_exit_addresses, "hosting_asns": _hosting_asns,
}


def parse(kind: str, text: str) -> tuple[list[Range] | list[ListedAsn], date | None]:
    """The distinct entries of a file of `kind` (in file order) and the day it says it was
    published. Raises RangesFileError (without the file's name) when it is malformed."""
    try:
        entries, day = PARSERS[kind](text)
    except _Bad as exc:
        raise RangesFileError(str(exc)) from None
    if not entries:
        raise RangesFileError("holds no entry: an empty list would close every range of the list")
    return list(dict.fromkeys(entries)), day  # type: ignore[return-value]  # one kind of entry per file


# ------------------------------------------------------------------------------------------------
# Files: kind and date
# ------------------------------------------------------------------------------------------------

# From the content: the JSON lists by their keys, the two text formats with a signature.
def _kind_from_content(text: str) -> str | None:
    head = text.lstrip()
    if head.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            return None
        if not isinstance(doc, dict):
            return None
        prefixes = doc.get("prefixes")
        first = prefixes[0] if isinstance(prefixes, list) and prefixes else {}
        if "syncToken" in doc and "createDate" in doc or (isinstance(first, dict) and "ip_prefix" in first):
            return "aws"
        if isinstance(first, dict) and ("ipv4Prefix" in first or "ipv6Prefix" in first):
            return "gcp"
        if isinstance(doc.get("values"), list) and ("cloud" in doc or "changeNumber" in doc):
            return "azure"
        if isinstance(doc.get("regions"), list) and "last_updated_timestamp" in doc:
            return "oracle"
        return None
    for _, line in _lines(text):
        if line.startswith("ExitNode "):
            return "tor_exit_addresses"
        if [f.strip() for f in line.split(",")] == _HOSTING_HEADER:
            return "hosting_asns"
        return None
    return None


# From the name the publisher gives the file (the plain lists say nothing of their publisher).
_NAMES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws", re.compile(r"ip-ranges.*\.json$")),
    ("azure", re.compile(r"servicetags.*\.json$")),
    ("oracle", re.compile(r"public_ip_ranges.*\.json$")),
    ("gcp", re.compile(r"^cloud.*\.json$")),
    ("cloudflare_ipv4", re.compile(r"^(cloudflare[-_])?ips-v4")),
    ("cloudflare_ipv6", re.compile(r"^(cloudflare[-_])?ips-v6")),
    ("digitalocean", re.compile(r"^google.*\.csv$|digitalocean")),
    ("tor_bulk_exit_list", re.compile(r"torbulkexitlist")),
    ("tor_exit_addresses", re.compile(r"exit-addresses")),
    ("hosting_asns", re.compile(r"hosting[-_]asns")),
)


def _kind_from_name(name: str) -> str | None:
    lower = name.lower()
    return next((kind for kind, pattern in _NAMES if pattern.search(lower)), None)


def _read(path: Path) -> str:
    if path.is_dir():
        raise RangesInputError(f"{path}: is a folder; name the files")
    if not path.is_file():
        raise RangesInputError(f"{path}: no such file")
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RangesInputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise RangesFileError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB: not a range list")
    try:
        return raw.decode("utf-8-sig")  # Azure's file starts with a byte-order mark
    except UnicodeDecodeError as exc:
        raise RangesFileError(f"not UTF-8 text (byte {exc.start:,})") from None


def describe(path: Path, *, kind: str | None = None, taken_on: date | None = None,
             default_day: date | None = None) -> ListFile:
    """`path` read whole and checked as a range list: its kind (`kind`, else from its content,
    else from its name), its entries, its day (`taken_on`, else the file's own, else a date in its
    name, else `default_day`). Raises RangesInputError (missing, kind or day unknown) or
    RangesFileError (malformed), whose message starts with the path."""
    try:
        text = _read(path)
    except RangesFileError as exc:
        raise RangesFileError(f"{path}: {exc}") from None
    if kind is None:
        kind = _kind_from_content(text) or _kind_from_name(path.name)
        if kind is None:
            raise RangesInputError(f"{path}: cannot tell which list it is from its content or its name; "
                                   f"give it with --kind ({', '.join(KINDS)})")
    if kind not in KINDS:
        raise RangesInputError(f"{path}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    try:
        entries, day = parse(kind, text)
    except RangesFileError as exc:
        raise RangesFileError(f"{path}: not a valid {kind} list: {exc}") from None
    day = taken_on or day or date_from_name(path.name) or default_day
    if day is None:
        raise RangesInputError(f"{path}: a {kind} list without a date in it or in its name (YYYYMMDD); "
                               "give it with --date YYYY-MM-DD")
    return ListFile(path, kind, day, tuple(entries))  # type: ignore[arg-type]  # one kind of entry


def curated_hosting_asns() -> Path:
    """The hosting-ASN list ipintel ships (package data)."""
    path = importlib.resources.files("ipintel").joinpath(CURATED_HOSTING_ASNS)
    if not isinstance(path, Path) or not path.is_file():
        raise RangesInputError(f"this ipintel is incomplete: its package has no {CURATED_HOSTING_ASNS}; "
                               "reinstall ipintel")
    return path


# ------------------------------------------------------------------------------------------------
# Loading: one file, one batch, one transaction
# ------------------------------------------------------------------------------------------------


def load(conn: psycopg.Connection[Any], listed: ListFile) -> LoadResult:
    """Load one checked file through staging and ipintel.load_range_snapshot(), in one transaction
    of `conn` (autocommit: the transaction is opened here)."""
    started = time.monotonic()
    copy_query = db.query("copy_listed_asns" if listed.kind == "hosting_asns" else "copy_listed_ranges")

    def work() -> dict[str, Any]:
        batch = db.query_one(conn, db.query("next_batch_id"))
        assert batch is not None
        with conn.cursor() as cur, cur.copy(copy_query) as copy:
            for entry in listed.entries:
                copy.write_row((batch["id"], *entry))
        result = db.query_one(conn, db.query("load_range_snapshot"), {
            "list": listed.kind, "taken_on": listed.taken_on, "file": str(listed.path), "batch": batch["id"]})
        assert result is not None
        return result

    # After a deadlock or serialization failure the file is loaded again.
    result = db.in_transaction_with_retry(conn, work)
    return LoadResult(file=listed, snapshot_id=int(result["snapshot_id"]), loaded=bool(result["loaded"]),
                      entries=int(result["entries"]), opened=int(result["opened"]), closed=int(result["closed"]),
                      seconds=time.monotonic() - started)


CLASSIFY_BATCH = 10_000  # IPs a classify_inventory() call locks and writes in one transaction


@dataclass
class Classified:
    ips: int
    changed: int
    seconds: float


def classify(conn: psycopg.Connection[Any], *, batch: int = CLASSIFY_BATCH) -> Classified:
    """Bring ip_inventory's class up to date after loads: ipintel.classify_inventory() one batch
    of IPs at a time in ip order, each batch its own transaction (`conn` in autocommit), so ingest
    and enrich go on meanwhile."""
    started = time.monotonic()
    after: str | None = None
    ips = changed = 0
    while True:
        row = db.query_one(conn, db.query("classify_inventory"), {"after": after, "limit": batch})
        assert row is not None
        if row["last_ip"] is None:
            return Classified(ips, changed, time.monotonic() - started)
        after = str(row["last_ip"])
        ips += int(row["classified"])
        changed += int(row["changed"])


def today() -> date:
    return datetime.now(UTC).date()



# ------------------------------------------------------------------------------------------------
# Fetching: the configured URLs → files in a folder → describe()
# ------------------------------------------------------------------------------------------------

# Where each list is published (IPINTEL_RANGES_<KIND>_URL overrides; `off` skips one). Azure's
# file has a new URL every week (the download page links ServiceTags_Public_YYYYMMDD.json), so it
# is fetched only once an operator sets its URL. The hosting-ASN list is not fetched: ipintel
# ships it (curated_hosting_asns()).
FETCH_URLS: dict[str, str | None] = {
    "aws": "https://ip-ranges.amazonaws.com/ip-ranges.json",
    "gcp": "https://www.gstatic.com/ipranges/cloud.json",
    "azure": None,
    "oracle": "https://docs.oracle.com/en-us/iaas/tools/public_ip_ranges.json",
    "digitalocean": "https://digitalocean.com/geo/google.csv",
    "cloudflare_ipv4": "https://www.cloudflare.com/ips-v4",
    "cloudflare_ipv6": "https://www.cloudflare.com/ips-v6",
    "tor_bulk_exit_list": "https://check.torproject.org/torbulkexitlist",
    "tor_exit_addresses": "https://check.torproject.org/exit-addresses",
}


class Fetched(NamedTuple):
    kind: str
    url: str
    file: ListFile | None  # None: failed (problem says why)
    problem: str | None


def _suffix(url: str) -> str:
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return Path(name).suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", Path(name).suffix) else ""


def fetch(urls: dict[str, str], folder: Path, *, timeout: float, day: date) -> list[Fetched]:
    """Download each list of `urls` (kind → URL) into `folder` as `<kind>-<YYYYMMDD><suffix>`, then
    read and check it (describe(): the file's own date, else `day`, the day it was fetched). One
    list that cannot be fetched or read does not stop the others: its Fetched says why."""
    import httpx

    from ipintel import __version__

    results: list[Fetched] = []
    headers = {"User-Agent": f"ipintel/{__version__} (range lists)"}
    with httpx.Client(timeout=timeout, follow_redirects=True, headers=headers) as client:
        for kind, url in urls.items():
            path = folder / f"{kind}-{day:%Y%m%d}{_suffix(url)}"
            try:
                with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise RangesFileError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
                    size = 0
                    with path.open("wb") as out:
                        for chunk in response.iter_bytes():
                            size += len(chunk)
                            if size > MAX_FILE_BYTES:
                                raise RangesFileError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
                            out.write(chunk)
                results.append(Fetched(kind, url, describe(path, kind=kind, default_day=day), None))
            except httpx.HTTPError as exc:
                results.append(Fetched(kind, url, None, " ".join(str(exc).split()) or type(exc).__name__))
            except (RangesFileError, RangesInputError) as exc:
                results.append(Fetched(kind, url, None, str(exc)))
            except OSError as exc:
                results.append(Fetched(kind, url, None, f"cannot write {path}: {exc.strerror or exc}"))
    return results
