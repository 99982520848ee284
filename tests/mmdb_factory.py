"""Build small MaxMind DB (.mmdb) files for tests with mmdb-writer.

The records mimic the layout of MaxMind's GeoLite2 City / Country / ASN databases closely
enough for geoip2's models to parse them.  Things learnt about mmdb-writer 0.2.7 on the way:

* Integers are typed by size unless wrapped ("auto": <=65535 becomes uint16, larger uint32,
  negative int32).  We wrap every integer in the type MaxMind uses (geoname_id and
  autonomous_system_number uint32, accuracy_radius uint16) so the files match real ones.
  Wrapping also sidesteps a cache quirk: the encoder deduplicates values by equality, and
  ``True == 1``, so a bare ``1`` encoded after a ``True`` (or vice versa) would be written as
  a pointer to the other value.  Wrapped values are hashed by identity and never collide.
* Inserting a network replaces everything beneath it in the tree, so a broad network
  inserted after a narrow one erases the narrow one.  ``write_db`` therefore inserts in
  order of prefix length, broadest first, whatever order the caller's mapping has.
* ``build_epoch`` is hard-wired to ``int(time.time())`` in ``MMDBWriter._build_meta``; there
  is no parameter.  ``_EpochWriter`` overrides that (private) method to set a fixed epoch.
* With ``ipv4_compatible=True`` IPv4 networks are stored under ``::/96`` only.  Real MaxMind
  files also alias ``::ffff:0:0/96`` and ``2002::/16``; these test files do not, so look up
  IPv4 addresses in dotted form.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import maxminddb
from mmdb_writer import MmdbF64, MmdbU16, MmdbU32, MMDBWriter
from netaddr import IPNetwork, IPSet

# A fixed, recognisable build time (2024-01-02T03:04:05Z) so tests can assert provenance.
DEFAULT_BUILD_EPOCH = 1704164645

# Geoname ids of the few places the builders know; anything else gets a made-up stable id.
_GEONAME_IDS = {
    "NA": 6255149, "EU": 6255148, "AS": 6255147, "OC": 6255151, "SA": 6255150, "AF": 6255146,
    "US": 6252001, "DE": 2921044, "JP": 1861060, "AU": 2077456, "BR": 3469034, "GB": 2635167,
}


def _geoname_id(code: str) -> MmdbU32:
    return MmdbU32(_GEONAME_IDS.get(code, 9_000_000 + sum(map(ord, code))))


def _named(code_key: str, code: str, name: str | None = None) -> dict[str, Any]:
    """A continent/country/subdivision record: geoname_id, code and an English name."""
    return {"geoname_id": _geoname_id(code), code_key: code, "names": {"en": name or code}}


def country_record(
    country: str = "US",
    *,
    continent: str = "NA",
    registered_country: str | None = None,
    is_anonymous_proxy: bool = False,
    is_satellite_provider: bool = False,
    is_anycast: bool = False,
) -> dict[str, Any]:
    """A GeoLite2-Country style record; ``registered_country`` defaults to ``country``."""
    record: dict[str, Any] = {
        "continent": _named("code", continent),
        "country": _named("iso_code", country),
        "registered_country": _named("iso_code", registered_country or country),
    }
    # MaxMind writes trait flags only when they are true; absence means false.
    traits = {
        name: True
        for name, flag in (
            ("is_anonymous_proxy", is_anonymous_proxy),
            ("is_satellite_provider", is_satellite_provider),
            ("is_anycast", is_anycast),
        )
        if flag
    }
    if traits:
        record["traits"] = traits
    return record


def city_record(
    country: str = "US",
    city: str | None = "Mountain View",
    *,
    continent: str = "NA",
    registered_country: str | None = None,
    subdivisions: tuple[str, ...] = ("CA",),
    latitude: float = 37.386,
    longitude: float = -122.0838,
    accuracy_radius: int = 1000,
    is_anonymous_proxy: bool = False,
    is_satellite_provider: bool = False,
    is_anycast: bool = False,
) -> dict[str, Any]:
    """A GeoLite2-City style record.  ``subdivisions`` run from largest to most specific."""
    record = country_record(
        country,
        continent=continent,
        registered_country=registered_country,
        is_anonymous_proxy=is_anonymous_proxy,
        is_satellite_provider=is_satellite_provider,
        is_anycast=is_anycast,
    )
    if city is not None:
        record["city"] = {"geoname_id": _geoname_id(city), "names": {"en": city}}
    if subdivisions:
        record["subdivisions"] = [_named("iso_code", code) for code in subdivisions]
    record["location"] = {
        "latitude": MmdbF64(latitude),
        "longitude": MmdbF64(longitude),
        "accuracy_radius": MmdbU16(accuracy_radius),
    }
    return record


def asn_record(number: int, organization: str) -> dict[str, Any]:
    """A GeoLite2-ASN record."""
    return {
        "autonomous_system_number": MmdbU32(number),
        "autonomous_system_organization": organization,
    }


class _EpochWriter(MMDBWriter):
    """MMDBWriter with a chosen build_epoch (the library always uses the current time)."""

    def __init__(self, build_epoch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._build_epoch = build_epoch

    def _build_meta(self) -> dict[str, Any]:
        return {**super()._build_meta(), "build_epoch": self._build_epoch}


def write_db(
    path: str | Path,
    database_type: str,
    records: Mapping[str, dict[str, Any]],
    *,
    build_epoch: int = DEFAULT_BUILD_EPOCH,
) -> Path:
    """Write an IPv6 (IPv4-compatible) database mapping CIDR strings to records."""
    writer = _EpochWriter(
        build_epoch,
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en"],
        description=f"ipintel test {database_type}",
    )
    # Broadest first: a later, broader insert would wipe out narrower networks.
    for cidr in sorted(records, key=lambda c: IPNetwork(c).prefixlen):
        writer.insert_network(IPSet([cidr]), records[cidr])
    path = Path(path)
    writer.to_db_file(str(path))
    return path


def write_city_db(
    path: str | Path,
    records: Mapping[str, dict[str, Any]],
    *,
    database_type: str = "GeoLite2-City",
    build_epoch: int = DEFAULT_BUILD_EPOCH,
) -> Path:
    return write_db(path, database_type, records, build_epoch=build_epoch)


def write_country_db(
    path: str | Path,
    records: Mapping[str, dict[str, Any]],
    *,
    database_type: str = "GeoLite2-Country",
    build_epoch: int = DEFAULT_BUILD_EPOCH,
) -> Path:
    return write_db(path, database_type, records, build_epoch=build_epoch)


def write_asn_db(
    path: str | Path,
    records: Mapping[str, dict[str, Any]],
    *,
    database_type: str = "GeoLite2-ASN",
    build_epoch: int = DEFAULT_BUILD_EPOCH,
) -> Path:
    return write_db(path, database_type, records, build_epoch=build_epoch)


def ipinfo_record(asn: int | None, as_name: str | None = None, *, country_code: str = "US",
                  country: str = "United States", continent_code: str = "NA", continent: str = "North America",
                  as_domain: str | None = None) -> dict[str, Any]:
    """An IPinfo Lite record: flat, every value a string, the AS number written "AS174". A network
    no AS announces has no AS fields."""
    record = {"country_code": country_code, "country": country, "continent_code": continent_code,
              "continent": continent}
    if asn is not None:
        record |= {"asn": f"AS{asn}", "as_name": as_name or f"AS{asn} name", "as_domain": as_domain or f"as{asn}.example"}
    return record


# database_type of the real files: IPinfo Lite's, and DB-IP Lite's (its ASN file says it is
# GeoLite2-ASN compatible).
IPINFO_LITE_TYPE = "ipinfo ipinfo_lite.mmdb"
DBIP_CITY_TYPE = "DBIP-City-Lite"
DBIP_COUNTRY_TYPE = "DBIP-Country-Lite"
DBIP_ASN_TYPE = "DBIP-ASN-Lite (compat=GeoLite2-ASN)"


def write_ipinfo_db(path: str | Path, records: Mapping[str, dict[str, Any]], *,
                    build_epoch: int = DEFAULT_BUILD_EPOCH) -> Path:
    """An IPinfo Lite file (ipinfo_record records)."""
    return write_db(path, IPINFO_LITE_TYPE, records, build_epoch=build_epoch)


def write_dbip_location_db(path: str | Path, records: Mapping[str, dict[str, Any]], *,
                           database_type: str = DBIP_CITY_TYPE, build_epoch: int = DEFAULT_BUILD_EPOCH) -> Path:
    """A DB-IP Lite City (or Country) file: GeoLite2-shaped records (city_record, country_record)."""
    return write_db(path, database_type, records, build_epoch=build_epoch)


def write_dbip_asn_db(path: str | Path, records: Mapping[str, dict[str, Any]], *,
                      build_epoch: int = DEFAULT_BUILD_EPOCH) -> Path:
    """A DB-IP Lite ASN file: GeoLite2-ASN records (asn_record)."""
    return write_db(path, DBIP_ASN_TYPE, records, build_epoch=build_epoch)


def write_truncated_copy(source: str | Path, target: str | Path, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``source``: the metadata block at the end is lost,
    as after an interrupted download, so opening the file fails."""
    data = Path(source).read_bytes()
    target = Path(target)
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def write_corrupt_data_copy(source: str | Path, target: str | Path) -> Path:
    """Copy ``source`` with its data section overwritten by 0xFF bytes.

    The metadata and search tree stay intact, so the file opens and reports its type, and
    the damage only shows when a lookup decodes a record."""
    with maxminddb.open_database(str(source)) as reader:
        meta = reader.metadata()
    # Layout: search tree, 16 zero bytes, data section, metadata marker, metadata.
    data = bytearray(Path(source).read_bytes())
    data_start = meta.node_count * meta.record_size * 2 // 8 + 16
    data_end = data.rindex(b"\xab\xcd\xefMaxMind.com")
    data[data_start:data_end] = b"\xff" * (data_end - data_start)
    target = Path(target)
    target.write_bytes(bytes(data))
    return target
