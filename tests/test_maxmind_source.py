"""MaxMind source: discovery, type checks, lookups against generated and demo databases."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest

from ipintel.sources.maxmind import (
    Kind,
    MaxMindDatabases,
    MaxMindError,
    MaxMindLookup,
    find_databases,
)
from tests.mmdb_factory import (
    DEFAULT_BUILD_EPOCH,
    asn_record,
    city_record,
    country_record,
    write_asn_db,
    write_city_db,
    write_corrupt_data_copy,
    write_country_db,
    write_truncated_copy,
)

ASN_EPOCH = DEFAULT_BUILD_EPOCH + 3600

CITY_RECORDS = {
    # A broad network with a narrower one inside it (the factory inserts broad first).
    "1.0.0.0/8": city_record(
        "AU", "Sydney", continent="OC", subdivisions=("NSW",),
        latitude=-33.8688, longitude=151.2093, accuracy_radius=500,
    ),
    "1.2.3.0/24": city_record("US", "Mountain View", subdivisions=("CA",)),
    # Only in the City database; no city, registered elsewhere, flagged.
    "5.6.7.0/24": city_record(
        "JP", None, continent="AS", registered_country="US", subdivisions=(),
        latitude=35.69, longitude=139.69, accuracy_radius=100,
        is_anonymous_proxy=True, is_satellite_provider=True,
    ),
    "2001:db8::/32": city_record(
        "DE", "Berlin", continent="EU", subdivisions=("BE",),
        latitude=52.52, longitude=13.405, accuracy_radius=20, is_anycast=True,
    ),
}
ASN_RECORDS = {
    "1.0.0.0/16": asn_record(13335, "CLOUDFLARENET"),
    "1.2.0.0/16": asn_record(15169, "GOOGLE"),
    # Only in the ASN database.
    "9.9.9.0/24": asn_record(19281, "QUAD9-AS-1"),
    "2001:db8::/32": asn_record(3320, "Deutsche Telekom AG"),
}

# Which database answered; its build is freshness, staged beside the document (see provenance).
CITY_DB = {"type": "GeoLite2-City"}
ASN_DB = {"type": "GeoLite2-ASN"}
NO_LOCATION: dict[str, Any] = {
    "country": None, "registered_country": None, "continent": None, "city": None,
    "subdivision": None, "latitude": None, "longitude": None, "accuracy_radius": None,
    "network": None, "is_anonymous_proxy": None, "is_satellite_provider": None, "is_anycast": None,
}
NO_ASN: dict[str, Any] = {"asn": None, "as_org": None, "asn_network": None}


@pytest.fixture(scope="module")
def geoip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("geoip")
    write_city_db(folder / "GeoLite2-City.mmdb", CITY_RECORDS)
    write_asn_db(folder / "GeoLite2-ASN.mmdb", ASN_RECORDS, build_epoch=ASN_EPOCH)
    return folder


@pytest.fixture(scope="module")
def dbs(geoip_dir: Path) -> MaxMindDatabases:
    return find_databases(str(geoip_dir))


@pytest.fixture(scope="module")
def maxmind(dbs: MaxMindDatabases) -> Any:
    with MaxMindLookup(dbs) as lookup:
        yield lookup


def expected(**fields: Any) -> dict[str, Any]:
    return {
        "found": True, **NO_LOCATION, **NO_ASN, **fields,
        "location_db": CITY_DB, "asn_db": ASN_DB,
    }


def us_location(network: str) -> dict[str, Any]:
    return {
        "country": "US", "registered_country": "US", "continent": "NA", "city": "Mountain View",
        "subdivision": "CA", "latitude": 37.386, "longitude": -122.0838, "accuracy_radius": 1000,
        "network": network, "is_anonymous_proxy": False, "is_satellite_provider": False,
        "is_anycast": False,
    }


# --- lookups -----------------------------------------------------------------------------


def test_ipv4_in_both_databases(maxmind: MaxMindLookup) -> None:
    assert maxmind.lookup("1.2.3.4") == expected(
        **us_location("1.2.3.0/24"), asn=15169, as_org="GOOGLE", asn_network="1.2.0.0/16"
    )


def test_broad_network_reports_the_tree_node_not_the_inserted_cidr(maxmind: MaxMindLookup) -> None:
    # 1.0.0.0/8 was split around 1.2.3.0/24, so an address in it lands in a smaller node.
    assert maxmind.lookup("1.9.9.9") == expected(
        country="AU", registered_country="AU", continent="OC", city="Sydney", subdivision="NSW",
        latitude=-33.8688, longitude=151.2093, accuracy_radius=500, network="1.8.0.0/13",
        is_anonymous_proxy=False, is_satellite_provider=False, is_anycast=False,
    )


def test_ipv6(maxmind: MaxMindLookup) -> None:
    assert maxmind.lookup("2001:db8::1") == expected(
        country="DE", registered_country="DE", continent="EU", city="Berlin", subdivision="BE",
        latitude=52.52, longitude=13.405, accuracy_radius=20, network="2001:db8::/32",
        is_anonymous_proxy=False, is_satellite_provider=False, is_anycast=True,
        asn=3320, as_org="Deutsche Telekom AG", asn_network="2001:db8::/32",
    )


def test_in_city_only(maxmind: MaxMindLookup) -> None:
    assert maxmind.lookup("5.6.7.8") == expected(
        country="JP", registered_country="US", continent="AS", city=None, subdivision=None,
        latitude=35.69, longitude=139.69, accuracy_radius=100, network="5.6.7.0/24",
        is_anonymous_proxy=True, is_satellite_provider=True, is_anycast=False,
    )


def test_in_asn_only(maxmind: MaxMindLookup) -> None:
    assert maxmind.lookup("9.9.9.9") == expected(
        asn=19281, as_org="QUAD9-AS-1", asn_network="9.9.9.0/24"
    )


def test_in_neither(maxmind: MaxMindLookup) -> None:
    assert maxmind.lookup("7.7.7.7") == {**expected(), "found": False}
    assert maxmind.lookup("2001:db9::1") == {**expected(), "found": False}


def test_malformed_ip_is_a_value_error(maxmind: MaxMindLookup) -> None:
    with pytest.raises(ValueError):
        maxmind.lookup("not-an-ip")


def test_lookup_many_matches_single_lookups(maxmind: MaxMindLookup) -> None:
    # Sorted, with runs inside one network and steps where only one of the two networks
    # changes (1.0.0.2 -> 1.1.0.1 keeps the location node, leaves the ASN network).
    ips = [
        "1.0.0.1", "1.0.0.2", "1.1.0.1", "1.2.3.4", "1.2.3.5", "1.2.4.1", "1.9.9.9",
        "5.6.7.8", "7.7.7.7", "7.7.7.8", "9.9.9.9", "2001:db8::1", "2001:db8::2", "2001:db9::1",
    ]
    # PostgreSQL's inet order: IPv4 before IPv6, numeric within a family.
    assert sorted(ips, key=lambda ip: (":" in ip, ipaddress.ip_address(ip))) == ips
    results = list(maxmind.lookup_many(ips))
    assert [ip for ip, _ in results] == ips
    assert [doc for _, doc in results] == [maxmind.lookup(ip) for ip in ips]
    docs = dict(results)
    assert docs["1.0.0.1"]["as_org"] == "CLOUDFLARENET"
    assert docs["1.1.0.1"]["asn"] is None
    assert docs["1.0.0.1"]["network"] == docs["1.1.0.1"]["network"] == "1.0.0.0/15"
    # Same networks in both databases: the document is reused rather than looked up again.
    assert docs["1.2.3.5"] is docs["1.2.3.4"]


def test_lookup_many_unsorted_input_is_still_correct(maxmind: MaxMindLookup) -> None:
    ips = ["9.9.9.9", "1.2.3.4", "2001:db8::1", "7.7.7.7", "1.2.3.4", "1.9.9.9"]
    assert [doc for _, doc in maxmind.lookup_many(ips)] == [maxmind.lookup(ip) for ip in ips]


def test_country_database(tmp_path: Path) -> None:
    write_country_db(
        tmp_path / "GeoLite2-Country.mmdb",
        {"1.2.3.0/24": country_record("FR", continent="EU", registered_country="DE")},
    )
    dbs = find_databases(str(tmp_path))
    assert dbs.location.kind is Kind.COUNTRY and dbs.asn is None
    with MaxMindLookup(dbs) as maxmind:
        assert maxmind.lookup("1.2.3.4") == {
            **expected(
                country="FR", registered_country="DE", continent="EU", network="1.2.3.0/24",
                is_anonymous_proxy=False, is_satellite_provider=False, is_anycast=False,
            ),
            "location_db": {"type": "GeoLite2-Country"},
            "asn_db": None,
        }


def test_isp_database_serves_as_asn_database(tmp_path: Path) -> None:
    write_city_db(tmp_path / "GeoLite2-City.mmdb", CITY_RECORDS)
    write_asn_db(tmp_path / "GeoIP2-ISP.mmdb", ASN_RECORDS, database_type="GeoIP2-ISP")
    dbs = find_databases(str(tmp_path))
    assert dbs.asn is not None and dbs.asn.kind is Kind.ISP
    with MaxMindLookup(dbs) as maxmind:
        doc = maxmind.lookup("9.9.9.9")
    assert (doc["asn"], doc["as_org"], doc["asn_network"]) == (19281, "QUAD9-AS-1", "9.9.9.0/24")
    assert doc["asn_db"] == {"type": "GeoIP2-ISP"}


# --- discovery ---------------------------------------------------------------------------


def _city(folder: Path, edition: str = "GeoLite2-City") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_city_db(folder / f"{edition}.mmdb", CITY_RECORDS, database_type=edition)


def _asn(folder: Path, edition: str = "GeoLite2-ASN") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_asn_db(folder / f"{edition}.mmdb", ASN_RECORDS, database_type=edition)


def test_provenance(dbs: MaxMindDatabases, geoip_dir: Path) -> None:
    assert not dbs.demo and dbs.notice is None
    assert dbs.provenance() == {
        "location_db": {
            "path": str(geoip_dir / "GeoLite2-City.mmdb"), "type": "GeoLite2-City",
            "build_epoch": DEFAULT_BUILD_EPOCH, "built_at": "2024-01-02T03:04:05+00:00",
        },
        "asn_db": {
            "path": str(geoip_dir / "GeoLite2-ASN.mmdb"), "type": "GeoLite2-ASN",
            "build_epoch": ASN_EPOCH, "built_at": "2024-01-02T04:04:05+00:00",
        },
        "demo": False,
    }


def test_edition_preference_beats_folder_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _city(first, "GeoLite2-City")
    _asn(first, "GeoIP2-ISP")
    best_city = _city(second, "GeoIP2-City")
    best_asn = _asn(second, "GeoLite2-ASN")
    dbs = find_databases(None, system_dirs=[str(first), str(second)])
    assert (dbs.location.path, dbs.asn and dbs.asn.path) == (best_city, best_asn)


def test_same_edition_earlier_folder_wins(tmp_path: Path) -> None:
    first = _city(tmp_path / "first")
    _city(tmp_path / "second")
    dbs = find_databases(None, system_dirs=[str(tmp_path / "first"), str(tmp_path / "second")])
    assert dbs.location.path == first


def test_city_preferred_over_country(tmp_path: Path) -> None:
    write_country_db(tmp_path / "GeoIP2-Country.mmdb", {"1.0.0.0/8": country_record()},
                     database_type="GeoIP2-Country")
    city = _city(tmp_path, "GeoLite2-City")
    assert find_databases(str(tmp_path)).location.path == city


def test_configured_dirs_replace_system_dirs(tmp_path: Path) -> None:
    _city(tmp_path / "system", "GeoIP2-City")
    _asn(tmp_path / "system")
    configured = tmp_path / "configured"
    configured.mkdir()
    country = write_country_db(
        configured / "GeoLite2-Country.mmdb", {"1.0.0.0/8": country_record()}
    )
    dbs = find_databases(str(configured), system_dirs=[str(tmp_path / "system")])
    assert (dbs.location.path, dbs.asn, dbs.demo) == (country, None, False)


def test_configured_dirs_are_colon_separated(tmp_path: Path) -> None:
    asn = _asn(tmp_path / "a")
    city = _city(tmp_path / "b")
    dbs = find_databases(os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert (dbs.location.path, dbs.asn and dbs.asn.path) == (city, asn)


def test_empty_configured_dir_is_an_error_not_demo(tmp_path: Path) -> None:
    with pytest.raises(MaxMindError, match="IPINTEL_GEOIP_DIR") as info:
        find_databases(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_configured_dir_with_only_asn_is_an_error(tmp_path: Path) -> None:
    _asn(tmp_path)
    with pytest.raises(MaxMindError, match="no MaxMind location database"):
        find_databases(str(tmp_path))


def test_missing_configured_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MaxMindError, match="not a folder"):
        find_databases(f"{tmp_path}{os.pathsep}{tmp_path / 'typo'}")


def test_asn_file_named_as_city_is_an_error(tmp_path: Path) -> None:
    wrong = write_asn_db(tmp_path / "GeoLite2-City.mmdb", ASN_RECORDS)
    # A usable lower-preference file must not be used instead.
    write_country_db(tmp_path / "GeoLite2-Country.mmdb", {"1.0.0.0/8": country_record()})
    with pytest.raises(MaxMindError) as info:
        find_databases(str(tmp_path))
    assert str(wrong) in str(info.value) and "'GeoLite2-ASN'" in str(info.value)


def test_city_file_named_as_asn_is_an_error(tmp_path: Path) -> None:
    _city(tmp_path)
    wrong = write_city_db(tmp_path / "GeoLite2-ASN.mmdb", CITY_RECORDS)
    with pytest.raises(MaxMindError) as info:
        find_databases(str(tmp_path))
    assert str(wrong) in str(info.value) and "'GeoLite2-City'" in str(info.value)


@pytest.mark.parametrize("configured", [True, False], ids=["configured", "system"])
def test_truncated_file_is_an_error(tmp_path: Path, configured: bool) -> None:
    good = _city(tmp_path / "good")
    broken = write_truncated_copy(good, tmp_path / "GeoLite2-City.mmdb")
    with pytest.raises(MaxMindError, match="cannot read MaxMind database") as info:
        if configured:
            find_databases(str(tmp_path))
        else:  # no silent fall-back to the demo data either
            find_databases(None, system_dirs=[str(tmp_path)])
    assert str(broken) in str(info.value)


def test_corrupt_data_section_fails_at_lookup(tmp_path: Path) -> None:
    broken = write_corrupt_data_copy(_city(tmp_path / "good"), tmp_path / "GeoLite2-City.mmdb")
    dbs = find_databases(str(tmp_path))
    with MaxMindLookup(dbs) as maxmind, pytest.raises(MaxMindError) as info:
        maxmind.lookup("1.2.3.4")
    assert str(broken) in str(info.value)


def test_file_replaced_after_discovery_is_an_error(tmp_path: Path) -> None:
    dbs = find_databases(str(_city(tmp_path).parent))
    write_city_db(
        tmp_path / "GeoLite2-City.mmdb", CITY_RECORDS, build_epoch=DEFAULT_BUILD_EPOCH + 1
    )
    with pytest.raises(MaxMindError, match="changed since it was found"):
        MaxMindLookup(dbs)


# --- demo fallback -----------------------------------------------------------------------


def test_demo_fallback(tmp_path: Path) -> None:
    dbs = find_databases(None, system_dirs=[str(tmp_path / "nothing-here")])
    assert dbs.demo and dbs.asn is None
    assert dbs.location.database_type == "GeoLite2-City"
    assert dbs.location.build_epoch == 1530653216  # 2018-07-03T21:26:56Z
    assert dbs.notice is not None
    assert "This product includes GeoLite2 data created by MaxMind" in dbs.notice
    for hint in ("2018-07-03", "old", "geoipupdate", "IPINTEL_GEOIP_DIR"):
        assert hint in dbs.notice
    assert dbs.provenance()["demo"] is True
    with MaxMindLookup(dbs) as maxmind:
        doc = maxmind.lookup("8.8.8.8")
    # What the 2018 build says about Google's resolver: US, no city, a /19.
    assert doc["found"] and doc["country"] == "US" and doc["continent"] == "NA"
    assert doc["network"] == "8.8.0.0/19"
    assert doc["location_db"] == {"type": "GeoLite2-City"}


def test_demo_location_with_system_asn(tmp_path: Path) -> None:
    asn = _asn(tmp_path)
    dbs = find_databases(None, system_dirs=[str(tmp_path)])
    assert dbs.demo and dbs.asn is not None and dbs.asn.path == asn
