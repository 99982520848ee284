"""`ipintel geo load` / `ipintel geo builds` (revision 0029): dated geolocation builds read from
generated .mmdb files (mmdb-writer) into ranges, loaded end to end through the CLI, a build loaded
again skipped before it is read, any load order, the GeoIP folders with MaxMind's dated layout,
files that are not builds, the loader role, and the snapshots that take the build of their day.
The merge itself is tested in tests/sql/load_geo_build and tests/sql/take_snapshots."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ipintel import cli, geo
from tests.conftest import PgServer
from tests.mmdb_factory import (
    DBIP_COUNTRY_TYPE,
    asn_record,
    country_record,
    ipinfo_record,
    write_asn_db,
    write_country_db,
    write_db,
    write_dbip_location_db,
    write_ipinfo_db,
)
from tests.test_cli_errors import one_line
from tests.test_roles import login_as  # noqa: F401

V6_LAST = "2a01:4f8:ffff:ffff:ffff:ffff:ffff:ffff"


def epoch(day: str) -> int:
    """Noon (UTC) of the day: the build time of a generated build."""
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp()) + 12 * 3600


def query(dsn: str, statement: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(statement, params).fetchall()


def execute(dsn: str, statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statements)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The command's exit code, stdout (each line's timing `(1.2 s)` as `(s)`) and stderr."""
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, re.sub(r"\(\d+\.\d s\)$", "(s)", out, flags=re.MULTILINE), err


def dbip_country(folder: Path, day: str, countries: dict[str, str]) -> Path:
    """A DB-IP Lite Country build of `day`, named as DB-IP publishes it (by month)."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_dbip_location_db(folder / f"dbip-country-lite-{day}.mmdb",
                                  {cidr: country_record(cc) for cidr, cc in countries.items()},
                                  database_type=DBIP_COUNTRY_TYPE, build_epoch=epoch(day))


# Three monthly builds: 81.2.69.0/24 is GB, then FR, then GB again; 5.6.0.0/16 stays DE.
MONTHS = {
    "2026-01-01": {"81.2.69.0/25": "GB", "81.2.69.128/25": "GB", "5.6.0.0/16": "DE", "2a01:4f8::/32": "DE"},
    "2026-02-01": {"81.2.69.0/24": "FR", "5.6.0.0/16": "DE", "2a01:4f8::/32": "DE"},
    "2026-03-01": {"81.2.69.0/24": "GB", "5.6.0.0/16": "DE"},
}


@pytest.fixture
def months(tmp_path: Path) -> list[Path]:
    return [dbip_country(tmp_path / "geoip", day, countries) for day, countries in MONTHS.items()]


@pytest.fixture
def other_db(pg_server: PgServer, migrated_template: str) -> Iterator[str]:
    name = f"ipintel_test_{uuid.uuid4().hex[:10]}"
    with pg_server.janitor(name, template=migrated_template):
        yield pg_server.dsn(name)


COUNTRY_RUNS = "SELECT edition, network_range::text AS r, country, valid::text AS valid FROM ipintel.geo_countries ORDER BY 1, 2, 4"


# --------------------------------------------------------------------------------------------
# Reading a build (no database)
# --------------------------------------------------------------------------------------------


def test_a_build_reads_as_ranges_of_one_country_and_of_one_as(tmp_path: Path) -> None:
    path = write_ipinfo_db(tmp_path / "ipinfo_lite.mmdb", {
        "1.2.0.0/17": ipinfo_record(174), "1.2.128.0/17": ipinfo_record(175), "1.3.0.0/16": ipinfo_record(None),
        "1.4.0.0/16": ipinfo_record(None, country_code="de"),  # not an ISO code as written: no country
        "9.9.9.0/24": ipinfo_record(19281, country_code="CH"),
        "2a01:4f8::/33": ipinfo_record(24940, country_code="DE"), "2a01:4f8:8000::/33": ipinfo_record(24940, country_code="DE"),
    }, build_epoch=epoch("2026-03-04"))
    build = geo.describe(path)
    assert (build.edition.source, build.edition.name, build.built_on) == ("ipinfo", "ipinfo_lite", date(2026, 3, 4))
    rows = list(geo.read(build))
    assert sorted(r for r in rows if r[2] is not None) == [
        ("1.2.0.0", "1.3.255.255", "US", None), ("2a01:4f8::", V6_LAST, "DE", None), ("9.9.9.0", "9.9.9.255", "CH", None)]
    assert sorted(r for r in rows if r[3] is not None) == [
        ("1.2.0.0", "1.2.127.255", None, 174), ("1.2.128.0", "1.2.255.255", None, 175),
        ("2a01:4f8::", V6_LAST, None, 24940), ("9.9.9.0", "9.9.9.255", None, 19281)]


@pytest.mark.parametrize(("database_type", "edition"), [
    ("GeoLite2-Country", ("maxmind", "geolite2_country")), ("GeoIP2-City", ("maxmind", "geoip2_city")),
    ("GeoLite2-ASN", ("maxmind", "geolite2_asn")), ("GeoIP2-ISP", ("maxmind", "geoip2_isp")),
    ("ipinfo ipinfo_lite.mmdb", ("ipinfo", "ipinfo_lite")), ("DBIP-City-Lite", ("dbip", "dbip_city_lite")),
    ("DBIP-Country-Lite", ("dbip", "dbip_country_lite")),
    ("DBIP-ASN-Lite (compat=GeoLite2-ASN)", ("dbip", "dbip_asn_lite")),
    ("GeoIP2-Anonymous-IP", None), ("GeoIP2-Connection-Type", None),
])
def test_editions_are_known_by_their_database_type(database_type: str, edition: tuple[str, str] | None) -> None:
    found = geo.edition_of(database_type)
    assert (None if found is None else (found.source, found.name)) == edition


# --------------------------------------------------------------------------------------------
# Through the CLI
# --------------------------------------------------------------------------------------------


def test_builds_load_through_the_cli_and_are_listed(db: str, cli_database: Callable[[str], None], months: list[Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    code, out, err = run(["geo", "load", str(months[0].parent)], capsys)
    assert code == 0, err
    assert out.splitlines() == [
        f"{months[0]}: dbip_country_lite 2026-01-01: 3 country ranges, 0 ASN ranges, 3 runs opened, 0 closed (s)",
        f"{months[1]}: dbip_country_lite 2026-02-01: 3 country ranges, 0 ASN ranges, 1 runs opened, 1 closed (s)",
        f"{months[2]}: dbip_country_lite 2026-03-01: 2 country ranges, 0 ASN ranges, 1 runs opened, 2 closed (s)",
    ]
    assert query(db, COUNTRY_RUNS) == [
        {"edition": "dbip_country_lite", "r": "2a01:4f8::/32", "country": "DE", "valid": "[2026-01-01,2026-02-02)"},
        {"edition": "dbip_country_lite", "r": "5.6.0.0/16", "country": "DE", "valid": "[2026-01-01,)"},
        {"edition": "dbip_country_lite", "r": "81.2.69.0/24", "country": "GB", "valid": "[2026-01-01,2026-01-02)"},
        {"edition": "dbip_country_lite", "r": "81.2.69.0/24", "country": "FR", "valid": "[2026-02-01,2026-02-02)"},
        {"edition": "dbip_country_lite", "r": "81.2.69.0/24", "country": "GB", "valid": "[2026-03-01,)"},
    ]
    builds = query(db, "SELECT e.source, b.built_on, b.build_epoch, b.file, b.sha256, b.database_type "
                       "FROM ipintel.geo_builds b JOIN ipintel.geo_editions e USING (edition) ORDER BY b.built_on")
    assert [(b["source"], b["built_on"], b["build_epoch"], b["file"], b["database_type"]) for b in builds] == [
        ("dbip", date.fromisoformat(day), epoch(day), str(path), DBIP_COUNTRY_TYPE) for day, path in zip(MONTHS, months, strict=True)]
    assert all(len(b["sha256"]) == 64 for b in builds)
    assert query(db, "SELECT count(*) AS n FROM ipintel_staging.geo_ranges")[0]["n"] == 0
    code, out, _ = run(["geo", "builds"], capsys)
    assert code == 0
    assert out.splitlines() == [
        f"dbip:build:{day} (dbip_country_lite, max age 35 days): {n} country ranges, 0 ASN ranges, from {path}"
        for (day, path, n) in zip(MONTHS, months, (3, 3, 2), strict=True)]


def test_a_build_loaded_again_is_skipped_before_it_is_read(db: str, cli_database: Callable[[str], None],
                                                         months: list[Path], monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    assert run(["geo", "load", *map(str, months)], capsys)[0] == 0
    before = query(db, COUNTRY_RUNS)
    build_id = query(db, "SELECT build_id FROM ipintel.geo_builds WHERE built_on = '2026-02-01'")[0]["build_id"]

    def never(build: geo.BuildFile) -> Any:
        raise AssertionError(f"{build.path} was read")

    monkeypatch.setattr(geo, "read", never)
    code, out, err = run(["geo", "load", str(months[1])], capsys)
    assert (code, err) == (0, "")
    assert out == f"{months[1]}: dbip_country_lite 2026-02-01: skipped, already loaded (build {build_id}) (s)\n"
    assert query(db, COUNTRY_RUNS) == before


def test_another_file_for_a_loaded_build_is_not_merged(db: str, cli_database: Callable[[str], None],
                                                       months: list[Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    assert run(["geo", "load", str(months[1])], capsys)[0] == 0
    before = query(db, COUNTRY_RUNS)
    other = dbip_country(tmp_path / "elsewhere", "2026-02-01", {"81.2.69.0/24": "NL"})
    code, out, err = run(["geo", "load", str(other)], capsys)
    assert (code, out) == (1, "")
    build_id = query(db, "SELECT build_id FROM ipintel.geo_builds")[0]["build_id"]
    assert one_line(err) == (f"ipintel geo load: {other}: dbip_country_lite 2026-02-01: build {build_id} was loaded from another "
                             f"file ({months[1]}; its sha256 differs): skipped, nothing replaced")
    assert query(db, COUNTRY_RUNS) == before


def test_any_order_gives_the_same_tables(db: str, other_db: str, cli_database: Callable[[str], None],
                                        months: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asns = write_asn_db(tmp_path / "GeoLite2-ASN.mmdb", {"81.2.69.0/24": asn_record(64500, "EXAMPLE")},
                        build_epoch=epoch("2026-02-03"))
    tables = ("SELECT edition, network_range::text, country, NULL::bigint AS asn, valid::text FROM ipintel.geo_countries "
              "UNION ALL SELECT edition, network_range::text, NULL, asn, valid::text FROM ipintel.geo_asns ORDER BY 1, 2, 3, 4, 5")
    for dsn, order in ((db, [*months, asns]), (other_db, [months[2], asns, months[0], months[1]])):
        cli_database(dsn)
        for path in order:  # one command per file: `geo load` sorts the files it is given
            assert run(["geo", "load", str(path)], capsys)[0] == 0
    assert query(other_db, tables) == query(db, tables)
    assert {r["edition"] for r in query(db, tables)} == {"dbip_country_lite", "geolite2_asn"}


def test_the_geoip_folders_and_maxminds_dated_layout(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "GeoIP"
    for day in ("20260303", "20260306"):
        (folder / f"GeoLite2-Country_{day}").mkdir(parents=True)
        write_country_db(folder / f"GeoLite2-Country_{day}" / "GeoLite2-Country.mmdb",
                         {"81.2.69.0/24": country_record("GB")}, build_epoch=epoch(f"{day[:4]}-{day[4:6]}-{day[6:]}"))
    other = write_db(folder / "GeoIP2-Anonymous-IP.mmdb", "GeoIP2-Anonymous-IP", {"1.0.0.0/24": {"is_anonymous": True}})
    cli_database(db)
    monkeypatch.setenv("IPINTEL_GEOIP_DIR", str(folder))
    code, out, err = run(["geo", "load"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (f"{other}: passed over: a 'GeoIP2-Anonymous-IP' database is not a geolocation build ipintel "
                        "keeps (MaxMind City, Country, ASN or ISP; IPinfo Lite; DB-IP Lite City, Country or ASN)")
    assert [line.split(": ")[1] for line in lines[1:]] == ["geolite2_country 2026-03-03", "geolite2_country 2026-03-06"]
    assert query(db, COUNTRY_RUNS) == [
        {"edition": "geolite2_country", "r": "81.2.69.0/24", "country": "GB", "valid": "[2026-03-03,)"}]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing.mmdb", "{path}: no such file"),
    (lambda d: write(d / "junk.mmdb", b"not a database\n"), "{path}: not a readable .mmdb file: "),
    (lambda d: write_db(d / "GeoIP2-Anonymous-IP.mmdb", "GeoIP2-Anonymous-IP", {"1.0.0.0/24": {"is_anonymous": True}}),
     "{path}: a 'GeoIP2-Anonymous-IP' database is not a geolocation build ipintel keeps"),
], ids=["missing", "not mmdb", "not a geolocation edition"])
def test_files_that_are_not_builds_stop_everything_before_loading(
        db: str, cli_database: Callable[[str], None], months: list[Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path], message: str) -> None:
    cli_database(db)
    path = make(tmp_path)
    code, out, err = run(["geo", "load", str(months[0]), str(path)], capsys)
    assert (code, out) == (2, "")
    assert one_line(err).startswith("ipintel geo load: " + message.format(path=path))
    assert query(db, "SELECT count(*) AS n FROM ipintel.geo_builds")[0]["n"] == 0


def test_the_loader_role_loads_builds_and_the_snapshots_take_them(
        db: str, login_as: Callable[[str], str], cli_database: Callable[[str], None],  # noqa: F811
        months: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(login_as("ipintel_loader"))
    assert run(["geo", "load", *map(str, months)], capsys)[0] == 0
    execute(db, """
        UPDATE ipintel.enrichment_policy SET enabled = false;
        INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
        VALUES ('81.2.69.7', '2026-01-10', '2026-03-10', 3);
        INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
            ('january', '2026-01-10 10:00Z', '2026-01-10 10:01Z', '81.2.69.7'),
            ('february', '2026-02-10 10:00Z', '2026-02-10 10:01Z', '81.2.69.7'),
            ('march', '2026-03-10 10:00Z', '2026-03-10 10:01Z', '81.2.69.7')""")
    with psycopg.connect(login_as("ipintel_loader"), autocommit=True) as conn:
        assert conn.execute("SELECT ipintel.take_snapshots()").fetchone() == (3,)
    assert query(db, "SELECT session_id, snapshot_country, snapshot_country_source FROM ipintel.session_summaries "
                     "ORDER BY first_event_at") == [
        {"session_id": "january", "snapshot_country": "GB", "snapshot_country_source": "dbip:build:2026-01-01"},
        {"session_id": "february", "snapshot_country": "FR", "snapshot_country_source": "dbip:build:2026-02-01"},
        {"session_id": "march", "snapshot_country": "GB", "snapshot_country_source": "dbip:build:2026-03-01"}]


def test_old_builds_are_forgotten_as_if_never_loaded(db: str, other_db: str, cli_database: Callable[[str], None],
                                                     months: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(other_db)
    assert run(["geo", "load", str(months[2])], capsys)[0] == 0
    cli_database(db)
    assert run(["geo", "load", *map(str, months)], capsys)[0] == 0
    code, out, err = run(["geo", "forget", "dbip_country_lite"], capsys)
    assert (code, err) == (0, "")
    assert out == "dbip_country_lite: 2 builds but the latest forgotten, 3 runs deleted, 1 cut\n"
    assert query(db, COUNTRY_RUNS) == query(other_db, COUNTRY_RUNS)
    assert [r["built_on"] for r in query(db, "SELECT built_on FROM ipintel.geo_builds")] == [date(2026, 3, 1)]
    code, out, err = run(["geo", "forget", "geolite2_city", "--before", "2026-01-01"], capsys)
    assert (code, out) == (2, "")
    assert one_line(err) == ("ipintel geo forget: no geolocation edition 'geolite2_city' is loaded "
                             "(ipintel geo builds lists them)")
