"""DB-IP Lite source: DB-IP's free .mmdb files, GeoLite2-shaped (CC BY 4.0).

Download from https://db-ip.com/db/lite.php into a GeoIP folder, as published:
`dbip-city-lite-YYYY-MM.mmdb` or `dbip-country-lite-YYYY-MM.mmdb` (country; City preferred), and
`dbip-asn-lite-YYYY-MM.mmdb` (ASN). Monthly builds may be kept side by side: the newest build
(build_epoch) of each edition is read. Either kind of file alone is enough. Produces the document
under ``enrichment->'dbip'``: the answer's facts, named like MaxMind's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ipintel.sources import mmdb

SOURCE_NAME = "DB-IP Lite"
ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com): DB-IP Lite, CC BY 4.0"
_REFETCH = "not a DB-IP Lite build: download it again from https://db-ip.com/db/lite.php"
# Location editions in order of preference: a City file answers everything a Country file does.
LOCATION_EDITIONS = (
    mmdb.Edition(("dbip-city-lite*.mmdb",), lambda t: "dbip" in t.lower() and "city" in t.lower(),
                 "a DB-IP Lite City", _REFETCH),
    mmdb.Edition(("dbip-country-lite*.mmdb",), lambda t: "dbip" in t.lower() and "country" in t.lower(),
                 "a DB-IP Lite Country", _REFETCH),
)
ASN_EDITION = mmdb.Edition(("dbip-asn-lite*.mmdb",), lambda t: "dbip" in t.lower() and "asn" in t.lower(),
                           "a DB-IP Lite ASN", _REFETCH)
FILE_NAMES = "dbip-city-lite-YYYY-MM.mmdb, dbip-country-lite-YYYY-MM.mmdb, dbip-asn-lite-YYYY-MM.mmdb"


@dataclass(frozen=True)
class DbipDatabases:
    location: mmdb.DatabaseFile | None
    asn: mmdb.DatabaseFile | None

    def files(self) -> list[mmdb.DatabaseFile]:
        return [f for f in (self.location, self.asn) if f is not None]

    def provenance(self) -> dict[str, Any]:
        """A JSON-ready description of the files, for the runs table."""
        return {"location_db": self.location.provenance() if self.location else None,
                "asn_db": self.asn.provenance() if self.asn else None}


def find_databases(geoip_dir: str | None,
                   system_dirs: Sequence[str] = mmdb.SYSTEM_GEOIP_DIRS) -> DbipDatabases | None:
    """The newest build of the preferred location edition and of the ASN edition in
    IPINTEL_GEOIP_DIR (else the system folders); None when neither is there: not installed."""
    folders = mmdb.geoip_folders(geoip_dir, system_dirs)
    location = next((db for db in (mmdb.newest_build(folders, e) for e in LOCATION_EDITIONS) if db), None)
    asn = mmdb.newest_build(folders, ASN_EDITION)
    return DbipDatabases(location, asn) if location or asn else None


_LOCATION_KEYS = ("country", "continent", "city", "subdivision", "latitude", "longitude", "network")


def document(location: dict[str, Any] | None, location_network: mmdb.Network | None,
             asn: dict[str, Any] | None, asn_network: mmdb.Network | None) -> dict[str, Any]:
    """enrichment->'dbip': found in either file, the location's fields, the AS of the ASN file."""
    fields: dict[str, Any] = dict.fromkeys(_LOCATION_KEYS)
    if location is not None:
        fields |= {
            "country": mmdb.text(mmdb.field(location, "country", "iso_code")),
            "continent": mmdb.text(mmdb.field(location, "continent", "code")),
            "city": mmdb.text(mmdb.field(location, "city", "names", "en")),
            "subdivision": mmdb.text(mmdb.field(location, "subdivisions", -1, "iso_code")),
            "latitude": _number(mmdb.field(location, "location", "latitude")),
            "longitude": _number(mmdb.field(location, "location", "longitude")),
            "network": str(location_network),
        }
    number = mmdb.field(asn, "autonomous_system_number")
    return {
        "found": location is not None or asn is not None,
        **fields,
        "asn": number if isinstance(number, int) and not isinstance(number, bool) else None,
        "as_name": mmdb.text(mmdb.field(asn, "autonomous_system_organization")),
        "asn_network": str(asn_network) if asn is not None else None,
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class DbipLookup(mmdb.RecordLookup):
    """Lookups in the DB-IP Lite files found; an address a file does not hold is a real negative."""

    def __init__(self, dbs: DbipDatabases) -> None:
        super().__init__(dbs.files())
        readers = iter(self._readers)  # in the order of dbs.files()
        self._location = next(readers) if dbs.location else None
        self._asn = next(readers) if dbs.asn else None

    def _lookup(self, ip: mmdb.IPAddress) -> tuple[dict[str, Any], tuple[mmdb.Network, ...]]:
        location, location_network = self._location.query(ip) if self._location else (None, None)
        asn, asn_network = self._asn.query(ip) if self._asn else (None, None)
        networks = tuple(n for n in (location_network, asn_network) if n is not None)
        return document(location, location_network, asn, asn_network), networks
