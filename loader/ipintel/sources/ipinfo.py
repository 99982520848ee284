"""IPinfo Lite source: IPinfo's free .mmdb, country and ASN in one file (CC BY-SA 4.0).

Download `ipinfo_lite.mmdb` (a free IPinfo account's token: https://ipinfo.io/lite) into a GeoIP
folder; several builds may be kept there (e.g. `ipinfo_lite-2026-11-30.mmdb`): the newest build
(build_epoch) is read. Produces the document under ``enrichment->'ipinfo'``: the answer's facts
with IPinfo's own field names (``country_code`` is the ISO code, ``country`` the name), the ASN
("AS174" in the file) as a number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ipintel.sources import mmdb

SOURCE_NAME = "IPinfo Lite"
FILE_NAME = "ipinfo_lite.mmdb"
ATTRIBUTION = "IP address data powered by IPinfo (https://ipinfo.io): IPinfo Lite, CC BY-SA 4.0"
EDITION = mmdb.Edition(
    patterns=("ipinfo_lite*.mmdb",),
    accepts=lambda database_type: "ipinfo" in database_type.lower(),
    role="an IPinfo Lite",
    refetch=f"not an IPinfo Lite build: download {FILE_NAME} again from https://ipinfo.io/lite",
)
# The record's string fields, kept under their own names.
_FIELDS = ("as_name", "as_domain", "country_code", "country", "continent_code", "continent")
_ASN = re.compile(r"AS([0-9]{1,10})", re.IGNORECASE)


def find_database(geoip_dir: str | None, system_dirs: Sequence[str] = mmdb.SYSTEM_GEOIP_DIRS) -> mmdb.DatabaseFile | None:
    """The newest IPinfo Lite build in IPINTEL_GEOIP_DIR (else the system folders); None: not installed."""
    return mmdb.newest_build(mmdb.geoip_folders(geoip_dir, system_dirs), EDITION)


def parse_asn(value: Any) -> int | None:
    """IPinfo writes the AS number as text, "AS174"; None for anything else (no AS)."""
    match = _ASN.fullmatch(value) if isinstance(value, str) else None
    return int(match.group(1)) if match else None


def build_facts(record: dict[str, Any]) -> tuple[str | None, int | None]:
    """The country (ISO code) and the AS number of a record: what a dated build keeps (ipintel geo load)."""
    return mmdb.text(mmdb.field(record, "country_code")), parse_asn(mmdb.field(record, "asn"))


def document(record: dict[str, Any] | None, network: mmdb.Network) -> dict[str, Any]:
    """enrichment->'ipinfo': found, the ASN as a number, IPinfo's fields, the file's network."""
    return {
        "found": record is not None,
        "asn": parse_asn(mmdb.field(record, "asn")),
        **{name: mmdb.text(mmdb.field(record, name)) for name in _FIELDS},
        "network": str(network) if record is not None else None,
    }


class IpinfoLookup(mmdb.RecordLookup):
    """Lookups in one IPinfo Lite file; an address it does not hold is a real negative."""

    def __init__(self, db: mmdb.DatabaseFile) -> None:
        super().__init__([db])

    def _lookup(self, ip: mmdb.IPAddress) -> tuple[dict[str, Any], tuple[mmdb.Network, ...]]:
        record, network = self._readers[0].query(ip)
        return document(record, network), (network,)
