"""The MaxMind pass, set-based, against the old tool's row-by-row way, in one run.

(a) `ipintel enrich --source maxmind` as it runs in production (`ipintel.enrich.enrich` with
    `MaxMindPass`): ips_due, sorted lookups, COPY into staging, merge_maxmind per batch of
    10,000, on an inventory of N IPs (default 1,000,000).
(a2) The same pass again with the same files: nothing is due (an offline database is due only
    when a newer build is installed), so nothing may be written.
(f) PostgreSQL's floor for the same work, in the same run: the documents (a) wrote, COPYed in
    batches of 10,000 into an UNLOGGED staging table and merged by one `UPDATE ... FROM` per
    batch (a transaction each) into a table with the same IPs and only a primary key.
(t) The tiers' own writes for the same answers, in the same run: on a clone of the inventory as it
    was before (a), per 10,000: COPY of (ip, document, ASN, country) into an UNLOGGED staging
    table, then three plain statements on the real tables, with their indexes, constraints and
    triggers: INSERT of the enrichment_state rows, UPDATE of the ip_inventory rows (document,
    current_asn, geo_country and their sources), INSERT of the first ip_asn_history ranges; COMMIT.
    No resolution across sources, no classification, no locks, no counts: what the schema the
    seed design asks for costs at least, so the table shows how much of (a)'s distance to (f) is
    the tiers and how much is ipintel's logic.
(b) The old tool's way on 20,000 IPs: for each IP a lookup, then one
    `INSERT ... ON CONFLICT DO UPDATE` of the same enrichment document in its own transaction
    (one commit per IP). It writes only the document; (a) also keeps asn_inventory,
    current_asn, ip_asn_history and the run rows, so the comparison flatters (b).

Both start from clones of one database: same inventory, same indexes, same generated
.mmdb files. The inventory is generated set-based in SQL (generate_series): most IPs come from
a few thousand clusters in public IPv4 space (and a few IPv6 /48s), weighted so that a few
hosting networks hold a large share of the attackers, as honeypot data does; the rest is
uniform background noise over 1.0.0.0-223.255.255.255 (which brings a few bogons, never
looked up). The clusters are also the networks of the generated City and ASN files.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from bench import table
from ipintel import schema
from ipintel.config import Settings
from ipintel.enrich import Batches, EnrichOptions, Stopped, enrich
from ipintel.passes import MaxMindPass
from ipintel.progress import Reporter
from ipintel.sources import maxmind
from tests.mmdb_factory import asn_record, city_record, write_asn_db, write_city_db

CITY_EPOCH = 1_760_000_000  # 2025-10-09: fixed, so runs are comparable
ASN_EPOCH = CITY_EPOCH + 3_600
# First octets of public IPv4 space the clusters are drawn from (the bogon /8s and the /8s
# holding smaller special-purpose blocks left out, so every cluster is routable).
PUBLIC_FIRST_OCTETS = [o for o in range(1, 224) if o not in {10, 100, 127, 169, 172, 192, 198, 203}]
# Hosting providers' IPv6 /32s; a cluster is one /48 in one of them.
IPV6_PROVIDERS = ["2a01:4f8", "2001:19f0", "2604:a880", "2a03:b0c0", "2400:6180", "2600:3c00"]
COUNTRIES = ["US", "CN", "RU", "DE", "NL", "BR", "IN", "VN", "KR", "GB", "FR", "SG", "HK", "ID", "TW",
             "JP", "UA", "IR", "TR", "AR"]
IPV6_SHARE = 0.03          # of clusters
NOISE_SHARE = 0.05         # of IPs: uniform over 1.0.0.0-223.255.255.255
CLUSTER_SKEW = 2.5         # cluster = floor(random()^skew * clusters): low ids are drawn far more often
CITY_COVERAGE = 0.90       # clusters with their own City network (the rest: country-level /8 only)
ASN_COVERAGE = 0.92        # clusters inside an ASN network (the rest: no ASN)


@dataclass(frozen=True, slots=True)
class Cluster:
    cid: int
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    size: int  # hosts are drawn from the first `size` addresses of the network


def make_clusters(count: int, rng: random.Random) -> list[Cluster]:
    """The heaviest clusters (lowest ids) are the largest networks: /16, then /20, /22, /24."""
    clusters = []
    for cid in range(count):
        network: ipaddress.IPv4Network | ipaddress.IPv6Network
        if rng.random() < IPV6_SHARE:
            network = ipaddress.IPv6Network(f"{rng.choice(IPV6_PROVIDERS)}:{rng.randrange(1, 65536):x}::/48")
            size = 65_536
        else:
            rank = cid / count
            prefix = 16 if rank < 0.1 else 20 if rank < 0.4 else 22 if rank < 0.7 else 24
            address = (rng.choice(PUBLIC_FIRST_OCTETS) << 24) | rng.randrange(1 << 24)
            network = ipaddress.IPv4Network((address, prefix), strict=False)
            size = network.num_addresses
        clusters.append(Cluster(cid, network, size))
    return clusters


def write_mmdb_files(folder: Path, clusters: list[Cluster], rng: random.Random) -> dict[str, int]:
    """GeoLite2-City.mmdb and GeoLite2-ASN.mmdb over the clusters; returns network counts."""
    city: dict[str, dict[str, Any]] = {}
    for octet in PUBLIC_FIRST_OCTETS:  # country-level background, as real files have
        city[f"{octet}.0.0.0/8"] = city_record(rng.choice(COUNTRIES), None, subdivisions=())
    for prefix in IPV6_PROVIDERS:
        city[f"{prefix}::/32"] = city_record(rng.choice(COUNTRIES), None, subdivisions=())
    asns = [rng.randrange(1_000, 400_000) for _ in range(max(1, len(clusters) // 5))]
    asn: dict[str, dict[str, Any]] = {}
    for c in clusters:
        if rng.random() < CITY_COVERAGE:
            city[str(c.network)] = city_record(
                rng.choice(COUNTRIES), f"City {c.cid}", subdivisions=(f"S{c.cid % 50}",),
                latitude=rng.uniform(-60, 70), longitude=rng.uniform(-180, 180),
                accuracy_radius=rng.choice([5, 20, 50, 100, 500, 1000]))
        if rng.random() < ASN_COVERAGE:
            # Allocations are often wider than the geolocation network.
            widen = rng.choice([0, 0, 1, 2]) if c.network.prefixlen > 16 else 0
            number = asns[min(int(rng.random() ** 2 * len(asns)), len(asns) - 1)]
            asn[str(c.network.supernet(prefixlen_diff=widen))] = asn_record(number, f"BENCH-AS{number}")
    write_city_db(folder / "GeoLite2-City.mmdb", city, build_epoch=CITY_EPOCH)
    write_asn_db(folder / "GeoLite2-ASN.mmdb", asn, build_epoch=ASN_EPOCH)
    return {"city_networks": len(city), "asn_networks": len(asn), "asns": len(set(asns))}


# Candidates are drawn with duplicates; the first `ips` distinct ones (in draw order) are kept.
GENERATE_INVENTORY = """
CREATE TEMPORARY TABLE bench_candidates AS
WITH draws AS MATERIALIZED (
    SELECT g, floor(power(random(), {skew}) * {clusters})::int AS cid,
           random() AS r, random() AS noise, random() AS t, random() AS s
    FROM generate_series(1, {candidates}) AS g)
SELECT d.g, d.t, d.s,
       CASE WHEN d.noise < {noise} THEN '1.0.0.0'::inet + floor(d.r * 3724541952)::bigint
            ELSE c.base + floor(d.r * c.size)::bigint END AS ip
FROM draws d JOIN pg_temp.bench_clusters c ON c.cid = d.cid;

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
SELECT x.ip, x.first_seen, x.first_seen + x.s * interval '3 days', 1 + floor(power(x.s, 4) * 40)::bigint
FROM (SELECT ip, min(g) AS g, now() - interval '90 days' * min(t) AS first_seen, min(s) AS s
      FROM pg_temp.bench_candidates GROUP BY ip) x
ORDER BY x.g
LIMIT {ips};
"""


def seed_inventory(dsn: str, clusters: list[Cluster], ips: int, seed: float) -> dict[str, Any]:
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT setseed(%(seed)s)", {"seed": seed})
        conn.execute("CREATE TEMPORARY TABLE bench_clusters (cid integer PRIMARY KEY, base inet NOT NULL, "
                     "size bigint NOT NULL)")
        with conn.cursor() as cur, cur.copy("COPY pg_temp.bench_clusters (cid, base, size) FROM STDIN") as copy:
            for c in clusters:
                copy.write_row((c.cid, str(c.network.network_address), c.size))
        conn.execute(sql.SQL(GENERATE_INVENTORY).format(
            skew=sql.Literal(CLUSTER_SKEW), clusters=sql.Literal(len(clusters)),
            candidates=sql.Literal(int(ips * 1.3) + 1_000), noise=sql.Literal(NOISE_SHARE), ips=sql.Literal(ips)))
        row = conn.execute("SELECT count(*), count(*) FILTER (WHERE family(ip) = 6), count(*) FILTER (WHERE is_bogon) "
                           "FROM ipintel.ip_inventory").fetchone()
        assert row is not None
        if row[0] != ips:
            raise RuntimeError(f"generated {row[0]:,} distinct IPs, wanted {ips:,}: use more --networks")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) ipintel.ip_inventory")
    return {"ips": row[0], "ipv6": row[1], "bogons": row[2], "clusters": len(clusters),
            "seconds": round(time.perf_counter() - started, 2)}


class TimedMaxMindPass(MaxMindPass):
    """The production pass, with the time it waited for its batches' COPY + merge measured:
    Batches writes a batch while the pass looks up the next one, so only the wait is not
    hidden behind the lookups (each write waits for the batch before; finish for the last)."""

    def fetch(self, ips: list[str], batches: Batches) -> Stopped | None:
        self.write_seconds = self.finish_seconds = 0.0
        write, finish = batches.write, batches.finish

        def timed_write(*args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            write(*args, **kwargs)
            self.write_seconds += time.perf_counter() - started

        def timed_finish() -> None:
            started = time.perf_counter()
            finish()
            self.finish_seconds += time.perf_counter() - started

        batches.write = timed_write  # type: ignore[method-assign]  # wrapped, to time the waits
        batches.finish = timed_finish  # type: ignore[method-assign]
        started = time.perf_counter()
        try:
            return super().fetch(ips, batches)
        finally:
            self.fetch_seconds = time.perf_counter() - started


def offline_settings(dsn: str, geoip: Path) -> Settings:
    """Settings for a MaxMind pass on the generated files, with no remote source configured."""
    return Settings(database_url=dsn, geoip_dir=str(geoip), cymru_addr="", greynoise_url="", greynoise_key=None)


def measure_pass(dsn: str, geoip: Path) -> dict[str, Any]:
    settings = offline_settings(dsn, geoip)
    p = TimedMaxMindPass(settings, system_dirs=())
    started = time.perf_counter()
    summary = enrich(settings, EnrichOptions(sources=("maxmind",)), reporter=Reporter(), passes=[p])
    total = time.perf_counter() - started
    [ps] = summary.passes
    if ps.status != "succeeded" or ps.merged != ps.due:
        raise RuntimeError(f"the MaxMind pass did not succeed: {ps}")
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """SELECT count(*) FILTER (WHERE enrichment ? 'maxmind'),
                      count(*) FILTER (WHERE (enrichment #>> '{maxmind,found}')::boolean),
                      count(*) FILTER (WHERE current_asn IS NOT NULL),
                      (SELECT count(*) FROM ipintel.asn_inventory),
                      (SELECT count(*) FROM ipintel.ip_asn_history)
               FROM ipintel.ip_inventory""").fetchone()
    assert row is not None and row[0] == ps.merged
    return {
        "what": "ipintel enrich --source maxmind: ips_due + sorted lookups + COPY + merge_maxmind per 10,000",
        "due": ps.due, "fetched": ps.fetched, "merged": ps.merged, "found": row[1], "with_asn": row[2],
        "asn_inventory_rows": row[3], "ip_asn_history_rows": row[4],
        "pass_seconds": round(ps.seconds, 2),
        "lookup_seconds": round(p.fetch_seconds - p.write_seconds, 2),
        # COPY + merge not overlapped with the lookups: the waits of write and finish
        "merge_wait_seconds": round(p.write_seconds + p.finish_seconds, 2),
        "due_query_and_setup_seconds": round(ps.seconds - p.fetch_seconds - p.finish_seconds, 2),
        "enrich_total_seconds": round(total, 2),
        "ips_per_second": round(ps.fetched / ps.seconds),
    }


# The old tool: the document of one IP, upserted and committed on its own.
UPSERT = """
INSERT INTO ipintel.ip_inventory AS i (ip, enrichment)
VALUES (%(ip)s::inet, jsonb_build_object('maxmind', %(doc)s::jsonb || jsonb_build_object('fetched_at', now())))
ON CONFLICT (ip) DO UPDATE SET enrichment = i.enrichment || excluded.enrichment, updated_at = now()
"""


FLOOR_BATCH = 10_000


def measure_floor(dsn: str) -> dict[str, Any]:
    """COPY + UPDATE ... FROM of the documents (a) wrote, on a primary-key-only table."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT host(ip), enrichment -> 'maxmind' FROM ipintel.ip_inventory "
                            "WHERE enrichment ? 'maxmind' ORDER BY last_seen DESC NULLS LAST, ip").fetchall()
        conn.execute("CREATE TABLE public.floor_inventory (ip inet PRIMARY KEY, enrichment jsonb NOT NULL DEFAULT '{}')")
        conn.execute("INSERT INTO public.floor_inventory (ip) SELECT ip FROM ipintel.ip_inventory")
        conn.execute("CREATE UNLOGGED TABLE public.floor_staging (batch_id bigint NOT NULL, ip inet NOT NULL, "
                     "result jsonb NOT NULL)")
        conn.execute("CREATE INDEX ON public.floor_staging (batch_id)")
        conn.commit()
        with psycopg.connect(dsn, autocommit=True) as vacuum:
            vacuum.execute("VACUUM (ANALYZE) public.floor_inventory")
        checkpoint(dsn)
        started = time.perf_counter()
        for batch_id, first in enumerate(range(0, len(rows), FLOOR_BATCH)):
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY public.floor_staging (batch_id, ip, result) FROM STDIN") as copy:
                    for ip, doc in rows[first:first + FLOOR_BATCH]:
                        copy.write_row((batch_id, ip, Jsonb(doc)))
                cur.execute("UPDATE public.floor_inventory f SET enrichment = jsonb_build_object('maxmind', s.result) "
                            "FROM public.floor_staging s WHERE s.batch_id = %s AND f.ip = s.ip", (batch_id,))
                cur.execute("DELETE FROM public.floor_staging WHERE batch_id = %s", (batch_id,))
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE public.floor_inventory, public.floor_staging")
    return {"what": "per 10,000: COPY into UNLOGGED staging, UPDATE ... FROM into a primary-key-only table, COMMIT",
            "rows": len(rows), "seconds": round(seconds, 2), "rows_per_second": round(len(rows) / seconds)}


def measure_tier_writes(pass_dsn: str, tier_dsn: str) -> dict[str, Any]:
    """(t): the answers (a) merged, written by three plain statements per batch into the real tiers
    of `tier_dsn` (a clone of the inventory before (a)); see the module's docstring."""
    with psycopg.connect(pass_dsn) as conn:
        rows = conn.execute("SELECT host(ip), enrichment -> 'maxmind', current_asn, geo_country FROM ipintel.ip_inventory "
                            "WHERE enrichment ? 'maxmind' ORDER BY last_seen DESC NULLS LAST, ip").fetchall()
        asns = [r[0] for r in conn.execute("SELECT asn FROM ipintel.asn_inventory")]
    with psycopg.connect(tier_dsn) as conn:
        # the ASNs exist before, as merge_maxmind's AS names make them (current_asn references them)
        conn.execute("INSERT INTO ipintel.asn_inventory (asn) SELECT unnest(%s::bigint[])", (asns,))
        conn.execute("CREATE UNLOGGED TABLE public.tier_staging (batch_id bigint NOT NULL, ip inet NOT NULL, "
                     "result jsonb NOT NULL, asn bigint, country text)")
        conn.execute("CREATE INDEX ON public.tier_staging (batch_id)")
        conn.commit()
        with psycopg.connect(tier_dsn, autocommit=True) as vacuum:
            vacuum.execute("VACUUM (ANALYZE)")
        checkpoint(tier_dsn)
        started = time.perf_counter()
        for batch_id, first in enumerate(range(0, len(rows), FLOOR_BATCH)):
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY public.tier_staging (batch_id, ip, result, asn, country) FROM STDIN") as copy:
                    for ip, doc, asn, country in rows[first:first + FLOOR_BATCH]:
                        copy.write_row((batch_id, ip, Jsonb(doc), asn, country))
                for statement in TIER_WRITES:
                    cur.execute(statement, {"batch": batch_id})
        seconds = time.perf_counter() - started
        history = conn.execute("SELECT count(*) FROM ipintel.ip_asn_history").fetchone()
        conn.execute("DROP TABLE public.tier_staging")
        conn.commit()
    assert history is not None
    return {"what": "per 10,000: COPY into UNLOGGED staging, then INSERT enrichment_state, UPDATE ip_inventory, "
                    "INSERT ip_asn_history on the real tables, COMMIT",
            "rows": len(rows), "history_rows": history[0], "seconds": round(seconds, 2),
            "rows_per_second": round(len(rows) / seconds)}


# (t)'s three writes of one batch, and the staging rows' deletion (as the floor's).
TIER_WRITES: tuple[LiteralString, ...] = (
    """INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, changed_at, asn, asn_observed, country)
       SELECT s.ip, 'maxmind', now(), now(), s.asn, s.asn IS NOT NULL, nullif(s.country, 'XX')
       FROM public.tier_staging s WHERE s.batch_id = %(batch)s""",
    """UPDATE ipintel.ip_inventory i
       SET enrichment = i.enrichment || jsonb_build_object('maxmind', s.result), current_asn = s.asn,
           current_asn_source = CASE WHEN s.asn IS NOT NULL THEN 'maxmind' END, geo_country = s.country,
           geo_country_source = CASE WHEN s.country <> 'XX' THEN 'maxmind' END, updated_at = now()
       FROM public.tier_staging s WHERE s.batch_id = %(batch)s AND i.ip = s.ip""",
    """INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
       SELECT s.ip, s.asn, tstzrange(now(), NULL, '[)'), 'maxmind'
       FROM public.tier_staging s WHERE s.batch_id = %(batch)s AND s.asn IS NOT NULL""",
    "DELETE FROM public.tier_staging WHERE batch_id = %(batch)s",
)


def measure_unchanged(dsn: str, geoip: Path) -> dict[str, Any]:
    """The pass again with the same files: nothing due, nothing written (pg_stat tuples written)."""
    settings = offline_settings(dsn, geoip)
    written = ("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables "
               "WHERE relname IN ('ip_inventory', 'enrichment_state', 'ip_asn_history', 'asn_inventory')")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        before = conn.execute(written).fetchone()
    started = time.perf_counter()
    summary = enrich(settings, EnrichOptions(sources=("maxmind",)), reporter=Reporter(),
                     passes=[MaxMindPass(settings, system_dirs=())])
    seconds = time.perf_counter() - started
    time.sleep(1.0)  # statistics reach the shared counters within a second of the run's end
    with psycopg.connect(dsn, autocommit=True) as conn:
        after = conn.execute(written).fetchone()
    assert before is not None and after is not None
    [ps] = summary.passes
    return {"what": "ipintel enrich --source maxmind again, same files", "due": ps.due, "merged": ps.merged,
            "rows_written": int(after[0]) - int(before[0]), "seconds": round(seconds, 2)}


def measure_row_by_row(dsn: str, geoip: Path, ips: int) -> dict[str, Any]:
    dbs = maxmind.find_databases(str(geoip), ())
    build = max(d.build_epoch for d in (dbs.location, dbs.asn) if d is not None)
    with psycopg.connect(dsn) as conn, maxmind.MaxMindLookup(dbs) as lookup:
        started = time.perf_counter()
        due = [r[0] for r in conn.execute(
            "SELECT host(ip) FROM ipintel.ips_due('maxmind', %(n)s, false, NULL, %(build)s)",
            {"n": ips, "build": build})]
        conn.commit()
        for ip in due:
            conn.execute(UPSERT, {"ip": ip, "doc": Jsonb({**lookup.lookup(ip), "build_epoch": build})})
            conn.commit()
        seconds = time.perf_counter() - started
        written = conn.execute("SELECT count(*) FROM ipintel.ip_inventory WHERE enrichment ? 'maxmind'").fetchone()
    assert written is not None and written[0] == len(due) == ips
    return {
        "what": "per IP: lookup, INSERT ... ON CONFLICT DO UPDATE of the document, COMMIT",
        "ips": len(due), "commits": len(due), "seconds": round(seconds, 2),
        "ips_per_second": round(len(due) / seconds),
    }


@contextmanager
def scratch_databases(server: str, *names: str) -> Iterator[list[str]]:
    """DSNs of databases created on demand by the caller (CREATE DATABASE), dropped at the end."""
    try:
        yield [make_conninfo(server, dbname=name) for name in names]
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def server_facts(server: str) -> dict[str, Any]:
    with psycopg.connect(server) as conn:
        row = conn.execute("SELECT current_setting('server_version'), current_setting('fsync'), "
                           "current_setting('synchronous_commit'), current_setting('shared_buffers')").fetchone()
    assert row is not None
    return {"server_version": row[0], "fsync": row[1], "synchronous_commit": row[2], "shared_buffers": row[3],
            "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def checkpoint(dsn: str) -> None:
    """Start each measurement without the previous step's dirty buffers (needs superuser)."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        pass


def run(server: str, *, ips: int, baseline_ips: int, networks: int, seed: float) -> dict[str, Any]:
    token = uuid.uuid4().hex[:8]
    pass_db, baseline_db = f"ipintel_bench_pass_{token}", f"ipintel_bench_rowbyrow_{token}"
    tier_db = f"ipintel_bench_tiers_{token}"
    rng = random.Random(seed)
    results: dict[str, Any] = {"environment": server_facts(server)}
    with tempfile.TemporaryDirectory(prefix="ipintel-bench-") as tmp, \
            scratch_databases(server, pass_db, baseline_db, tier_db) as (pass_dsn, baseline_dsn, tier_dsn):
        geoip = Path(tmp)
        clusters = make_clusters(networks, rng)
        results["mmdb"] = write_mmdb_files(geoip, clusters, rng)
        print(f"mmdb: {results['mmdb']['city_networks']:,} City and {results['mmdb']['asn_networks']:,} "
              "ASN networks", flush=True)

        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pass_db)))
        schema.upgrade(pass_dsn)
        results["inventory"] = seed_inventory(pass_dsn, clusters, ips, seed)
        inv = results["inventory"]
        print(f"inventory: {inv['ips']:,} IPs ({inv['ipv6']:,} IPv6, {inv['bogons']:,} bogons) generated in "
              f"{inv['seconds']} s", flush=True)
        with psycopg.connect(server, autocommit=True) as conn:  # the same starting point for (b)
            for clone in (baseline_db, tier_db):
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(clone), sql.Identifier(pass_db)))

        checkpoint(server)
        print(f"(a) MaxMind pass over {ips:,} IPs ...", flush=True)
        a = results["set_based_pass"] = measure_pass(pass_dsn, geoip)
        print(f"    {a['fetched']:,} IPs in {a['pass_seconds']} s = {a['ips_per_second']:,} IPs/s "
              f"(lookups {a['lookup_seconds']} s, waiting for COPY + merge {a['merge_wait_seconds']} s, "
              f"due query and setup {a['due_query_and_setup_seconds']} s)", flush=True)

        checkpoint(server)
        print("(a2) the same pass again, same files ...", flush=True)
        u = results["unchanged_build"] = measure_unchanged(pass_dsn, geoip)
        print(f"    {u['due']:,} IPs due, {u['merged']:,} merged, {u['rows_written']:,} rows written, "
              f"{u['seconds']} s", flush=True)

        print(f"(f) floor: COPY + UPDATE ... FROM of the same {a['merged']:,} documents, primary key only ...",
              flush=True)
        f = results["floor"] = measure_floor(pass_dsn)
        print(f"    {f['rows']:,} rows in {f['seconds']} s = {f['rows_per_second']:,} rows/s", flush=True)

        checkpoint(server)
        print("(t) the tiers' own writes of the same answers, plain statements on the real tables ...", flush=True)
        t = results["tier_writes"] = measure_tier_writes(pass_dsn, tier_dsn)
        print(f"    {t['rows']:,} rows in {t['seconds']} s = {t['rows_per_second']:,} rows/s", flush=True)

        checkpoint(server)
        print(f"(b) old row-by-row way over {baseline_ips:,} IPs ...", flush=True)
        b = results["row_by_row"] = measure_row_by_row(baseline_dsn, geoip, baseline_ips)
        print(f"    {b['ips']:,} IPs in {b['seconds']} s = {b['ips_per_second']:,} IPs/s", flush=True)

    results["ratio"] = round(a["ips_per_second"] / b["ips_per_second"], 1)
    results["ratio_to_floor"] = round(a["ips_per_second"] / f["rows_per_second"], 2)
    print(f"set-based pass / floor: {results['ratio_to_floor']}x the floor's rows per second (target 0.7x)",
          flush=True)
    env = results["environment"]
    print(f"set-based pass / row-by-row: {results['ratio']}x the IPs per second "
          f"(fsync={env['fsync']}, synchronous_commit={env['synchronous_commit']})", flush=True)
    results["table_rows"] = table_rows(ips, a, u, f, b, t)
    return results


def table_rows(ips: int, a: dict[str, Any], u: dict[str, Any], f: dict[str, Any], b: dict[str, Any],
               t: dict[str, Any]) -> list[dict[str, Any]]:
    """The first enrichment against the floor's rows per second; the unchanged build against the
    first pass's time (both in this run): it should write nothing and take next to no time."""
    size = f"{ips:,} IPs"
    unchanged_ratio = u["seconds"] / a["pass_seconds"] if a["pass_seconds"] else None
    return [
        table.row("MaxMind pass, first enrichment", size, f"{a['ips_per_second']:,} IPs/s",
                  floor=f"{f['rows_per_second']:,} rows/s", floor_kind="COPY + UPDATE ... FROM, primary key only",
                  baseline=f"{b['ips_per_second']:,} IPs/s row by row", ratio=a["ips_per_second"] / f["rows_per_second"],
                  target=">=0.7x floor", target_op=">=", target_value=0.7),
        # The least the tiers themselves take for the same answers (no target: it names the limit).
        table.row("MaxMind pass, first enrichment, against the tiers' own writes", size,
                  f"{a['ips_per_second']:,} IPs/s", floor=f"{t['rows_per_second']:,} rows/s",
                  floor_kind="COPY + plain INSERT enrichment_state, UPDATE ip_inventory, INSERT ip_asn_history",
                  ratio=a["ips_per_second"] / t["rows_per_second"], better="higher",
                  target="none (what the tiers must write at least)"),
        table.row("MaxMind pass, unchanged build", size, f"{u['seconds']} s, {u['rows_written']:,} rows written",
                  floor=f"{a['pass_seconds']} s", floor_kind="the first pass, to scale",
                  baseline="nothing to do", ratio=unchanged_ratio, better="lower",
                  target="<=3 s, no row written", met_=u["seconds"] <= 3 and u["rows_written"] == 0),
    ]
