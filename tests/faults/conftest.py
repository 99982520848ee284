"""The fault suite (`make test-faults`): the worlds its tests break, and its counts at the end.

Kept out of `make test` (pyproject's norecursedirs names this folder); `pytest tests/faults` runs
it on IPINTEL_TEST_DSN's server or on a throwaway cluster (tests/conftest.py). It restarts that
server (pg_ctl restart -m fast), so it wants a cluster of its own: `make test-faults` starts one.

Two worlds, each built once and cloned per case:

* `ingest_world`: seeded Cowrie logs (two sensors, two days, gzip and plain, sessions across
  midnight and across chunks) and the fingerprint of a clean `ipintel ingest` of them;
* `enrich_world`: a database holding those logs, MaxMind test databases (City for every IP,
  ASN for half), a fake Team Cymru and a fake GreyNoise that answer every IP the same way every
  time, and the fingerprint of a clean `ipintel enrich` (all three passes, then snapshots).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ipintel import demo_logs
from tests.conftest import PgServer
from tests.fakes.cymru_server import running_cymru_server
from tests.fakes.greynoise_server import GreyNoiseFake, Reply
from tests.fakes.http_fake import serving
from tests.faults.harness import STATS, database, env_for, execute, fingerprint, query, run
from tests.mmdb_factory import asn_record, city_record, write_asn_db, write_city_db

COUNTRIES = ("US", "DE", "NL", "FR", "BR", "JP", "CN", "RU")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not STATS.any():
        return
    terminalreporter.section("fault suite")
    for line in STATS.lines():
        terminalreporter.write_line(line)


@dataclass(frozen=True)
class World:
    template: str  # database cloned per case
    logs: Path  # the Cowrie logs (ingest_world: to ingest; enrich_world: already in the template)
    env: dict[str, str]  # the CLI's settings, DATABASE_URL excepted
    clean: dict[str, tuple[int, str]]  # fingerprint after a clean run
    clean_seconds: float  # how long the clean run took, start of the process to its end
    cwd: Path

    def env_for(self, dsn: str, **more: str) -> dict[str, str]:
        return env_for(dsn, **(self.env | more))



def clean_runs(pg_server: PgServer, template: str, command: list[str], env: dict[str, str],
               cwd: Path) -> tuple[dict[str, tuple[int, str]], float]:
    """The fingerprint of a clean run of `ipintel command` on a clone of `template`, and the seconds
    a run takes once caches are warm. Run twice: the same fingerprint both times, or the oracle
    the kills are judged by would itself be unsure."""
    prints, seconds = [], []
    for _ in range(2):
        with database(pg_server, template) as dsn:
            clean = run(command, env_for(dsn, **env), cwd, timeout=120)
            assert clean.code == 0, clean.out + clean.err
            prints.append(fingerprint(dsn))
            seconds.append(clean.seconds)
            if command[0] == "enrich":  # the world exercises every pass: each merged something
                merged = {r["source"]: r["merged"] for r in query(dsn, "SELECT source, merged "
                                                                        "FROM ipintel.enrichment_runs")}
                assert all(merged.get(source) for source in ("maxmind", "cymru", "greynoise")), merged
    assert prints[0] == prints[1], ("two clean runs left different data in "
                                    f"{[name for name in prints[0] if prints[0][name] != prints[1][name]]}")
    return prints[0], min(seconds)


def _template(pg_server: PgServer, migrated_template: str) -> Any:
    """A migrated database that clones are made from (dropped at the end of the session)."""
    return pg_server.janitor(f"ipintel_faults_{uuid.uuid4().hex[:8]}", template=migrated_template, as_template=True)


@pytest.fixture(scope="session")
def fault_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("faults") / "logs"
    demo_logs.generate(logs, seed=14, sessions=3000, days=2, sensors=2)
    return logs


@pytest.fixture(scope="session")
def ingest_world(pg_server: PgServer, migrated_template: str, fault_logs: Path) -> Iterator[World]:
    cwd = fault_logs.parent
    with _template(pg_server, migrated_template) as janitor:
        template = janitor.dbname
        prints, seconds = clean_runs(pg_server, template, ["ingest", str(fault_logs), "--chunk-lines", "500"], {}, cwd)
        yield World(template, fault_logs, {}, prints, seconds, cwd)


def _cymru_rows(ip: str, n: int) -> list[Any]:
    """What the fake Team Cymru answers for the n-th IP: one origin, two (MOAS), or unrouted."""
    address = ipaddress.ip_address(ip)
    prefix = str(ipaddress.ip_network(f"{ip}/{24 if address.version == 4 else 48}", strict=False))
    if n % 11 == 5:
        return [(None, None, COUNTRIES[n % len(COUNTRIES)], "ripencc", "2005-11-29", None)]
    # An AS has one name and country whichever IP it answers for (else the last merged would win).
    asns = [64512 + n % 97] + ([65512 + n % 97] if n % 7 == 3 else [])
    return [(asn, prefix, COUNTRIES[asn % len(COUNTRIES)], "ripencc", "2010-01-01",
             f"AS-{asn}, {COUNTRIES[asn % len(COUNTRIES)]}") for asn in asns]


@pytest.fixture(scope="session")
def enrich_world(pg_server: PgServer, migrated_template: str, fault_logs: Path) -> Iterator[World]:
    cwd = fault_logs.parent
    with _template(pg_server, migrated_template) as janitor:
        template = janitor.dbname
        ingested = run(["ingest", str(fault_logs)], env_for(pg_server.dsn(template)), cwd, timeout=120)
        assert ingested.code == 0, ingested.err
        # GreyNoise's community quota is for the busiest addresses (the policy is data).
        execute(pg_server.dsn(template),
                "UPDATE ipintel.enrichment_policy SET min_session_count = 5 WHERE source = 'greynoise'")
        ips = [r["ip"] for r in query(pg_server.dsn(template), "SELECT host(ip) AS ip FROM ipintel.ip_inventory "
                                                                "WHERE NOT is_bogon ORDER BY ip")]
        geoip = cwd / "geoip"
        geoip.mkdir()
        hosts = {ip: f"{ip}/{32 if ':' not in ip else 128}" for ip in ips}
        write_city_db(geoip / "GeoLite2-City.mmdb",
                      {hosts[ip]: city_record(COUNTRIES[n % len(COUNTRIES)], f"City {n}") for n, ip in enumerate(ips)})
        # Half the IPs have a MaxMind ASN: Team Cymru is asked about the other half.
        write_asn_db(geoip / "GeoLite2-ASN.mmdb",
                     {hosts[ip]: asn_record(65000 + n % 50, f"MM-{n % 50}") for n, ip in enumerate(ips) if n % 2})
        with (serving(GreyNoiseFake) as greynoise,
              running_cymru_server({ip: _cymru_rows(ip, n) for n, ip in enumerate(ips)}) as cymru):
            for ip in ips[::3]:
                greynoise.script(ip, Reply(200))  # observed; the others: 404, not observed
            env = {"IPINTEL_GEOIP_DIR": str(geoip), "IPINTEL_CYMRU_ADDR": cymru.addr,
                   "IPINTEL_CYMRU_BATCH_SIZE": "25", "IPINTEL_GREYNOISE_URL": greynoise.url,
                   "IPINTEL_GREYNOISE_KEY": greynoise.api_key, "IPINTEL_GREYNOISE_RATE": "100",
                   "IPINTEL_GREYNOISE_DAILY_BUDGET": "100000"}
            prints, seconds = clean_runs(pg_server, template, ["enrich"], env, cwd)
            yield World(template, fault_logs, env, prints, seconds, cwd)
