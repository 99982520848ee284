"""`ipintel enrich` with the MaxMind pass, end to end on a real PostgreSQL and generated .mmdb files.

Every test seeds the same small inventory (IPv4 and IPv6, a bogon of each family, sessions),
runs the pass through `ipintel.enrich.enrich` or the CLI, and checks what landed in the tiers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from rich.console import Console

from ipintel import cli, passes
from ipintel.config import Settings
from ipintel.enrich import EnrichOptions, EnrichSummary, enrich
from ipintel.locks import Lock
from ipintel.passes import DbipPass, IpinfoPass, MaxMindPass
from ipintel.progress import Reporter
from ipintel.sources import maxmind
from tests.mmdb_factory import (
    DEFAULT_BUILD_EPOCH,
    asn_record,
    city_record,
    write_asn_db,
    write_city_db,
    write_corrupt_data_copy,
    write_truncated_copy,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CITY_EPOCH = DEFAULT_BUILD_EPOCH
ASN_EPOCH = DEFAULT_BUILD_EPOCH + 3600
SECRET = "sentinel-greynoise-key-7c1e0d5b"

CITY_RECORDS = {
    "1.0.0.0/8": city_record("AU", "Sydney", continent="OC", subdivisions=("NSW",),
                             latitude=-33.8688, longitude=151.2093, accuracy_radius=500),
    "1.2.3.0/24": city_record("US", "Mountain View", subdivisions=("CA",)),
    # In the City file only (the ASN file has no network for it); an anonymous proxy.
    "5.6.7.0/24": city_record("JP", None, continent="AS", registered_country="US", subdivisions=(),
                              latitude=35.69, longitude=139.69, accuracy_radius=100,
                              is_anonymous_proxy=True),
    "2a01:4f8::/32": city_record("DE", "Falkenstein", continent="EU", subdivisions=("SN",),
                                 latitude=50.4779, longitude=12.3713, accuracy_radius=200),
    # Bogon space with data: a bogon that were looked up would get a country.
    "10.0.0.0/8": city_record("US", "Nowhere", subdivisions=()),
}
ASN_RECORDS = {
    "1.0.0.0/16": asn_record(13335, "CLOUDFLARENET"),
    "1.2.0.0/16": asn_record(15169, "GOOGLE"),
    "9.9.9.0/24": asn_record(19281, "QUAD9-AS-1"),  # in the ASN file only
    "2a01:4f8::/32": asn_record(24940, "Hetzner Online GmbH"),
    "10.0.0.0/8": asn_record(64512, "PRIVATE"),
}

# ip -> (first_seen, last_seen); sessions below keep session_count true.
IPS = {
    "1.0.0.1": ("2026-01-03 08:00+00", "2026-01-03 09:00+00"),
    "1.2.3.4": ("2026-01-01 10:00+00", "2026-01-02 11:00+00"),
    "1.2.3.5": ("2026-01-01 12:00+00", "2026-01-01 12:05+00"),
    "1.9.9.9": ("2026-01-04 00:00+00", "2026-01-04 00:10+00"),   # City /8, no ASN network
    "5.6.7.8": ("2026-01-02 00:00+00", "2026-01-02 00:01+00"),   # City only
    "9.9.9.9": ("2026-01-02 05:00+00", "2026-01-02 05:01+00"),   # ASN only
    "45.33.32.156": ("2026-01-05 00:00+00", "2026-01-05 00:02+00"),  # in no network
    "2a01:4f8::1": ("2026-01-06 00:00+00", "2026-01-06 03:00+00"),
    "10.1.2.3": ("2026-01-01 00:00+00", "2026-01-01 00:01+00"),  # bogon (RFC 1918)
    "2001:db8::5": ("2026-01-01 00:00+00", "2026-01-01 00:02+00"),  # bogon (documentation)
}
BOGONS = {"10.1.2.3", "2001:db8::5"}
PUBLIC = sorted(set(IPS) - BOGONS)
SESSIONS = {  # session_id -> (source_ip, first_event_at)
    "s-google-1": ("1.2.3.4", "2026-01-01 10:00+00"),
    "s-google-2": ("1.2.3.4", "2026-01-02 11:00+00"),
    "s-google-3": ("1.2.3.5", "2026-01-01 12:00+00"),
    "s-proxy": ("5.6.7.8", "2026-01-02 00:00+00"),
    "s-nowhere": ("45.33.32.156", "2026-01-05 00:00+00"),
    "s-hetzner": ("2a01:4f8::1", "2026-01-06 00:00+00"),
    "s-bogon": ("10.1.2.3", "2026-01-01 00:00+00"),
}

CITY_DB = {"type": "GeoLite2-City"}
ASN_DB = {"type": "GeoLite2-ASN"}
NO_LOCATION: dict[str, Any] = dict.fromkeys(
    ("country", "registered_country", "continent", "city", "subdivision", "latitude", "longitude",
     "accuracy_radius", "network", "is_anonymous_proxy", "is_satellite_provider", "is_anycast"))
NO_ASN: dict[str, Any] = {"asn": None, "as_org": None, "asn_network": None}


def location(country: str, continent: str, city: str | None, subdivision: str | None, lat: float, lon: float,
             radius: int, network: str, *, registered: str | None = None, proxy: bool = False) -> dict[str, Any]:
    return {"country": country, "registered_country": registered or country, "continent": continent,
            "city": city, "subdivision": subdivision, "latitude": lat, "longitude": lon,
            "accuracy_radius": radius, "network": network, "is_anonymous_proxy": proxy,
            "is_satellite_provider": False, "is_anycast": False}


US = location("US", "NA", "Mountain View", "CA", 37.386, -122.0838, 1000, "1.2.3.0/24")


def au(network: str) -> dict[str, Any]:
    return location("AU", "OC", "Sydney", "NSW", -33.8688, 151.2093, 500, network)


# The MaxMind document of each public IP: facts only (fetch time and build are in enrichment_state).
EXPECTED = {
    "1.0.0.1": {**au("1.0.0.0/15"), "asn": 13335, "as_org": "CLOUDFLARENET", "asn_network": "1.0.0.0/16"},
    "1.2.3.4": {**US, "asn": 15169, "as_org": "GOOGLE", "asn_network": "1.2.0.0/16"},
    "1.2.3.5": {**US, "asn": 15169, "as_org": "GOOGLE", "asn_network": "1.2.0.0/16"},
    "1.9.9.9": {**au("1.8.0.0/13"), **NO_ASN},
    "5.6.7.8": {**location("JP", "AS", None, None, 35.69, 139.69, 100, "5.6.7.0/24", registered="US",
                           proxy=True), **NO_ASN},
    "9.9.9.9": {**NO_LOCATION, "asn": 19281, "as_org": "QUAD9-AS-1", "asn_network": "9.9.9.0/24"},
    "45.33.32.156": {**NO_LOCATION, **NO_ASN},
    "2a01:4f8::1": {**location("DE", "EU", "Falkenstein", "SN", 50.4779, 12.3713, 200, "2a01:4f8::/32"),
                    "asn": 24940, "as_org": "Hetzner Online GmbH", "asn_network": "2a01:4f8::/32"},
}
for _ip, _doc in EXPECTED.items():
    _doc.update(found=_ip != "45.33.32.156", location_db=CITY_DB, asn_db=ASN_DB)
EXPECTED_ASN = {"1.0.0.1": 13335, "1.2.3.4": 15169, "1.2.3.5": 15169, "9.9.9.9": 19281, "2a01:4f8::1": 24940}


# --- helpers -------------------------------------------------------------------------------


def seed(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen) VALUES (%s, %s, %s)",
                [(ip, first, last) for ip, (first, last) in IPS.items()])
            cur.executemany(
                """INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at,
                                                          protocol, source_ip, event_count)
                   VALUES (%s, 'sensor-1', %s, %s::timestamptz + interval '1 minute', 'ssh', %s, 5)""",
                [(sid, at, at, ip) for sid, (ip, at) in SESSIONS.items()])
        conn.execute("""UPDATE ipintel.ip_inventory i SET session_count = s.n
                        FROM (SELECT source_ip, count(*) AS n FROM ipintel.session_summaries GROUP BY 1) s
                        WHERE s.source_ip = i.ip""")


def write_good_dbs(folder: Path, *, asn_records: dict[str, Any] = ASN_RECORDS, asn_epoch: int = ASN_EPOCH,
                   city_records: dict[str, Any] = CITY_RECORDS, city_epoch: int = CITY_EPOCH) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_city_db(folder / "GeoLite2-City.mmdb", city_records, build_epoch=city_epoch)
    write_asn_db(folder / "GeoLite2-ASN.mmdb", asn_records, build_epoch=asn_epoch)
    return folder


def settings(dsn: str, geoip_dir: Path) -> Settings:
    return Settings(database_url=dsn, geoip_dir=str(geoip_dir), cymru_addr="127.0.0.1:9",
                    greynoise_url="http://127.0.0.1:9", greynoise_key=None)


def run_maxmind(dsn: str, geoip_dir: Path, **options: Any) -> EnrichSummary:
    s = settings(dsn, geoip_dir)
    return enrich(s, EnrichOptions(sources=("maxmind",), **options),
                  reporter=Reporter(interactive=False), passes=[MaxMindPass(s, system_dirs=())])


def run_uninstalled_offline_passes(dsn: str, geoip_dir: Path) -> EnrichSummary:
    """The IPinfo Lite and DB-IP Lite passes over a folder without their files: skipped, so no
    snapshot waits for them (as after a whole `ipintel enrich` on such a machine)."""
    s = settings(dsn, geoip_dir)
    summary = enrich(s, EnrichOptions(sources=("ipinfo", "dbip")), reporter=Reporter(interactive=False),
                     passes=[IpinfoPass(s, system_dirs=()), DbipPass(s, system_dirs=())])
    assert [p.status for p in summary.passes] == ["skipped", "skipped"]
    return summary


def rows(dsn: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()


def one(dsn: str, query: str, params: Any = None) -> dict[str, Any]:
    found = rows(dsn, query, params)
    assert len(found) == 1, found
    return found[0]


def inventory(dsn: str) -> dict[str, dict[str, Any]]:
    return {r["host"]: r for r in rows(dsn, "SELECT host(ip), * FROM ipintel.ip_inventory")}


def answered(dsn: str) -> dict[str, dict[str, Any]]:
    """enrichment_state of MaxMind per IP: fetched_at, build, changed_at."""
    return {r["host"]: r for r in rows(dsn, "SELECT host(ip), fetched_at, build, changed_at "
                                            "FROM ipintel.enrichment_state WHERE source = 'maxmind'")}


def state(dsn: str) -> dict[str, Any]:
    """Everything a MaxMind merge writes, to compare before and after a failed run."""
    return {
        "ip_inventory": rows(dsn, "SELECT * FROM ipintel.ip_inventory ORDER BY ip"),
        "enrichment_state": rows(dsn, "SELECT * FROM ipintel.enrichment_state ORDER BY ip, source"),
        "asn_inventory": rows(dsn, "SELECT * FROM ipintel.asn_inventory ORDER BY asn"),
        "ip_asn_history": rows(dsn, "SELECT * FROM ipintel.ip_asn_history ORDER BY history_id"),
        "session_summaries": rows(dsn, "SELECT * FROM ipintel.session_summaries ORDER BY session_id"),
    }


def runs(dsn: str) -> list[dict[str, Any]]:
    return rows(dsn, "SELECT * FROM ipintel.enrichment_runs ORDER BY run_id")


def flat(text: str) -> str:
    """Console output without the line breaks rich inserts in long lines."""
    return "".join(text.split())


@pytest.fixture
def seeded(db: str) -> str:
    seed(db)
    return db


@pytest.fixture
def geoip(tmp_path: Path) -> Path:
    return write_good_dbs(tmp_path / "geoip")


@pytest.fixture
def looked_up(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every IP handed to a MaxMind lookup (the real one still runs)."""
    seen: list[str] = []
    original = maxmind.MaxMindLookup.lookup_many

    def spy(self: maxmind.MaxMindLookup, ips: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        ips = list(ips)
        seen.extend(ips)
        return original(self, ips)

    monkeypatch.setattr(maxmind.MaxMindLookup, "lookup_many", spy)
    return seen


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, cli_database: Callable[[str], None], seeded: str, geoip: Path) -> str:
    """Environment for `ipintel.cli.main`: this test's database and generated files only."""
    cli_database(seeded)
    monkeypatch.setenv("IPINTEL_GEOIP_DIR", str(geoip))
    return seeded


def subprocess_env(dsn: str, geoip_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPINTEL_")}
    env |= {"DATABASE_URL": dsn, "IPINTEL_GEOIP_DIR": str(geoip_dir), "COLUMNS": "200",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "loader"), env.get("PYTHONPATH")]))}
    return env


# --- the first run -------------------------------------------------------------------------


def test_first_run_merges_exact_values(seeded: str, geoip: Path, looked_up: list[str]) -> None:
    before = datetime.now(UTC)
    summary = run_maxmind(seeded, geoip)
    after = datetime.now(UTC)

    # Bogons are never looked up, not even in an offline file.
    assert sorted(looked_up) == PUBLIC
    [p] = summary.passes
    assert (p.source, p.status, p.due, p.fetched, p.merged, p.failed) == ("maxmind", "succeeded", 8, 8, 8, 0)
    assert summary.exit_code == 0
    # s-nowhere's IP has neither ASN nor country in MaxMind: its snapshot waits for Team Cymru.
    assert summary.snapshots == len(SESSIONS) - 1

    inv = inventory(seeded)
    for ip in PUBLIC:
        assert inv[ip]["enrichment"] == {"maxmind": EXPECTED[ip]}, ip
    # Freshness is state beside the document: one batch, one fetch time within the run, the build
    # of the newer file, and the facts known since that fetch. Bogons have no state: never fetched.
    fresh = answered(seeded)
    assert set(fresh) == set(PUBLIC)
    stamp = fresh["1.2.3.4"]["fetched_at"]
    assert before <= stamp <= after
    assert {(f["fetched_at"], f["build"], f["changed_at"]) for f in fresh.values()} == {(stamp, ASN_EPOCH, stamp)}

    # Generated columns follow the merged document.
    assert {ip: (r["geo_country"], r["ip_type"], r["is_bogon"], r["ip_family"]) for ip, r in inv.items()} == {
        "1.0.0.1": ("AU", "routed", False, 4),
        "1.2.3.4": ("US", "routed", False, 4),
        "1.2.3.5": ("US", "routed", False, 4),
        "1.9.9.9": ("AU", "unknown", False, 4),       # located, but no source gave an ASN
        "5.6.7.8": ("JP", "anonymizer", False, 4),
        "9.9.9.9": ("XX", "routed", False, 4),        # found in the ASN file only: no country
        "45.33.32.156": ("XX", "unknown", False, 4),  # a real "not found" answer
        "2a01:4f8::1": ("DE", "routed", False, 6),
        "10.1.2.3": ("XX", "bogon", True, 4),
        "2001:db8::5": ("XX", "bogon", True, 6),
    }
    for ip in BOGONS:
        assert inv[ip]["enrichment"] == {} and inv[ip]["current_asn"] is None
    assert {ip: r["current_asn"] for ip, r in inv.items() if r["current_asn"] is not None} == EXPECTED_ASN

    # asn_inventory: names from the ASN file, counts kept true by SQL.
    asns = rows(seeded, "SELECT asn, as_name, ip_count, session_count, first_seen, last_seen, "
                        "sources -> 'maxmind' AS src FROM ipintel.asn_inventory ORDER BY asn")
    assert [(a["asn"], a["as_name"], a["ip_count"], a["session_count"]) for a in asns] == [
        (13335, "CLOUDFLARENET", 1, 0),
        (15169, "GOOGLE", 2, 3),
        (19281, "QUAD9-AS-1", 1, 0),
        (24940, "Hetzner Online GmbH", 1, 1),
    ]
    assert all(a["src"] == {"as_name": a["as_name"]} for a in asns)
    google = next(a for a in asns if a["asn"] == 15169)
    assert google["first_seen"] == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert google["last_seen"] == datetime(2026, 1, 2, 11, tzinfo=UTC)
    assert one(seeded, """SELECT count(*) = 0 AS ok FROM ipintel.asn_inventory a
                          CROSS JOIN LATERAL (SELECT count(*) AS ips, coalesce(sum(i.session_count), 0) AS sessions
                                              FROM ipintel.ip_inventory i WHERE i.current_asn = a.asn) t
                          WHERE (a.ip_count, a.session_count) IS DISTINCT FROM (t.ips, t.sessions)""")["ok"]

    # ip_asn_history: one open range per IP the ASN file knows, from the fetch time. "Not in the
    # ASN file" is no observation (it is not "unrouted"): no range for those.
    history = rows(seeded, "SELECT host(ip) AS ip, asn, lower(valid) AS lo, upper_inf(valid) AS open, source "
                           "FROM ipintel.ip_asn_history ORDER BY ip")
    assert {h["ip"]: h["asn"] for h in history} == EXPECTED_ASN
    assert all(h["lo"] == stamp and h["open"] and h["source"] == "maxmind" for h in history)

    # The run row: counts and the provenance of both files.
    [run] = runs(seeded)
    assert (run["source"], run["status"], run["requested"], run["fetched"], run["merged"], run["failed"],
            run["message"]) == ("maxmind", "succeeded", 8, 8, 8, 0, None)
    assert run["run_id"] == p.run_id and run["finished_at"] >= run["started_at"]
    prov = run["provenance"]
    assert prov["demo"] is False
    for key, edition, epoch in (("location_db", "GeoLite2-City", CITY_EPOCH), ("asn_db", "GeoLite2-ASN", ASN_EPOCH)):
        assert prov[key] == {"path": str(geoip / f"{edition}.mmdb"), "type": edition, "build_epoch": epoch,
                             "built_at": datetime.fromtimestamp(epoch, UTC).isoformat()}

    # Each snapshot field is filled once the sources it depends on are no longer awaited: ASN and
    # country where MaxMind knows them (Cymru is skipped for IPs with a MaxMind ASN); is_scanner and
    # ip_type wait for GreyNoise; a bogon is complete at once.
    snaps = {r["session_id"]: r for r in rows(seeded, "SELECT s.*, d.document AS snapshot_enrichment "
                                                       "FROM ipintel.session_summaries s LEFT JOIN "
                                                       "ipintel.enrichment_documents d ON d.document_id = s.snapshot_document")}
    fields = ("snapshot_asn", "snapshot_asn_source", "snapshot_country", "snapshot_country_source",
              "snapshot_ip_type", "snapshot_is_scanner_source")
    assert {sid: tuple(s[f] for f in fields) for sid, s in snaps.items()} == {
        # the sessions predate MaxMind's first observation of the IP (no history range covers
        # them, and no routing history is loaded): the current ASN, said so
        "s-google-1": (15169, "maxmind:current", "US", "maxmind", None, None),
        "s-google-2": (15169, "maxmind:current", "US", "maxmind", None, None),
        "s-google-3": (15169, "maxmind:current", "US", "maxmind", None, None),
        "s-proxy": (None, None, "JP", "maxmind", None, None),
        "s-nowhere": (None, None, None, None, None, None),
        "s-hetzner": (24940, "maxmind:current", "DE", "maxmind", None, None),
        "s-bogon": (None, "bogon", "XX", "bogon", "bogon", "bogon"),
    }
    assert {sid for sid, s in snaps.items() if s["snapshot_complete_at"] is not None} == {"s-bogon"}
    full = inventory(seeded)
    for sid, (ip, _) in SESSIONS.items():
        if sid == "s-nowhere":
            assert snaps[sid]["snapshot_at"] is None and snaps[sid]["snapshot_document"] is None
            continue
        assert snaps[sid]["snapshot_enrichment"] == full[ip]["enrichment"]
        assert before <= snaps[sid]["snapshot_at"] <= datetime.now(UTC)


def test_snapshot_is_never_rewritten(seeded: str, geoip: Path, tmp_path: Path) -> None:
    run_maxmind(seeded, geoip)
    taken = rows(seeded, "SELECT * FROM ipintel.session_summaries ORDER BY session_id")

    # A newer City build moves 1.2.3.0/24 to GB; a forced run refetches everything.
    moved = {**CITY_RECORDS, "1.2.3.0/24": city_record("GB", "London", continent="EU", subdivisions=("ENG",))}
    newer = write_good_dbs(tmp_path / "geoip-2", city_records=moved, city_epoch=ASN_EPOCH + 60)
    summary = run_maxmind(seeded, newer, force=True)
    assert (summary.passes[0].status, summary.passes[0].fetched) == ("succeeded", 8)
    assert summary.snapshots == 0

    inv = inventory(seeded)
    assert inv["1.2.3.4"]["geo_country"] == "GB"
    assert inv["1.2.3.4"]["enrichment"]["maxmind"]["city"] == "London"
    assert answered(seeded)["1.2.3.4"]["build"] == ASN_EPOCH + 60
    assert rows(seeded, "SELECT * FROM ipintel.session_summaries ORDER BY session_id") == taken
    assert taken[0]["session_id"] == "s-bogon" and taken[1]["snapshot_country"] == "US"

    with psycopg.connect(seeded) as conn, pytest.raises(psycopg.errors.IntegrityConstraintViolation,
                                                        match="never rewritten"):
        conn.execute("UPDATE ipintel.session_summaries SET snapshot_country = 'GB' WHERE session_id = 's-google-1'")
    with psycopg.connect(seeded) as conn, pytest.raises(psycopg.errors.IntegrityConstraintViolation):
        # the complete snapshot of s-bogon pointed at another stored document
        conn.execute("""INSERT INTO ipintel.enrichment_documents (document) VALUES ('{"maxmind": {}}') """
                     "ON CONFLICT DO NOTHING")
        conn.execute("""UPDATE ipintel.session_summaries SET snapshot_document = (SELECT document_id FROM """
                     """ipintel.enrichment_documents WHERE document = '{"maxmind": {}}') WHERE session_id = 's-bogon'""")
    with psycopg.connect(seeded) as conn, pytest.raises(psycopg.errors.IntegrityConstraintViolation):
        conn.execute("UPDATE ipintel.session_summaries SET snapshot_asn = 1 WHERE session_id = 's-hetzner'")
    # Other columns of a snapshotted session stay writable.
    with psycopg.connect(seeded) as conn:
        conn.execute("UPDATE ipintel.session_summaries SET command_count = 4 WHERE session_id = 's-google-1'")
    assert one(seeded, "SELECT snapshot_country FROM ipintel.session_summaries WHERE session_id = 's-google-1'") \
        == {"snapshot_country": "US"}


# --- ASN moves -----------------------------------------------------------------------------


def test_newer_asn_build_moves_an_ip_to_another_asn(seeded: str, geoip: Path, tmp_path: Path) -> None:
    run_maxmind(seeded, geoip)
    first = answered(seeded)["1.2.3.4"]["fetched_at"]
    before = inventory(seeded)

    # Without a newer build nothing is due.
    assert run_maxmind(seeded, geoip).passes[0].due == 0

    newer_epoch = ASN_EPOCH + 86400
    moved = {**ASN_RECORDS, "1.2.3.0/24": asn_record(396982, "GOOGLE-CLOUD-PLATFORM")}
    newer = write_good_dbs(tmp_path / "geoip-2", asn_records=moved, asn_epoch=newer_epoch)
    summary = run_maxmind(seeded, newer)  # no force: the newer build makes every IP due
    [p] = summary.passes
    assert (p.status, p.due, p.fetched, p.merged) == ("succeeded", 8, 8, 8)

    inv = inventory(seeded)
    fresh = answered(seeded)
    second = fresh["1.2.3.4"]["fetched_at"]
    assert second > first
    for ip in ("1.2.3.4", "1.2.3.5"):
        doc = inv[ip]["enrichment"]["maxmind"]
        assert (doc["asn"], doc["as_org"], doc["asn_network"]) == (396982, "GOOGLE-CLOUD-PLATFORM", "1.2.3.0/24")
        assert doc["asn_db"] == {"type": "GeoLite2-ASN"}
        assert inv[ip]["current_asn"] == 396982
        assert (fresh[ip]["fetched_at"], fresh[ip]["build"], fresh[ip]["changed_at"]) == (second, newer_epoch, second)
    assert inv["1.0.0.1"]["current_asn"] == 13335
    # Read again from the newer build with the same facts: fetched again, its row not written.
    assert (fresh["1.0.0.1"]["fetched_at"], fresh["1.0.0.1"]["build"], fresh["1.0.0.1"]["changed_at"]) == \
        (second, newer_epoch, first)
    assert inv["1.0.0.1"] == before["1.0.0.1"]

    # The old range is closed where the new one opens: at the second observation.
    history = rows(seeded, "SELECT asn, lower(valid) AS lo, upper(valid) AS hi FROM ipintel.ip_asn_history "
                           "WHERE ip = '1.2.3.4' ORDER BY lower(valid)")
    assert [(h["asn"], h["lo"], h["hi"]) for h in history] == [(15169, first, second), (396982, second, None)]
    # IPs whose ASN did not change keep their single open range.
    assert one(seeded, "SELECT count(*) AS n FROM ipintel.ip_asn_history WHERE ip = '1.0.0.1'")["n"] == 1
    assert one(seeded, "SELECT count(*) AS n FROM ipintel.ip_asn_history")["n"] == len(EXPECTED_ASN) + 2

    asns = {a["asn"]: a for a in rows(seeded, "SELECT * FROM ipintel.asn_inventory")}
    assert (asns[15169]["ip_count"], asns[15169]["session_count"]) == (0, 0)
    assert (asns[396982]["as_name"], asns[396982]["ip_count"], asns[396982]["session_count"]) == \
        ("GOOGLE-CLOUD-PLATFORM", 2, 3)
    assert (asns[13335]["ip_count"], asns[24940]["ip_count"]) == (1, 1)

    # A snapshot taken before the move keeps the ASN of the session's time.
    assert one(seeded, "SELECT snapshot_asn FROM ipintel.session_summaries WHERE session_id = 's-google-1'") \
        == {"snapshot_asn": 15169}

    last = runs(seeded)[-1]
    assert (last["status"], last["requested"], last["fetched"], last["merged"]) == ("succeeded", 8, 8, 8)
    assert last["provenance"]["asn_db"]["build_epoch"] == newer_epoch


# --- what is due ---------------------------------------------------------------------------


def test_due_force_and_single_ips(seeded: str, geoip: Path, looked_up: list[str]) -> None:
    run_maxmind(seeded, geoip)
    first = {ip: f["fetched_at"] for ip, f in answered(seeded).items()}
    looked_up.clear()

    again = run_maxmind(seeded, geoip)
    assert [(p.status, p.due, p.fetched, p.merged) for p in again.passes] == [("succeeded", 0, 0, 0)]
    assert looked_up == []
    assert runs(seeded)[-1]["requested"] == 0

    forced = run_maxmind(seeded, geoip, force=True)
    assert [(p.due, p.fetched, p.merged) for p in forced.passes] == [(8, 8, 8)]
    assert sorted(looked_up) == PUBLIC
    after_force = {ip: f["fetched_at"] for ip, f in answered(seeded).items()}
    assert set(after_force) == set(PUBLIC)
    assert all(after_force[ip] > first[ip] for ip in PUBLIC)
    looked_up.clear()

    # Just the named IPs, fresh or not; a named bogon is still never looked up.
    single = run_maxmind(seeded, geoip, ips=["1.2.3.4", "2a01:4f8::1", "10.1.2.3"])
    assert [(p.due, p.fetched, p.merged) for p in single.passes] == [(2, 2, 2)]
    assert sorted(looked_up) == ["1.2.3.4", "2a01:4f8::1"]
    now = {ip: f["fetched_at"] for ip, f in answered(seeded).items()}
    assert {ip for ip in PUBLIC if now[ip] != after_force[ip]} == {"1.2.3.4", "2a01:4f8::1"}
    assert "10.1.2.3" not in now
    assert [r["requested"] for r in runs(seeded)] == [8, 0, 8, 2]


# --- broken database files -----------------------------------------------------------------


@pytest.mark.parametrize("broken", ["asn_named_city", "truncated"])
def test_unusable_file_exits_2_and_keeps_merged_data(
        broken: str, cli_env: str, geoip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["enrich", "--source", "maxmind"]) == 0
    good = state(cli_env)
    capsys.readouterr()

    bad = tmp_path / "geoip-bad"
    bad.mkdir()
    if broken == "asn_named_city":
        write_asn_db(bad / "GeoLite2-City.mmdb", ASN_RECORDS)
        write_asn_db(bad / "GeoLite2-ASN.mmdb", ASN_RECORDS, build_epoch=ASN_EPOCH + 1)
        expected_message = "holds a 'GeoLite2-ASN' database, not a City or Country database"
    else:
        write_truncated_copy(geoip / "GeoLite2-City.mmdb", bad / "GeoLite2-City.mmdb")
        write_asn_db(bad / "GeoLite2-ASN.mmdb", ASN_RECORDS, build_epoch=ASN_EPOCH + 1)
        expected_message = "cannot read MaxMind database"
    named = str(bad / "GeoLite2-City.mmdb")
    monkeypatch.setenv("IPINTEL_GEOIP_DIR", str(bad))

    status_file = tmp_path / "status.json"
    assert cli.main(["enrich", "--source", "maxmind", "--force", "--status-file", str(status_file)]) == 2
    err = capsys.readouterr().err
    assert flat(named) in flat(err) and flat(expected_message) in flat(err)

    failed = runs(cli_env)[-1]
    assert failed["status"] == "failed" and failed["finished_at"] is not None
    assert named in failed["message"] and expected_message in failed["message"]
    assert (failed["requested"], failed["fetched"], failed["merged"]) == (0, 0, 0)
    assert json.loads(status_file.read_text())["state"] == "failed"
    assert state(cli_env) == good


def test_corrupt_data_section_fails_mid_pass(
        cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["enrich", "--source", "maxmind"]) == 0
    good = state(cli_env)
    good_inv = inventory(cli_env)
    capsys.readouterr()

    # A newer City build without 1.0.0.0/8, its data section destroyed: lookups of the
    # lowest IPs find no network (nothing to decode) and are merged one per batch, then the
    # first IP with data hits the corruption.
    bad = tmp_path / "geoip-corrupt"
    bad.mkdir()
    partial = {k: v for k, v in CITY_RECORDS.items() if not k.startswith("1.")}
    write_city_db(tmp_path / "intact-City.mmdb", partial, build_epoch=ASN_EPOCH + 60)
    write_corrupt_data_copy(tmp_path / "intact-City.mmdb", bad / "GeoLite2-City.mmdb")
    write_asn_db(bad / "GeoLite2-ASN.mmdb", ASN_RECORDS, build_epoch=ASN_EPOCH)
    monkeypatch.setenv("IPINTEL_GEOIP_DIR", str(bad))
    monkeypatch.setattr(passes, "OFFLINE_BATCH", 1)

    # A broken file is bad configuration, as when it is found broken before the pass: exit 2.
    assert cli.main(["enrich", "--source", "maxmind"]) == 2
    out = capsys.readouterr()
    named = str(bad / "GeoLite2-City.mmdb")
    assert flat(f"corrupt MaxMind database {named}") in flat(out.out + out.err)

    failed = runs(cli_env)[-1]
    assert failed["status"] == "failed"
    assert failed["message"].startswith(f"corrupt MaxMind database {named}")
    # 1.0.0.1, 1.2.3.4, 1.2.3.5, 1.9.9.9 were merged before 5.6.7.8 hit the corruption.
    assert (failed["requested"], failed["fetched"], failed["merged"]) == (8, 4, 4)

    inv = inventory(cli_env)
    fresh = answered(cli_env)
    for ip in ("1.0.0.1", "1.2.3.4", "1.2.3.5", "1.9.9.9"):
        doc = inv[ip]["enrichment"]["maxmind"]
        assert (doc["country"], fresh[ip]["build"], inv[ip]["geo_country"]) == (None, ASN_EPOCH + 60, "XX")
        assert inv[ip]["current_asn"] == good_inv[ip]["current_asn"]
    for ip in ("5.6.7.8", "9.9.9.9", "45.33.32.156", "2a01:4f8::1", *BOGONS):
        assert inv[ip] == good_inv[ip], ip
    # Snapshots taken by the good run stay as they were.
    assert rows(cli_env, "SELECT * FROM ipintel.session_summaries ORDER BY session_id") == good["session_summaries"]


def test_corrupt_file_fails_before_anything_is_merged(
        cli_env: str, geoip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["enrich", "--source", "maxmind"]) == 0
    good = state(cli_env)
    bad = tmp_path / "geoip-corrupt"
    bad.mkdir()
    write_corrupt_data_copy(geoip / "GeoLite2-City.mmdb", bad / "GeoLite2-City.mmdb")
    write_asn_db(bad / "GeoLite2-ASN.mmdb", ASN_RECORDS, build_epoch=ASN_EPOCH)
    monkeypatch.setenv("IPINTEL_GEOIP_DIR", str(bad))

    assert cli.main(["enrich", "--source", "maxmind", "--force"]) == 2
    failed = runs(cli_env)[-1]
    assert (failed["status"], failed["requested"], failed["fetched"], failed["merged"]) == ("failed", 8, 0, 0)
    assert str(bad / "GeoLite2-City.mmdb") in failed["message"]
    assert state(cli_env) == good


# --- status file ---------------------------------------------------------------------------


def test_status_file_reports_the_run_and_no_secret(
        cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IPINTEL_GREYNOISE_KEY", SECRET)
    status_file = tmp_path / "enrich-status.json"
    assert cli.main(["enrich", "--source", "maxmind", "--status-file", str(status_file)]) == 0
    out = capsys.readouterr()

    text = status_file.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["state"] == "finished" and doc["exit_code"] == 0 and doc["pid"] == os.getpid()
    assert doc["snapshots_taken"] == len(SESSIONS) - 1  # s-nowhere waits for Team Cymru
    [p] = doc["passes"]
    run_id = runs(cli_env)[-1]["run_id"]
    assert {k: p[k] for k in ("source", "run_id", "status", "due", "fetched", "merged", "failed")} == {
        "source": "maxmind", "run_id": run_id, "status": "succeeded", "due": 8, "fetched": 8, "merged": 8,
        "failed": 0}
    assert not (tmp_path / "enrich-status.json.tmp").exists()
    assert SECRET not in text
    assert SECRET not in out.out + out.err
    assert SECRET not in json.dumps(rows(cli_env, "SELECT provenance, message FROM ipintel.enrichment_runs"),
                                    default=str)


# --- one enrichment at a time --------------------------------------------------------------


def test_second_enrich_exits_3_or_waits_for_the_lock(
        cli_env: str, geoip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = Lock(cli_env, "ipintel.enrich").__enter__()
    try:
        running = one(cli_env, "INSERT INTO ipintel.enrichment_runs (source) VALUES ('maxmind') RETURNING run_id")
        run_id = running["run_id"]

        assert cli.main(["enrich", "--source", "maxmind"]) == 3
        err = flat(capsys.readouterr().err)
        assert f"run{run_id}(maxmind," in err and "--wait" in err
        assert runs(cli_env)[-1]["status"] == "running"  # the holder's run is left alone

        waiting = subprocess.Popen(
            [sys.executable, "-m", "ipintel.cli", "enrich", "--source", "maxmind", "--wait"],
            env=subprocess_env(cli_env, geoip), cwd=geoip, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            # It connects and polls the lock; it must still be waiting while we hold it.
            deadline = time.monotonic() + 15
            while not rows(cli_env, "SELECT 1 FROM pg_stat_activity WHERE application_name = 'ipintel' "
                                    "AND pid <> %s AND datname = current_database()",
                           (holder.conn.info.backend_pid,)):
                assert waiting.poll() is None, waiting.communicate()
                assert time.monotonic() < deadline, "the waiting enrich never connected"
                time.sleep(0.1)
            time.sleep(1.5)
            assert waiting.poll() is None
            assert len(runs(cli_env)) == 1
        except BaseException:
            waiting.kill()
            raise
    finally:
        holder.__exit__(None, None, None)

    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, out + err
    all_runs = runs(cli_env)
    # The run left 'running' by a holder that is gone is marked interrupted by the next one.
    assert [(r["run_id"], r["status"]) for r in all_runs] == [(run_id, "interrupted"), (run_id + 1, "succeeded")]
    assert all_runs[1]["fetched"] == 8


# --- ipintel status ------------------------------------------------------------------------


def test_status_prints_the_coverage_view(
        cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["enrich", "--source", "maxmind"]) == 0
    with psycopg.connect(cli_env) as conn:
        # An old MaxMind answer (not stale: an offline database's answers age only by build), a
        # stale Team Cymru answer (older than its 30-day ttl), one IP never fetched.
        conn.execute("""UPDATE ipintel.enrichment_state
                        SET fetched_at = now() - interval '30 days', changed_at = now() - interval '30 days'
                        WHERE ip = '9.9.9.9' AND source = 'maxmind'""")
        conn.execute("""INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, changed_at)
                        VALUES ('9.9.9.9', 'cymru', now() - interval '31 days', now() - interval '31 days')""")
        conn.execute("INSERT INTO ipintel.ip_inventory (ip) VALUES ('8.8.8.8')")
    monkeypatch.setattr(cli, "console", Console(width=250, highlight=False))
    capsys.readouterr()
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out

    view = rows(cli_env, "SELECT * FROM ipintel.enrichment_coverage")
    assert {v["source"] for v in view} == {"maxmind", "ipinfo", "dbip", "cymru", "greynoise", "dshield"}
    printed: dict[str, list[str]] = {}
    coverage = out[out.index("coverage per source"):out.index("last enrichment runs")]
    for line in coverage.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line)[1:-1]]
        if cells and cells[0] in {"maxmind", "ipinfo", "dbip", "cymru", "greynoise", "dshield"}:
            printed[cells[0]] = cells
    for v in view:
        assert printed[v["source"]][3:] == [str(v[k]) for k in
                                            ("ips", "fresh", "stale", "never_fetched", "failed", "bogons_never_sent")]
    counts = {v["source"]: (v["ips"], v["fresh"], v["stale"], v["never_fetched"], v["bogons_never_sent"])
              for v in view}
    assert (counts["maxmind"], counts["cymru"]) == ((9, 8, 0, 1, 2), (9, 0, 1, 8, 2))
    # When an answer is due again: MaxMind on a newer build (never by age), the others by TTL.
    assert (printed["maxmind"][2], printed["cymru"][2].split()[0]) == ("new build", "30")


def test_failed_pass_does_not_snapshot_ips_it_left_due(seeded: str, geoip: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(seeded) as conn:
        # No DShield contact here: as the README says, a source never run is disabled, or the
        # country MaxMind does not know waits for DShield's (ranked last).
        conn.execute("UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'dshield'")
    run_uninstalled_offline_passes(seeded, geoip)
    run_maxmind(seeded, geoip)
    with psycopg.connect(seeded) as conn:
        # New sessions arrive from 1.2.3.4 and from 9.9.9.10, an IP not looked up yet (an answer
        # of an offline database never goes stale by time: only a new IP or a newer build is due).
        conn.execute("""INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
                        VALUES ('9.9.9.10', now() - interval '1 hour', now(), 1)""")
        conn.execute("UPDATE ipintel.ip_inventory SET session_count = session_count + 1 WHERE ip = '1.2.3.4'")
        conn.execute("""INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
                        VALUES ('s-quad9', now() - interval '1 hour', now(), '9.9.9.10'),
                               ('s-google-4', now() - interval '1 hour', now(), '1.2.3.4')""")

    bad = tmp_path / "geoip-corrupt"
    bad.mkdir()
    write_city_db(tmp_path / "intact-City.mmdb", {k: v for k, v in CITY_RECORDS.items() if not k.startswith("1.")},
                  build_epoch=ASN_EPOCH + 60)
    write_corrupt_data_copy(tmp_path / "intact-City.mmdb", bad / "GeoLite2-City.mmdb")
    write_asn_db(bad / "GeoLite2-ASN.mmdb", ASN_RECORDS)
    monkeypatch.setattr(passes, "OFFLINE_BATCH", 1)
    summary = run_maxmind(seeded, bad)
    assert summary.passes[0].status == "failed" and summary.exit_code == 2  # a broken file: configuration

    def snapshot(sid: str) -> dict[str, Any]:
        return one(seeded, "SELECT snapshot_at, snapshot_country FROM ipintel.session_summaries "
                           "WHERE session_id = %s", (sid,))

    # 1.2.3.4 was refreshed before the failure: settled, its new session is snapshotted.
    assert snapshot("s-google-4")["snapshot_country"] == "XX"
    # 9.9.9.10 is still due (never answered, not reached): what MaxMind gives waits for a good run
    # (only the known-attacker field is settled: DShield, which gives it, is disabled).
    assert snapshot("s-quad9")["snapshot_country"] is None
    assert one(seeded, "SELECT snapshot_asn_source, snapshot_is_known_attacker_source FROM ipintel.session_summaries "
                       "WHERE session_id = 's-quad9'") == {"snapshot_asn_source": None,
                                                          "snapshot_is_known_attacker_source": "none"}
    assert summary.snapshots == 2

    monkeypatch.undo()
    assert run_maxmind(seeded, geoip).snapshots == 1
    quad9 = one(seeded, "SELECT s.snapshot_asn, d.snapshot_enrichment FROM ipintel.session_summaries s "
                        "JOIN ipintel.session_documents d USING (session_id) WHERE session_id = 's-quad9'")
    assert quad9["snapshot_asn"] == 19281
    assert quad9["snapshot_enrichment"]["maxmind"]["asn"] == 19281
    assert answered(seeded)["9.9.9.10"]["fetched_at"] > datetime.now(UTC) - timedelta(minutes=5)
