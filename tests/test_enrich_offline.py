"""`ipintel ingest`, `enrich` and `report` as processes, with IPinfo Lite and DB-IP Lite files: ASNs
without MaxMind's ASN file and without the network, and a machine without those files.

The GeoIP folder holds a generated MaxMind City file (no ASN file), an IPinfo Lite file and DB-IP
Lite City and ASN files. Team Cymru's address is a local socket that must never be connected to:
every IP gets its ASN from a file, so Cymru (skip_when_asn_known) has nothing to ask.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.mmdb_factory import (
    DEFAULT_BUILD_EPOCH,
    asn_record,
    city_record,
    ipinfo_record,
    write_city_db,
    write_dbip_asn_db,
    write_dbip_location_db,
    write_ipinfo_db,
)

CITY = {"1.2.0.0/16": city_record("US", "Mountain View", subdivisions=("CA",))}
IPINFO = {
    "1.2.0.0/16": ipinfo_record(15169, "Google LLC", country_code="IE", country="Ireland", continent_code="EU",
                                continent="Europe", as_domain="google.com"),
    "2a01:4f8::/32": ipinfo_record(24940, "Hetzner Online GmbH", country_code="DE", country="Germany",
                                   continent_code="EU", continent="Europe", as_domain="hetzner.com"),
}
DBIP_CITY = {
    "1.2.0.0/16": city_record("NL", "Amsterdam", continent="EU", subdivisions=()),
    "9.9.9.0/24": city_record("CH", "Zurich", continent="EU", subdivisions=()),
}
DBIP_ASN = {
    "1.2.0.0/16": asn_record(64501, "DBIP-GOOGLE"),
    "9.9.9.0/24": asn_record(19281, "Quad9"),
    "2a01:4f8::/32": asn_record(24940, "Hetzner (DB-IP)"),
}
# session -> (source IP, time); every IP is in a file with an AS.
SESSIONS = {
    "a1b2c3d4e5f6": ("1.2.3.4", "2026-11-01T08:00:00.000000Z"),
    "b1b2c3d4e5f6": ("1.2.3.4", "2026-11-02T08:00:00.000000Z"),
    "c1b2c3d4e5f6": ("9.9.9.9", "2026-11-01T09:00:00.000000Z"),
    "d1b2c3d4e5f6": ("2a01:4f8::1", "2026-11-01T10:00:00.000000Z"),
}
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cowrie_log(path: Path) -> Path:
    lines = []
    for session, (ip, at) in SESSIONS.items():
        for eventid in ("cowrie.session.connect", "cowrie.session.closed"):
            record = {"eventid": eventid, "message": "", "sensor": "hp-fra1", "timestamp": at, "src_ip": ip,
                      "session": session}
            if eventid == "cowrie.session.connect":
                record |= {"src_port": 40000, "dst_ip": "172.31.12.7", "dst_port": 2222, "protocol": "ssh"}
            lines.append(json.dumps(record, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def silent_cymru() -> Iterator[tuple[str, socket.socket]]:
    """A listening socket that stands for Team Cymru: the test checks nobody connected."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield f"127.0.0.1:{server.getsockname()[1]}", server


def ipintel(dsn: str, geoip: Path, cymru_addr: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPINTEL_")}
    env |= {"DATABASE_URL": dsn, "IPINTEL_GEOIP_DIR": str(geoip), "IPINTEL_CYMRU_ADDR": cymru_addr,
            "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ipintel.cli", *args], env=env, cwd=geoip.parent,
                          capture_output=True, text=True, timeout=120)


def rows(dsn: str, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(query).fetchall()


def disable_greynoise_and_dshield(dsn: str) -> None:
    # No key, no contact here: as the README says, a source never run is disabled, or snapshots wait for it.
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE ipintel.enrichment_policy SET enabled = false WHERE source IN ('greynoise', 'dshield')")


@pytest.fixture
def geoip(tmp_path: Path) -> Path:
    """The GeoIP folder: MaxMind's City file, and no MaxMind ASN file."""
    folder = tmp_path / "GeoIP"
    folder.mkdir()
    write_city_db(folder / "GeoLite2-City.mmdb", CITY)
    return folder


def test_asns_from_ipinfo_and_dbip_without_maxminds_asn_file_or_the_network(
        db: str, geoip: Path, tmp_path: Path, silent_cymru: tuple[str, socket.socket]) -> None:
    cymru_addr, cymru = silent_cymru
    write_ipinfo_db(geoip / "ipinfo_lite.mmdb", IPINFO, build_epoch=DEFAULT_BUILD_EPOCH + 100)
    write_dbip_location_db(geoip / "dbip-city-lite-2024-01.mmdb", DBIP_CITY)
    write_dbip_asn_db(geoip / "dbip-asn-lite-2024-01.mmdb", DBIP_ASN, build_epoch=DEFAULT_BUILD_EPOCH + 200)
    disable_greynoise_and_dshield(db)

    ingest = ipintel(db, geoip, cymru_addr, "ingest", str(cowrie_log(tmp_path / "cowrie.json.2026-11-02")))
    assert ingest.returncode == 0, ingest.stderr
    enrich = ipintel(db, geoip, cymru_addr, "enrich", "--status-file", str(tmp_path / "status.json"))
    assert enrich.returncode == 0, enrich.stdout + enrich.stderr
    with pytest.raises(BlockingIOError):
        cymru.accept()  # nobody connected: Team Cymru was not asked

    passes = {p["source"]: p for p in json.loads((tmp_path / "status.json").read_text())["passes"]}
    assert {s: (p["status"], p["due"], p["merged"]) for s, p in passes.items()} == {
        "maxmind": ("succeeded", 3, 3), "ipinfo": ("succeeded", 3, 3), "dbip": ("succeeded", 3, 3),
        "cymru": ("succeeded", 0, 0), "greynoise": ("skipped", 0, 0), "dshield": ("skipped", 0, 0)}
    runs = {r["source"]: r for r in rows(db, "SELECT source, provenance FROM ipintel.enrichment_runs")}
    assert runs["ipinfo"]["provenance"]["database"]["build_epoch"] == DEFAULT_BUILD_EPOCH + 100
    assert runs["dbip"]["provenance"]["asn_db"]["type"] == "DBIP-ASN-Lite (compat=GeoLite2-ASN)"
    assert runs["dbip"]["provenance"]["location_db"]["path"] == str(geoip / "dbip-city-lite-2024-01.mmdb")

    ips = {r["ip"]: r for r in rows(db, """SELECT host(ip) AS ip, current_asn, current_asn_source, geo_country,
                                                  geo_country_source, ip_type, enrichment
                                           FROM ipintel.ip_inventory""")}
    assert {ip: (r["current_asn"], r["current_asn_source"], r["geo_country"], r["geo_country_source"], r["ip_type"])
            for ip, r in ips.items()} == {
        # IPinfo's ASN ranks before DB-IP's; MaxMind's country before both.
        "1.2.3.4": (15169, "ipinfo", "US", "maxmind", "routed"),
        # DB-IP alone knows it: its ASN and its country.
        "9.9.9.9": (19281, "dbip", "CH", "dbip", "routed"),
        "2a01:4f8::1": (24940, "ipinfo", "DE", "ipinfo", "routed")}
    assert ips["1.2.3.4"]["enrichment"]["ipinfo"] == {
        "found": True, "asn": 15169, "as_name": "Google LLC", "as_domain": "google.com", "country_code": "IE",
        "country": "Ireland", "continent_code": "EU", "continent": "Europe", "network": "1.2.0.0/16"}
    assert ips["1.2.3.4"]["enrichment"]["dbip"]["asn"] == 64501
    names = {r["asn"]: (r["as_name"], r["ip_count"]) for r in rows(db, "SELECT * FROM ipintel.asn_inventory")}
    assert names == {15169: ("Google LLC", 1), 19281: ("Quad9", 1), 24940: ("Hetzner Online GmbH", 1),
                     64501: ("DBIP-GOOGLE", 0)}

    sessions = {r["session_id"]: r for r in rows(db, "SELECT * FROM ipintel.session_summaries")}
    assert {s: (r["snapshot_asn"], r["snapshot_asn_source"], r["snapshot_complete_at"] is not None)
            for s, r in sessions.items()} == {
        "a1b2c3d4e5f6": (15169, "ipinfo:current", True), "b1b2c3d4e5f6": (15169, "ipinfo:current", True),
        "c1b2c3d4e5f6": (19281, "dbip:current", True), "d1b2c3d4e5f6": (24940, "ipinfo:current", True)}

    report = ipintel(db, geoip, cymru_addr, "report")
    assert report.returncode == 0, report.stderr
    out = report.stdout
    assert "15169" in out and "Google LLC" in out and "19281" in out
    # The licences ask for attribution: the report shows it for every source whose data it holds.
    assert "ipinfo: IP address data powered by IPinfo (https://ipinfo.io): IPinfo Lite, CC BY-SA 4.0" in out
    assert "dbip: IP Geolocation by DB-IP (https://db-ip.com): DB-IP Lite, CC BY 4.0" in out


def test_without_their_files_the_passes_are_skipped_and_snapshots_do_not_wait(
        db: str, geoip: Path, tmp_path: Path, silent_cymru: tuple[str, socket.socket]) -> None:
    cymru_addr, _ = silent_cymru
    disable_greynoise_and_dshield(db)
    assert ipintel(db, geoip, cymru_addr, "ingest", str(cowrie_log(tmp_path / "cowrie.json"))).returncode == 0

    # Offline only (Team Cymru would be asked: no file gives these IPs an ASN).
    enrich = ipintel(db, geoip, cymru_addr, "enrich", "--source", "maxmind", "--source", "ipinfo", "--source", "dbip")
    assert enrich.returncode == 0, enrich.stdout + enrich.stderr
    skipped = {r["source"]: r["message"] for r in rows(
        db, "SELECT source, message FROM ipintel.enrichment_runs WHERE status = 'skipped'")}
    assert skipped == {
        "ipinfo": f"no IPinfo Lite database (ipinfo_lite.mmdb) in {geoip}: ipinfo is not installed, so its pass is "
                  "skipped and snapshots do not wait for it",
        "dbip": f"no DB-IP Lite database (dbip-city-lite-YYYY-MM.mmdb, dbip-country-lite-YYYY-MM.mmdb, "
                f"dbip-asn-lite-YYYY-MM.mmdb) in {geoip}: dbip is not installed, so its pass is skipped and "
                "snapshots do not wait for it"}
    assert "ipinfo: skipped: no IPinfo Lite database" in " ".join(enrich.stderr.split())
    # Only Team Cymru is awaited (for the ASN): never IPinfo or DB-IP.
    waits = rows(db, "SELECT DISTINCT unnest(waiting_for) AS source FROM ipintel.snapshot_backlog")
    assert [w["source"] for w in waits] == ["cymru"]

    # The files arrive: the next run reads them, and the sessions' ASNs come from them.
    write_ipinfo_db(geoip / "ipinfo_lite.mmdb", IPINFO)
    write_dbip_asn_db(geoip / "dbip-asn-lite-2024-01.mmdb", DBIP_ASN)
    enrich = ipintel(db, geoip, cymru_addr, "enrich", "--source", "ipinfo", "--source", "dbip")
    assert enrich.returncode == 0, enrich.stdout + enrich.stderr
    assert rows(db, "SELECT * FROM ipintel.snapshot_backlog") == []
    assert {r["session_id"]: r["snapshot_asn_source"] for r in rows(
        db, "SELECT session_id, snapshot_asn_source FROM ipintel.session_summaries")} == {
        "a1b2c3d4e5f6": "ipinfo:current", "b1b2c3d4e5f6": "ipinfo:current", "c1b2c3d4e5f6": "dbip:current",
        "d1b2c3d4e5f6": "ipinfo:current"}


def test_a_broken_file_is_bad_configuration(db: str, geoip: Path, silent_cymru: tuple[str, socket.socket]) -> None:
    cymru_addr, _ = silent_cymru
    (geoip / "ipinfo_lite.mmdb").write_bytes(b"half a download")
    enrich = ipintel(db, geoip, cymru_addr, "enrich", "--source", "ipinfo")
    assert enrich.returncode == 2
    assert enrich.stderr.strip().splitlines()[-1].startswith(
        f"ipintel enrich: cannot read database {geoip / 'ipinfo_lite.mmdb'}: ")
