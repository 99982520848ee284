"""`ipintel geo load` / `ipintel geo builds`: dated builds of the offline geolocation files (MaxMind
GeoLite2 / GeoIP2, IPinfo Lite, DB-IP Lite .mmdb) → staging (COPY) → ipintel.load_geo_build() →
ipintel.geo_countries and ipintel.geo_asns, so a session older than ipintel's own observations
gets the country (and ASN) of the build of its own time.

A build is a file, known by its metadata: its database type says its source and edition
(geolite2_country, geolite2_asn, ipinfo_lite, dbip_city_lite, dbip_asn_lite, ...), its
build_epoch its day. Files are named, or found in folders: each folder's *.mmdb and those of its
subfolders (MaxMind's dated `GeoLite2-City_YYYYMMDD/` layout); no path at all means the GeoIP
folders (IPINTEL_GEOIP_DIR, else geoipupdate's). Every file is opened and checked before the
first one loads. A build whose edition and day are loaded is skipped before it is read.

Each file is read network by network, never whole (maxminddb's iterator); neighbouring networks
with the same country (or AS) become one range, so a City file's millions of networks are a few
hundred thousand country ranges. The ranges are COPYed into ipintel_staging.geo_ranges and
merged in one transaction per file. Licences: DB-IP Lite (CC BY 4.0) and IPinfo Lite (CC BY-SA
4.0) builds may be kept; MaxMind's GeoLite2 EULA asks that outdated copies be deleted, so keep
GeoLite2 builds only as your licence allows (docs/operations.md, "Rotating GeoIP and routing files").
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import maxminddb
import psycopg

from ipintel import dated_files, db
from ipintel.sources import dbip, ipinfo, maxmind, mmdb

__all__ = ["BuildFile", "Edition", "GeoFileError", "GeoInputError", "GeoLoadResult", "describe", "edition_of", "find",
           "load", "read"]

MAX_ASN = 4_294_967_295
_COUNTRY = re.compile(r"[A-Z]{2}")
_NOT_A_NAME = re.compile(r"[^a-z0-9]+")


class GeoInputError(mmdb.OfflineDatabaseError):
    """A file that cannot be loaded as given (missing, not an .mmdb, not an edition ipintel
    keeps): found before anything is loaded; the CLI says it in one line and exits 2."""


class GeoFileError(Exception):
    """A file that failed while it was read (damaged, no data): its transaction is rolled back,
    the other files still load; the CLI exits 1."""


Facts = Callable[[dict[str, Any]], tuple[str | None, int | None]]


@dataclass(frozen=True)
class Edition:
    """A kind of file whose builds are kept: its source (the registry's name), its name in
    ipintel.geo_editions, and how a record of it says its country and AS number."""

    source: str
    name: str
    facts: Facts


def edition_of(database_type: str) -> Edition | None:
    """The edition a file's database type says it is; None: not a geolocation file ipintel keeps.
    IPinfo and DB-IP first: DB-IP's ASN file calls itself GeoLite2-ASN compatible."""
    if ipinfo.EDITION.accepts(database_type):
        return Edition("ipinfo", "ipinfo_lite", ipinfo.build_facts)
    for name, edition in (("dbip_city_lite", dbip.LOCATION_EDITIONS[0]), ("dbip_country_lite", dbip.LOCATION_EDITIONS[1]),
                          ("dbip_asn_lite", dbip.ASN_EDITION)):
        if edition.accepts(database_type):
            return Edition("dbip", name, mmdb.geolite2_facts)
    if maxmind.Kind.of(database_type) is not None:  # GeoLite2-City, GeoIP2-Country, GeoLite2-ASN, GeoIP2-ISP...
        name = _NOT_A_NAME.sub("_", database_type.lower()).strip("_")
        if re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
            return Edition("maxmind", name, mmdb.geolite2_facts)
    return None


@dataclass(frozen=True)
class BuildFile:
    """A geolocation file and what it is: its edition, its database type and its build time."""

    path: Path
    edition: Edition
    database_type: str
    build_epoch: int

    @property
    def built_on(self) -> date:
        return datetime.fromtimestamp(self.build_epoch, UTC).date()


@dataclass
class GeoLoadResult:
    build: BuildFile
    build_id: int
    loaded: bool  # False: that edition's build of that day was already loaded; nothing changed
    countries: int  # country ranges of the build
    asns: int  # ASN ranges of the build
    runs_opened: int
    runs_closed: int
    seconds: float
    already: dated_files.AlreadyLoaded | None = None  # skipped before reading: loaded from which file

    @property
    def what(self) -> str:
        return f"{self.build.path}: {self.build.edition.name} {self.build.built_on:%Y-%m-%d}"

    @property
    def recorded(self) -> str:
        return f"build {self.build_id}"


def describe(path: Path) -> BuildFile:
    """What `path` is as a build: opens it and reads its metadata. Raises GeoInputError."""
    if not path.is_file():
        raise GeoInputError(f"{path}: no such file")
    try:
        with maxminddb.open_database(str(path)) as reader:
            meta = reader.metadata()
    except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
        raise GeoInputError(f"{path}: not a readable .mmdb file: {_one_line(exc)}") from None
    edition = edition_of(str(meta.database_type))
    if edition is None:
        raise GeoInputError(f"{path}: a {meta.database_type!r} database is not a geolocation build ipintel keeps "
                            "(MaxMind City, Country, ASN or ISP; IPinfo Lite; DB-IP Lite City, Country or ASN)")
    epoch = mmdb.checked_build_epoch(path, int(meta.build_epoch), "not a real build", GeoInputError)
    return BuildFile(path, edition, str(meta.database_type), epoch)


def find(paths: Sequence[Path], geoip_dir: str | None,
         system_dirs: Sequence[str] = mmdb.SYSTEM_GEOIP_DIRS) -> tuple[list[BuildFile], list[tuple[Path, str]]]:
    """The builds to load (by edition, oldest first), and the files found in folders that are not builds
    ipintel keeps (path, why). A named file must be a build (GeoInputError); a named folder,
    or with no path the GeoIP folders, gives its *.mmdb and its subfolders' (the GeoIP folders
    that do not exist are passed over)."""
    named: list[Path] = []
    found: list[Path] = []
    if paths:
        for path in paths:
            if path.is_dir():
                found += _mmdb_files(path)
            else:
                named.append(path)
    else:
        try:
            folders = mmdb.geoip_folders(geoip_dir, system_dirs)
        except mmdb.OfflineDatabaseError as exc:
            raise GeoInputError(str(exc)) from None
        found = [f for folder in folders if folder.is_dir() for f in _mmdb_files(folder)]
    builds = [describe(path) for path in named]
    passed_over: list[tuple[Path, str]] = []
    for path in found:
        try:
            builds.append(describe(path))
        except GeoInputError as exc:
            passed_over.append((path, str(exc).removeprefix(f"{path}: ")))
    return sorted(builds, key=lambda b: (b.edition.name, b.build_epoch, str(b.path))), passed_over


def _mmdb_files(folder: Path) -> list[Path]:
    return sorted(p for pattern in ("*.mmdb", "*/*.mmdb") for p in folder.glob(pattern) if p.is_file())


# ------------------------------------------------------------------------------------------------
# Reading a build: ranges of one country, ranges of one AS
# ------------------------------------------------------------------------------------------------


def _address(version: int, value: int) -> str:
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


class _Ranges:
    """Joins consecutive networks (in address order, as the file's tree gives them) that have the
    same value into one range: (first address, last address, value)."""

    def __init__(self) -> None:
        self.value: Any = None
        self.version = self.first = self.last = 0

    def push(self, version: int, first: int, last: int, value: Any) -> tuple[str, str, Any] | None:
        """Add a network; the range it ends, if any."""
        if value is not None and value == self.value and version == self.version and first == self.last + 1:
            self.last = last
            return None
        done = self.flush()
        if value is not None:
            self.value, self.version, self.first, self.last = value, version, first, last
        return done

    def flush(self) -> tuple[str, str, Any] | None:
        if self.value is None:
            return None
        done = (_address(self.version, self.first), _address(self.version, self.last), self.value)
        self.value = None
        return done


def read(build: BuildFile) -> Iterator[tuple[str, str, str | None, int | None]]:
    """The staged rows of a build, streamed: (first, last, country, None) for its country ranges
    and (first, last, None, asn) for its ASN ranges. A country that is not an ISO code, or an AS number
    out of range, is no value. GeoFileError when the file cannot be read to its end or changed
    since it was described."""
    facts = build.edition.facts
    countries, asns = _Ranges(), _Ranges()
    try:
        with maxminddb.open_database(str(build.path)) as reader:
            meta = reader.metadata()
            if (meta.database_type, meta.build_epoch) != (build.database_type, build.build_epoch):
                raise GeoFileError(f"changed since it was found (now {meta.database_type!r} built at epoch "
                                   f"{meta.build_epoch}); run again")
            for network, record in reader:
                country, asn = facts(record) if isinstance(record, dict) else (None, None)
                first = int(network.network_address)
                last = first + network.num_addresses - 1
                if country is not None and not _COUNTRY.fullmatch(country):
                    country = None
                if asn is not None and not 0 <= asn <= MAX_ASN:
                    asn = None
                if (done := countries.push(network.version, first, last, country)) is not None:
                    yield done[0], done[1], done[2], None
                if (done := asns.push(network.version, first, last, asn)) is not None:
                    yield done[0], done[1], None, done[2]
    except mmdb.CORRUPT_RECORD_ERRORS as exc:
        raise GeoFileError(f"cannot be read to its end: {_one_line(exc)}") from None
    except OSError as exc:
        raise GeoFileError(f"cannot be read: {_one_line(exc)}") from None
    if (done := countries.flush()) is not None:
        yield done[0], done[1], done[2], None
    if (done := asns.flush()) is not None:
        yield done[0], done[1], None, done[2]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ------------------------------------------------------------------------------------------------
# Loading: one file, one batch, one transaction
# ------------------------------------------------------------------------------------------------


def load(conn: psycopg.Connection[Any], build: BuildFile) -> GeoLoadResult:
    """Load one build through staging and ipintel.load_geo_build(), in one transaction of `conn`
    (autocommit: the transaction is opened here); a build of that edition and day already loaded
    is skipped before the file is read. Raises GeoFileError (rolled back)."""
    started = time.monotonic()
    try:
        sha256, found = dated_files.already_loaded(conn, build.path, db.query("geo_build_loaded"), {
            "edition": build.edition.name, "built_on": build.built_on})
    except OSError as exc:
        raise GeoFileError(f"cannot be read: {_one_line(exc)}") from None
    if found is not None:
        return GeoLoadResult(build=build, build_id=found.number, loaded=False, countries=0, asns=0, runs_opened=0,
                             runs_closed=0, seconds=time.monotonic() - started, already=found)

    def work() -> dict[str, Any]:
        batch = db.query_one(conn, db.query("next_batch_id"))
        assert batch is not None
        rows = 0
        with conn.cursor() as cur, cur.copy(db.query("copy_geo_ranges")) as copy:
            for row in read(build):
                copy.write_row((batch["id"], *row))
                rows += 1
        if not rows:
            raise GeoFileError("no network with a country or an AS number: nothing loaded from it")
        result = db.query_one(conn, db.query("load_geo_build"), {
            "edition": build.edition.name, "source": build.edition.source, "build_epoch": build.build_epoch,
            "database_type": build.database_type, "file": str(build.path), "sha256": sha256, "batch": batch["id"]})
        assert result is not None
        return result

    # After a deadlock or serialization failure the whole file is read and loaded again.
    result = db.in_transaction_with_retry(conn, work)
    return GeoLoadResult(build=build, build_id=int(result["build_id"]), loaded=bool(result["loaded"]),
                         countries=int(result["countries"]), asns=int(result["asns"]),
                         runs_opened=int(result["runs_opened"]), runs_closed=int(result["runs_closed"]),
                         seconds=time.monotonic() - started)
