"""`ipintel ingest` and `ipintel enrich` at the same time (both from cron): no deadlock, and the
tiers end exactly as after the same two runs one after the other.

Before ipintel.lock_for_merge, a MaxMind pass locked asn_inventory rows, then ip_inventory rows,
while an ingest chunk locked ip_inventory rows (in hash order), then asn_inventory rows:
`deadlock detected` within seconds on 20,000 shared IPs (the issue: 3 of 3 tries at 60,000).
"""

from __future__ import annotations

import ipaddress
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ipintel import ingest
from ipintel.config import Settings
from ipintel.enrich import EnrichOptions, EnrichSummary, enrich
from ipintel.passes import MaxMindPass
from ipintel.progress import Reporter
from tests import datagen
from tests.mmdb_factory import asn_record, city_record, write_asn_db, write_city_db

IPS = 10_000
NEW_SESSIONS = 10_000
ASNS = 300


def write_geoip(folder: Path) -> Path:
    """Every populated IP (11.0.0.0 + 7g) in one of 256 /16 networks, each its own AS and country:
    the pass moves most IPs to another ASN, so it rewrites asn_inventory counts everywhere."""
    folder.mkdir()
    countries = ["US", "DE", "NL", "FR", "BR", "JP"]
    write_asn_db(folder / "GeoLite2-ASN.mmdb",
                 {f"11.{n}.0.0/16": asn_record(65000 + n, f"MOVED-{n}") for n in range(256)})
    write_city_db(folder / "GeoLite2-City.mmdb",
                  {f"11.{n}.0.0/16": city_record(countries[n % 6], f"City {n}") for n in range(256)})
    return folder


def write_log(path: Path) -> Path:
    """New sessions from the populated IPs in random order (so session order is not IP order)."""
    rng = random.Random(7)
    start = datetime(2026, 11, 10, tzinfo=UTC)
    lines = []
    for n in range(NEW_SESSIONS):
        ip = str(ipaddress.ip_address("11.0.0.0") + 7 * rng.randint(1, IPS))
        sid = f"c{n:07x}"
        t0 = start + timedelta(seconds=n)
        for eventid, offset, extra in (
                ("cowrie.session.connect", 0, {"src_port": 40000, "dst_ip": "192.0.2.1", "dst_port": 22,
                                               "protocol": "ssh"}),
                ("cowrie.login.failed", 1, {"username": "root", "password": "x"}),
                ("cowrie.session.closed", 2, {"duration": 2.0})):
            lines.append(json.dumps({"eventid": eventid, "timestamp": (t0 + timedelta(seconds=offset)).isoformat(),
                                     "session": sid, "src_ip": ip, "sensor": "s1", "message": "", **extra}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def settings(dsn: str, geoip: Path) -> Settings:
    return Settings(database_url=dsn, geoip_dir=str(geoip), cymru_addr="127.0.0.1:9",
                    greynoise_url="http://127.0.0.1:9", greynoise_key=None)


def run_enrich(dsn: str, geoip: Path) -> EnrichSummary:
    s = settings(dsn, geoip)
    return enrich(s, EnrichOptions(sources=("maxmind",), force=True), reporter=Reporter(interactive=False),
                  passes=[MaxMindPass(s, system_dirs=())])


def run_ingest(dsn: str, log: Path) -> ingest.IngestSummary:
    return ingest.ingest(dsn, [str(log)], reporter=Reporter(interactive=False), chunk_lines=3_000)


def state(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """The tiers without the clocks (fetch and write times differ from run to run; fetch times are
    in enrichment_state, not in the documents)."""
    queries = {
        "asn_inventory": "SELECT asn, as_name, ip_count, session_count, first_seen, last_seen, "
                         "sources FROM ipintel.asn_inventory ORDER BY asn",
        "ip_inventory": "SELECT ip, first_seen, last_seen, session_count, current_asn, geo_country, ip_type, "
                        "enrichment FROM ipintel.ip_inventory ORDER BY ip",
        "session_summaries": "SELECT session_id, source_ip, first_event_at, last_event_at, login_attempts, "
                             "event_count, snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_ip_type "
                             "FROM ipintel.session_summaries ORDER BY session_id",
        "ip_asn_history": "SELECT ip, asn, source, upper_inf(valid) FROM ipintel.ip_asn_history ORDER BY ip, lower(valid)",
    }
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        conn.execute("SELECT ipintel.take_snapshots()")
        return {name: [tuple(r.values()) for r in conn.execute(q).fetchall()] for name, q in queries.items()}


@pytest.mark.slow
def test_ingest_and_enrich_at_once_end_equal_to_one_after_the_other(pg_server, migrated_template, tmp_path):
    geoip = write_geoip(tmp_path / "geoip")
    log = write_log(tmp_path / "cowrie.json.2026-11-10")
    concurrent_db, serial_db = (f"ipintel_conc_{tag}_{random.randrange(1 << 30):x}" for tag in ("a", "b"))
    with pg_server.janitor(concurrent_db, template=migrated_template), \
            pg_server.janitor(serial_db, template=migrated_template):
        concurrent, serial = pg_server.dsn(concurrent_db), pg_server.dsn(serial_db)
        for dsn in (concurrent, serial):
            datagen.populate(dsn, sessions=2 * IPS, ips=IPS, asns=ASNS)

        # One after the other.
        assert run_enrich(serial, geoip).exit_code == 0
        assert run_ingest(serial, log).sessions_new == NEW_SESSIONS

        # At the same time: the pass and the ingest both start on the same IPs.
        errors: list[BaseException] = []
        results: dict[str, Any] = {}

        def worker(name: str, job: Any) -> None:
            try:
                results[name] = job()
            except BaseException as exc:  # noqa: BLE001 — reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=("enrich", lambda: run_enrich(concurrent, geoip))),
                   threading.Thread(target=worker, args=("ingest", lambda: run_ingest(concurrent, log)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        assert results["enrich"].exit_code == 0 and results["enrich"].passes[0].merged == IPS
        assert results["ingest"].sessions_new == NEW_SESSIONS

        got, want = state(concurrent), state(serial)
        for table in want:
            assert got[table] == want[table], table
        # The counts are true: every ASN's ip_count and session_count match ip_inventory.
        with psycopg.connect(concurrent) as conn:
            wrong = conn.execute(
                """SELECT count(*) FROM ipintel.asn_inventory a
                   CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(session_count), 0) AS s
                                       FROM ipintel.ip_inventory i WHERE i.current_asn = a.asn) t
                   WHERE (a.ip_count, a.session_count) IS DISTINCT FROM (t.n, t.s)""").fetchone()
        assert wrong == (0,)
