"""MaxMind GeoLite2 / GeoIP2 source: find the local .mmdb files and look IPs up in them.

Produces the JSON document stored under ``enrichment->'maxmind'`` (the caller adds the fetch
time and COPYs the rows).  Everything is offline: databases are files written by geoipupdate,
or, when none is installed, the 2018 GeoLite2-City build shipped by ``maxminddb-geolite2``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import geoip2.database
import geoip2.errors
import geoip2.models
import maxminddb

from ipintel.sources import mmdb
from ipintel.sources.mmdb import (
    ALL_IPV6,
    CORRUPT_RECORD_ERRORS,
    SYSTEM_GEOIP_DIRS as SYSTEM_GEOIP_DIRS,  # where MaxMind's callers look
    IPAddress,
    Network,
)

# Edition IDs in order of preference: the commercial editions are more accurate than the free
# ones, and a City database answers everything a Country database does.
LOCATION_EDITIONS: tuple[str, ...] = (
    "GeoIP2-City",
    "GeoLite2-City",
    "GeoIP2-Country",
    "GeoLite2-Country",
)
ASN_EDITIONS: tuple[str, ...] = ("GeoLite2-ASN", "GeoIP2-ISP")

class MaxMindError(mmdb.OfflineDatabaseError):
    """A configured or discovered MaxMind database is missing, unreadable or of the wrong type."""


class Kind(Enum):
    """Which geoip2 reader method a database answers.  geoip2 checks the database_type
    metadata by substring: ``city()`` needs "City", ``country()`` needs "Country" (so it
    refuses a City file), ``asn()`` needs "GeoLite2-ASN" and ``isp()`` needs "GeoIP2-ISP"."""

    CITY = "city"
    COUNTRY = "country"
    ASN = "asn"
    ISP = "isp"

    @classmethod
    def of(cls, database_type: str) -> Kind | None:
        if "City" in database_type:
            return cls.CITY
        if "Country" in database_type:
            return cls.COUNTRY
        if "GeoLite2-ASN" in database_type:
            return cls.ASN
        if "GeoIP2-ISP" in database_type:
            return cls.ISP
        return None


LOCATION_KINDS = frozenset({Kind.CITY, Kind.COUNTRY})
ASN_KINDS = frozenset({Kind.ASN, Kind.ISP})

# How the roles read in error messages.
LOCATION_ROLE = "a City or Country"
ASN_ROLE = "a GeoLite2-ASN or GeoIP2-ISP"


@dataclass(frozen=True)
class MaxMindDatabase(mmdb.DatabaseFile):
    """One opened-and-checked MaxMind file, and the geoip2 method its type answers."""

    kind: Kind

    def summary(self) -> dict[str, Any]:
        """The per-lookup provenance stored with every document: which database answered. Its
        build is freshness, not a fact of the answer: staged beside it (enrichment_state.build)."""
        return {"type": self.database_type}


@dataclass(frozen=True)
class MaxMindDatabases:
    location: MaxMindDatabase
    asn: MaxMindDatabase | None
    demo: bool = False
    # Shown to the user whenever the demo data is used (attribution and a staleness warning).
    notice: str | None = None

    def provenance(self) -> dict[str, Any]:
        """A JSON-ready description of the databases, for the runs table."""
        return {
            "location_db": self.location.provenance(),
            "asn_db": self.asn.provenance() if self.asn else None,
            "demo": self.demo,
        }


def _open_reader(path: Path) -> geoip2.database.Reader:
    """Open ``path`` with geoip2, turning every way a file can be bad into MaxMindError."""
    try:
        return geoip2.database.Reader(str(path), locales=["en"])
    except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
        raise MaxMindError(f"cannot read MaxMind database {path}: {exc}") from exc


def _inspect(path: Path, roles: frozenset[Kind], role: str) -> MaxMindDatabase:
    """Open ``path`` and check that its type fits the role it was found for."""
    with _open_reader(path) as reader:
        meta = reader.metadata()
    kind = Kind.of(meta.database_type)
    if kind not in roles:
        raise MaxMindError(
            f"{path} holds a {meta.database_type!r} database, not {role} database"
        )
    epoch = mmdb.checked_build_epoch(path, int(meta.build_epoch),
                                     "not a MaxMind build: fetch it again with geoipupdate", MaxMindError)
    return MaxMindDatabase(path, meta.database_type, epoch, kind)


def _first_existing(folders: Sequence[Path], editions: Sequence[str]) -> Path | None:
    """Edition preference first, then folder order: a GeoIP2-City anywhere beats a
    GeoLite2-City in an earlier folder; for the same edition the earlier folder wins."""
    for edition in editions:
        for folder in folders:
            candidate = folder / f"{edition}.mmdb"
            if candidate.is_file():
                return candidate
    return None


def _demo_database_path() -> Path | None:
    try:
        import geolite2  # maxminddb-geolite2; exposes the packaged file's path
    except ImportError:
        return None
    return Path(geolite2.geolite2.filename)


def _demo_notice(db: MaxMindDatabase) -> str:
    return (
        "This product includes GeoLite2 data created by MaxMind, available from "
        "https://www.maxmind.com. No MaxMind database was found, so ipintel is using the "
        f"demo {db.database_type} database bundled in the maxminddb-geolite2 package "
        f"(built {db.built_at:%Y-%m-%d}, CC BY-SA 4.0 at the time). It is old demo data: "
        "countries, cities and networks may be wrong for today's addresses, and it has no "
        "ASN data. For current data, install geoipupdate with a free MaxMind account (it "
        f"writes to {' or '.join(SYSTEM_GEOIP_DIRS)}) or set IPINTEL_GEOIP_DIR to the "
        "folder(s) holding GeoLite2-City.mmdb and GeoLite2-ASN.mmdb."
    )


def find_databases(
    geoip_dir: str | None, system_dirs: Sequence[str] = SYSTEM_GEOIP_DIRS
) -> MaxMindDatabases:
    """Find the location database (required) and the ASN database (optional).

    ``geoip_dir`` is IPINTEL_GEOIP_DIR (colon-separated folders).  When it is set only those
    folders are searched and a missing location database is an error, so a typo never
    silently turns into stale demo data.  Otherwise ``system_dirs`` are searched and, if they
    hold no location database, the bundled 2018 demo database is used.  In both cases the
    preferred file that exists is the one used: if it is broken or of the wrong type that is
    an error, not a reason to try the next file.
    """
    configured = bool(geoip_dir)
    folders = mmdb.geoip_folders(geoip_dir, system_dirs, MaxMindError)

    asn_path = _first_existing(folders, ASN_EDITIONS)
    asn = _inspect(asn_path, ASN_KINDS, ASN_ROLE) if asn_path else None

    location_path = _first_existing(folders, LOCATION_EDITIONS)
    if location_path:
        return MaxMindDatabases(_inspect(location_path, LOCATION_KINDS, LOCATION_ROLE), asn)

    searched = ", ".join(map(str, folders))
    wanted = ", ".join(f"{edition}.mmdb" for edition in LOCATION_EDITIONS)
    if configured:
        raise MaxMindError(
            f"no MaxMind location database ({wanted}) in IPINTEL_GEOIP_DIR ({searched})"
        )
    demo_path = _demo_database_path()
    if demo_path is None:
        raise MaxMindError(
            f"no MaxMind location database ({wanted}) in {searched}, and the demo package "
            "maxminddb-geolite2 is not installed; install geoipupdate or set IPINTEL_GEOIP_DIR"
        )
    location = _inspect(demo_path, LOCATION_KINDS, LOCATION_ROLE)
    return MaxMindDatabases(location, asn, demo=True, notice=_demo_notice(location))


class _OpenDatabase:
    """A reader over one database, answering with the geoip2 method its type calls for."""

    def __init__(self, db: MaxMindDatabase) -> None:
        self.db = db
        self.summary = db.summary()
        self._reader = _open_reader(db.path)
        # geoipupdate replaces files in place; refuse to tag rows with the build epoch
        # recorded at discovery if the file now holds a different build.
        meta = self._reader.metadata()
        if (meta.database_type, meta.build_epoch) != (db.database_type, db.build_epoch):
            self._reader.close()
            raise MaxMindError(
                f"{db.path} changed since it was found (now {meta.database_type!r} built at "
                f"epoch {meta.build_epoch}); run again"
            )
        # Kind values are the geoip2 method names (city, country, asn, isp).
        self._query: Callable[[str | IPAddress], Any] = getattr(self._reader, db.kind.value)
        # An IPv4-only file cannot answer for an IPv6 address (maxminddb raises ValueError).
        self._ipv4_only = meta.ip_version == 4

    def query(self, ip: str | IPAddress) -> tuple[Any, Network]:
        """The geoip2 model (None when the address is not in the database) and the network
        within which every address gets the same answer. An IPv6 address asked of an
        IPv4-only database is not applicable: no data, like an address it does not hold."""
        if isinstance(ip, str):
            ip = ipaddress.ip_address(ip)  # a malformed IP raises ValueError here, not below
        if self._ipv4_only and ip.version == 6:
            return None, ALL_IPV6
        try:
            model = self._query(ip)
        except geoip2.errors.AddressNotFoundError as exc:
            # The largest network around the address holding no data; like the networks
            # below it is derived from the lookup's prefix length, so never None here.
            assert exc.network is not None
            return None, exc.network
        except CORRUPT_RECORD_ERRORS as exc:
            raise MaxMindError(f"corrupt MaxMind database {self.db.path}: {exc}") from exc
        # City/Country models carry the network in traits, ASN/ISP models at the top.
        network = model.traits.network if self.db.kind in LOCATION_KINDS else model.network
        assert network is not None
        return model, network

    def close(self) -> None:
        self._reader.close()


class MaxMindLookup:
    """Open readers over the chosen databases; use as a context manager.

    ``lookup`` and ``lookup_many`` return the ``enrichment->'maxmind'`` document.  An
    address a database does not hold is a real negative (its fields are null); ``found`` is
    true when either database holds it.  A malformed IP string raises ValueError.
    """

    def __init__(self, dbs: MaxMindDatabases) -> None:
        self._location = _OpenDatabase(dbs.location)
        try:
            self._asn = _OpenDatabase(dbs.asn) if dbs.asn else None
        except MaxMindError:
            self._location.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._location.close()
        if self._asn:
            self._asn.close()

    def lookup(self, ip: str) -> dict[str, Any]:
        document, _ = self._lookup(ip)
        return document

    def lookup_many(self, ips: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(ip, document)`` for each IP.

        Feed IPs sorted (``ORDER BY ip``): while consecutive IPs stay inside the networks the
        previous lookup landed in, both databases would return the same records, so the
        previous document is reused instead of decoding them again.  Yielded documents may
        therefore be the same object; do not mutate them.
        """
        return mmdb.lookup_many(ips, self._lookup)

    def _lookup(self, ip: str | IPAddress) -> tuple[dict[str, Any], tuple[Network, ...]]:
        """The document, and the networks within which every address gets the same one."""
        location, location_network = self._location.query(ip)
        networks: tuple[Network, ...] = (location_network,)
        asn = None
        if self._asn:
            asn, asn_network = self._asn.query(ip)
            networks += (asn_network,)
        document = {
            "found": location is not None or asn is not None,
            **_location_fields(location),
            **_asn_fields(asn),
            "location_db": self._location.summary,
            "asn_db": self._asn.summary if self._asn else None,
        }
        return document, networks


_LOCATION_KEYS = (
    "country",
    "registered_country",
    "continent",
    "city",
    "subdivision",
    "latitude",
    "longitude",
    "accuracy_radius",
    "network",
    "is_anonymous_proxy",
    "is_satellite_provider",
    "is_anycast",
)


def _location_fields(model: geoip2.models.Country | None) -> dict[str, Any]:
    fields: dict[str, Any] = dict.fromkeys(_LOCATION_KEYS)
    if model is None:
        return fields
    traits = model.traits
    fields |= {
        "country": model.country.iso_code,
        "registered_country": model.registered_country.iso_code,
        "continent": model.continent.code,
        "network": str(traits.network),
        # geoip2 turns an absent flag into False, which is MaxMind's meaning too: the
        # databases only carry these keys when they are true.
        "is_anonymous_proxy": traits.is_anonymous_proxy,
        "is_satellite_provider": traits.is_satellite_provider,
        "is_anycast": traits.is_anycast,
    }
    if isinstance(model, geoip2.models.City):
        fields |= {
            "city": model.city.name,
            "subdivision": model.subdivisions.most_specific.iso_code,
            "latitude": model.location.latitude,
            "longitude": model.location.longitude,
            "accuracy_radius": model.location.accuracy_radius,
        }
    return fields


def _asn_fields(model: geoip2.models.ASN | None) -> dict[str, Any]:
    if model is None:
        return {"asn": None, "as_org": None, "asn_network": None}
    return {
        "asn": model.autonomous_system_number,
        "as_org": model.autonomous_system_organization,
        "asn_network": str(model.network),
    }
