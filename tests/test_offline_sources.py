"""IPinfo Lite and DB-IP Lite sources: finding their files (the newest build), type checks and the
documents their lookups give, on generated .mmdb files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipintel.sources import dbip, ipinfo, mmdb
from tests.mmdb_factory import (
    DBIP_COUNTRY_TYPE,
    DEFAULT_BUILD_EPOCH,
    asn_record,
    city_record,
    country_record,
    ipinfo_record,
    write_city_db,
    write_corrupt_data_copy,
    write_dbip_asn_db,
    write_dbip_location_db,
    write_ipinfo_db,
)

DAY = 86_400
IPINFO_RECORDS = {
    "1.0.0.0/8": ipinfo_record(None, country_code="AU", country="Australia", continent_code="OC", continent="Oceania"),
    "1.2.0.0/16": ipinfo_record(174, "Cogent Communications", as_domain="cogentco.com"),
    "2a01:4f8::/32": ipinfo_record(24940, "Hetzner Online GmbH", country_code="DE", country="Germany",
                                   continent_code="EU", continent="Europe", as_domain="hetzner.com"),
}
DBIP_CITY = {
    "1.2.0.0/16": city_record("US", "Ashburn", subdivisions=("VA",), latitude=39.04, longitude=-77.49),
    "5.6.7.0/24": city_record("JP", None, continent="AS", subdivisions=(), latitude=35.69, longitude=139.69),
}
DBIP_ASN = {
    "1.2.0.0/16": asn_record(64501, "DBIP-AS"),
    "9.9.9.0/24": asn_record(19281, "Quad9"),
}


def test_ipinfo_documents_keep_its_fields_and_parse_the_as_number(tmp_path: Path) -> None:
    write_ipinfo_db(tmp_path / "ipinfo_lite.mmdb", IPINFO_RECORDS)
    db = ipinfo.find_database(str(tmp_path))
    assert db is not None and (db.database_type, db.build_epoch) == ("ipinfo ipinfo_lite.mmdb", DEFAULT_BUILD_EPOCH)
    with ipinfo.IpinfoLookup(db) as lookup:
        assert lookup.lookup("1.2.3.4") == {
            "found": True, "asn": 174, "as_name": "Cogent Communications", "as_domain": "cogentco.com",
            "country_code": "US", "country": "United States", "continent_code": "NA", "continent": "North America",
            "network": "1.2.0.0/16"}
        assert lookup.lookup("2a01:4f8::1")["asn"] == 24940
        # Geolocated, but no AS announces it: no ASN (and no AS name).
        no_as = lookup.lookup("1.9.9.9")
        assert (no_as["found"], no_as["asn"], no_as["as_name"], no_as["country_code"]) == (True, None, None, "AU")
        assert lookup.lookup("45.33.32.156") == {
            "found": False, "asn": None, "as_name": None, "as_domain": None, "country_code": None, "country": None,
            "continent_code": None, "continent": None, "network": None}


@pytest.mark.parametrize(("text", "number"), [("AS174", 174), ("as13335", 13335), ("AS", None), ("174", None),
                                              ("AS174 ", None), (174, None), (None, None)])
def test_ipinfo_as_numbers(text: object, number: int | None) -> None:
    assert ipinfo.parse_asn(text) == number


def test_the_newest_ipinfo_build_is_read_whatever_its_name_or_folder(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_ipinfo_db(first / "ipinfo_lite.mmdb", IPINFO_RECORDS, build_epoch=DEFAULT_BUILD_EPOCH + 2 * DAY)
    write_ipinfo_db(first / "ipinfo_lite-older.mmdb", IPINFO_RECORDS, build_epoch=DEFAULT_BUILD_EPOCH)
    write_ipinfo_db(second / "ipinfo_lite-2024-01-05.mmdb", IPINFO_RECORDS, build_epoch=DEFAULT_BUILD_EPOCH + 3 * DAY)
    db = ipinfo.find_database(f"{first}:{second}")
    assert db is not None and (db.path, db.build_epoch) == (second / "ipinfo_lite-2024-01-05.mmdb",
                                                            DEFAULT_BUILD_EPOCH + 3 * DAY)
    # The same build in two folders: the earlier folder's.
    write_ipinfo_db(first / "ipinfo_lite-copy.mmdb", IPINFO_RECORDS, build_epoch=DEFAULT_BUILD_EPOCH + 3 * DAY)
    db = ipinfo.find_database(f"{first}:{second}")
    assert db is not None and db.path == first / "ipinfo_lite-copy.mmdb"


def test_not_installed_is_none_and_a_bad_file_or_folder_is_an_error(tmp_path: Path) -> None:
    assert ipinfo.find_database(str(tmp_path)) is None
    assert dbip.find_databases(str(tmp_path)) is None
    assert ipinfo.find_database(None, system_dirs=[str(tmp_path / "nothing-here")]) is None
    with pytest.raises(mmdb.OfflineDatabaseError, match="IPINTEL_GEOIP_DIR names .*missing, which is not a folder"):
        ipinfo.find_database(str(tmp_path / "missing"))
    # A MaxMind file under IPinfo's name is refused, not read as IPinfo's.
    write_city_db(tmp_path / "ipinfo_lite.mmdb", {"1.2.0.0/16": city_record("US")})
    with pytest.raises(mmdb.OfflineDatabaseError,
                       match=r"ipinfo_lite.mmdb holds a 'GeoLite2-City' database, not an IPinfo Lite database"):
        ipinfo.find_database(str(tmp_path))
    (tmp_path / "dbip-asn-lite-2026-11.mmdb").write_bytes(b"not a database")
    with pytest.raises(mmdb.OfflineDatabaseError, match=r"cannot read database .*dbip-asn-lite-2026-11.mmdb"):
        dbip.find_databases(str(tmp_path))


def test_an_impossible_build_time_is_refused(tmp_path: Path) -> None:
    write_ipinfo_db(tmp_path / "ipinfo_lite.mmdb", IPINFO_RECORDS, build_epoch=2**64 - 1)
    with pytest.raises(mmdb.OfflineDatabaseError, match=r"impossible build time .*not an IPinfo Lite build"):
        ipinfo.find_database(str(tmp_path))


def test_dbip_city_and_asn_documents(tmp_path: Path) -> None:
    write_dbip_location_db(tmp_path / "dbip-city-lite-2024-01.mmdb", DBIP_CITY)
    write_dbip_asn_db(tmp_path / "dbip-asn-lite-2024-01.mmdb", DBIP_ASN)
    dbs = dbip.find_databases(str(tmp_path))
    assert dbs is not None and dbs.location is not None and dbs.asn is not None
    assert (dbs.location.database_type, dbs.asn.database_type) == ("DBIP-City-Lite", "DBIP-ASN-Lite (compat=GeoLite2-ASN)")
    with dbip.DbipLookup(dbs) as lookup:
        assert lookup.lookup("1.2.3.4") == {
            "found": True, "country": "US", "continent": "NA", "city": "Ashburn", "subdivision": "VA",
            "latitude": 39.04, "longitude": -77.49, "network": "1.2.0.0/16",
            "asn": 64501, "as_name": "DBIP-AS", "asn_network": "1.2.0.0/16"}
        city_only = lookup.lookup("5.6.7.8")
        assert (city_only["country"], city_only["city"], city_only["asn"], city_only["asn_network"]) == \
            ("JP", None, None, None)
        asn_only = lookup.lookup("9.9.9.9")
        assert (asn_only["found"], asn_only["country"], asn_only["asn"], asn_only["as_name"]) == \
            (True, None, 19281, "Quad9")
        assert lookup.lookup("45.33.32.156")["found"] is False


def test_dbip_prefers_city_to_country_reads_the_newest_month_and_works_with_one_file(tmp_path: Path) -> None:
    write_dbip_location_db(tmp_path / "dbip-country-lite-2024-02.mmdb", {"1.2.0.0/16": country_record("CA")},
                           database_type=DBIP_COUNTRY_TYPE, build_epoch=DEFAULT_BUILD_EPOCH + 40 * DAY)
    dbs = dbip.find_databases(str(tmp_path))
    assert dbs is not None and dbs.asn is None and dbs.location is not None
    assert dbs.location.database_type == "DBIP-Country-Lite"
    with dbip.DbipLookup(dbs) as lookup:
        assert (lookup.lookup("1.2.3.4")["country"], lookup.lookup("1.2.3.4")["asn"]) == ("CA", None)

    write_dbip_location_db(tmp_path / "dbip-city-lite-2024-01.mmdb", DBIP_CITY)
    write_dbip_location_db(tmp_path / "dbip-city-lite-2024-02.mmdb",
                           {"1.2.0.0/16": city_record("MX", "Monterrey", subdivisions=())},
                           build_epoch=DEFAULT_BUILD_EPOCH + 31 * DAY)
    dbs = dbip.find_databases(str(tmp_path))
    assert dbs is not None and dbs.location is not None
    assert dbs.location.path.name == "dbip-city-lite-2024-02.mmdb"
    assert dbs.provenance()["location_db"]["build_epoch"] == DEFAULT_BUILD_EPOCH + 31 * DAY


def test_lookup_many_reuses_the_record_within_a_network_and_finds_corruption(tmp_path: Path) -> None:
    write_ipinfo_db(tmp_path / "good.mmdb", IPINFO_RECORDS)
    write_corrupt_data_copy(tmp_path / "good.mmdb", tmp_path / "ipinfo_lite.mmdb")
    (tmp_path / "good.mmdb").unlink()
    db = ipinfo.find_database(str(tmp_path))
    assert db is not None
    with ipinfo.IpinfoLookup(db) as lookup, pytest.raises(mmdb.OfflineDatabaseError, match="corrupt database"):
        list(lookup.lookup_many(["1.2.3.4"]))

    write_ipinfo_db(tmp_path / "ipinfo_lite.mmdb", IPINFO_RECORDS)
    db = ipinfo.find_database(str(tmp_path))
    assert db is not None
    with ipinfo.IpinfoLookup(db) as lookup:
        answers = list(lookup.lookup_many(["1.2.3.4", "1.2.200.1", "1.3.0.1"]))
    assert answers[0][1] is answers[1][1], "the same /16: one record decoded"
    assert answers[2][1]["asn"] is None


def test_a_file_replaced_after_it_was_found_is_refused(tmp_path: Path) -> None:
    write_ipinfo_db(tmp_path / "ipinfo_lite.mmdb", IPINFO_RECORDS)
    db = ipinfo.find_database(str(tmp_path))
    assert db is not None
    write_ipinfo_db(tmp_path / "ipinfo_lite.mmdb", IPINFO_RECORDS, build_epoch=DEFAULT_BUILD_EPOCH + DAY)
    with pytest.raises(mmdb.OfflineDatabaseError, match="changed since it was found"):
        ipinfo.IpinfoLookup(db)
