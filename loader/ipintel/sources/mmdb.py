"""What the offline .mmdb sources share: where their files are, which build to read, and lookups.

MaxMind reads its files through geoip2 (sources/maxmind.py); IPinfo Lite and DB-IP Lite, whose
records are not MaxMind's, through maxminddb (sources/ipinfo.py, sources/dbip.py). All of them
are found in the same folders: IPINTEL_GEOIP_DIR, else the places geoipupdate writes to.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import maxminddb

# Where geoipupdate writes by default (Debian package, upstream build, /usr/local installs).
SYSTEM_GEOIP_DIRS: tuple[str, ...] = (
    "/usr/share/GeoIP",
    "/var/lib/GeoIP",
    "/usr/local/share/GeoIP",
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# What an IPv4-only database "knows" of an IPv6 address: nothing, for the whole IPv6 space.
ALL_IPV6 = ipaddress.IPv6Network("::/0")
# What geoip2/maxminddb raise when a record cannot be decoded or is not shaped as expected.
CORRUPT_RECORD_ERRORS = (
    maxminddb.InvalidDatabaseError, ValueError, TypeError, KeyError, AttributeError, IndexError,
)


class OfflineDatabaseError(Exception):
    """A configured or discovered .mmdb file is missing, unreadable, of the wrong type or broken."""


def geoip_folders(geoip_dir: str | None, system_dirs: Sequence[str],
                  error: type[OfflineDatabaseError] = OfflineDatabaseError) -> list[Path]:
    """IPINTEL_GEOIP_DIR's folders (colon-separated; each must be a folder, so a typo is said,
    not silently searched), else `system_dirs`."""
    if not geoip_dir:
        return [Path(part) for part in system_dirs]
    folders = [Path(part) for part in geoip_dir.split(os.pathsep) if part]
    for folder in folders:
        if not folder.is_dir():
            raise error(f"IPINTEL_GEOIP_DIR names {folder}, which is not a folder")
    return folders


def checked_build_epoch(path: Path, epoch: int, refetch: str,
                        error: type[OfflineDatabaseError] = OfflineDatabaseError) -> int:
    """The build time of `path`'s metadata, once it is a real time: it is provenance (a date)
    and a bigint in SQL. `refetch` ends the message: what the file is not, and how to get it."""
    try:
        datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        raise error(f"{path} has an impossible build time (build_epoch {epoch}); the file is damaged "
                    f"or {refetch}") from None
    return epoch


@dataclass(frozen=True)
class DatabaseFile:
    """One opened-and-checked .mmdb file, with what is needed to record where data came from."""

    path: Path
    database_type: str
    build_epoch: int

    @property
    def built_at(self) -> datetime:
        return datetime.fromtimestamp(self.build_epoch, UTC)

    def provenance(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "type": self.database_type,
            "build_epoch": self.build_epoch,
            "built_at": self.built_at.isoformat(),
        }


@dataclass(frozen=True)
class Edition:
    """A kind of file one source reads: the names its builds go by (globs, e.g. a dated
    `dbip-asn-lite-2026-11.mmdb`), the database types it accepts, and how errors name it."""

    patterns: tuple[str, ...]
    accepts: Callable[[str], bool]
    role: str  # e.g. "an IPinfo Lite", as in "... database, not an IPinfo Lite database"
    refetch: str  # e.g. "not an IPinfo Lite build: download it again from ..."


def _open(path: Path) -> maxminddb.Reader:
    try:
        return maxminddb.open_database(str(path))
    except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
        raise OfflineDatabaseError(f"cannot read database {path}: {exc}") from exc


def inspect(path: Path, edition: Edition) -> DatabaseFile:
    """Open `path` and check that its type and build time fit the edition it was found for."""
    with _open(path) as reader:
        meta = reader.metadata()
    if not edition.accepts(meta.database_type):
        raise OfflineDatabaseError(f"{path} holds a {meta.database_type!r} database, not {edition.role} database")
    return DatabaseFile(path, meta.database_type, checked_build_epoch(path, int(meta.build_epoch), edition.refetch))


def newest_build(folders: Sequence[Path], edition: Edition) -> DatabaseFile | None:
    """The newest build (build_epoch) of the edition in the folders; for the same build the
    earlier folder wins. Every candidate is checked: a broken or mistyped one is an error."""
    best: DatabaseFile | None = None
    for folder in folders:
        names = sorted({p for pattern in edition.patterns for p in folder.glob(pattern) if p.is_file()})
        for path in names:
            found = inspect(path, edition)
            if best is None or found.build_epoch > best.build_epoch:
                best = found
    return best


def lookup_many(ips: Iterable[str], lookup: Callable[[IPAddress], tuple[dict[str, Any], tuple[Network, ...]]]
                ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(ip, document)`` for each IP, `lookup` giving the document and the networks within
    which every address gets the same one.

    Feed IPs sorted (``ORDER BY ip``): while consecutive IPs stay inside the networks the previous
    lookup landed in, the files would return the same records, so the previous document is reused
    instead of decoding them again. Yielded documents may therefore be the same object; do not
    mutate them.
    """
    document: dict[str, Any] | None = None
    networks: tuple[Network, ...] = ()
    for ip in ips:
        address = ipaddress.ip_address(ip)
        if document is None or not all(address in network for network in networks):
            document, networks = lookup(address)
        yield ip, document


class RecordReader:
    """maxminddb over one found file: the raw record of an address and the network it covers."""

    def __init__(self, db: DatabaseFile) -> None:
        self.db = db
        self._reader = _open(db.path)
        # Files are replaced in place by downloads; refuse to tag rows with the build recorded
        # at discovery if the file now holds another one.
        meta = self._reader.metadata()
        if (meta.database_type, meta.build_epoch) != (db.database_type, db.build_epoch):
            self._reader.close()
            raise OfflineDatabaseError(f"{db.path} changed since it was found (now {meta.database_type!r} built at "
                                       f"epoch {meta.build_epoch}); run again")
        self._ipv4_only = meta.ip_version == 4

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def query(self, ip: IPAddress) -> tuple[dict[str, Any] | None, Network]:
        """The record (None when the file holds no data for the address) and the network within
        which every address gets it. An IPv6 address asked of an IPv4-only file: no data."""
        if self._ipv4_only and ip.version == 6:
            return None, ALL_IPV6
        try:
            record, prefix_len = self._reader.get_with_prefix_len(ip)
            network = ipaddress.ip_network(f"{ip}/{prefix_len}", strict=False)
        except CORRUPT_RECORD_ERRORS as exc:
            raise OfflineDatabaseError(f"corrupt database {self.db.path}: {exc}") from exc
        if record is not None and not isinstance(record, dict):
            raise OfflineDatabaseError(f"corrupt database {self.db.path}: a record is not a map ({type(record).__name__})")
        return record, network

    def close(self) -> None:
        self._reader.close()


class RecordLookup:
    """Open RecordReaders over a source's files; use as a context manager. A subclass's `_lookup`
    turns their records into the source's document; `lookup_many` reuses it along sorted IPs."""

    def __init__(self, files: Iterable[DatabaseFile]) -> None:
        self._readers: list[RecordReader] = []
        try:
            for db in files:
                self._readers.append(RecordReader(db))
        except OfflineDatabaseError:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for reader in self._readers:
            reader.close()

    def lookup(self, ip: str) -> dict[str, Any]:
        document, _ = self._lookup(ipaddress.ip_address(ip))
        return document

    def lookup_many(self, ips: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        return lookup_many(ips, self._lookup)

    def _lookup(self, ip: IPAddress) -> tuple[dict[str, Any], tuple[Network, ...]]:
        raise NotImplementedError


def text(value: Any) -> str | None:
    """A record's string field as it is; anything else (absent, another type) as None."""
    return value if isinstance(value, str) else None


def field(record: dict[str, Any] | None, *keys: str | int) -> Any:
    """record[k1][k2]... through maps (str keys) and lists (int indexes); None where a step is missing."""
    value: Any = record
    for key in keys:
        if isinstance(key, str) and isinstance(value, dict):
            value = value.get(key)
        elif isinstance(key, int) and isinstance(value, list) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def geolite2_facts(record: dict[str, Any]) -> tuple[str | None, int | None]:
    """The country (ISO code, as written) and the AS number of a GeoLite2-shaped record (MaxMind's
    City, Country, ASN and ISP files, DB-IP Lite's): what a dated build keeps (ipintel geo load)."""
    number = field(record, "autonomous_system_number")
    return (text(field(record, "country", "iso_code")),
            number if isinstance(number, int) and not isinstance(number, bool) else None)
