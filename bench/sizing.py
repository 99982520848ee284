"""Sizing figures for docs/scaling.md: throughput of each step and disk per million rows.

`python -m bench.sizing [--ips N] [--sessions N] [--log-mb N]` (IPINTEL_BENCH_DSN names the
server, as for `python -m bench`). In scratch databases there, each migrated to the head:

1. ingest: one generated Cowrie log of --log-mb MB (ipintel.demo_logs.generate_large) through
   `ipintel.ingest.ingest`: lines, events and sessions per second;
2. the passes, production code end to end (`ipintel.enrich.enrich`): an inventory of --ips IPs
   (bench/maxmind_pass.py's generator, with generated GeoLite2 City and ASN files), --sessions
   sessions over them, then the MaxMind pass, the Team Cymru pass against the fake bulk whois
   server with an answer for every IP, and the GreyNoise pass (enterprise tier, POST /v3/ip)
   against the fake API, each timed; the passes run with no network latency, so these are
   ipintel's own rates (lookups, COPY, merge), not the services';
3. take_snapshots over those sessions;
4. a newer MaxMind build: every IP due again, the refresh timed, and how many of the
   enrichment_state rewrites were HOT;
5. the size of every table (heap, indexes, TOAST), per million sessions and per million IPs.

Figures go to bench/out/sizing.json and are printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql

from bench.maxmind_pass import (
    ASN_EPOCH,
    CITY_EPOCH,
    checkpoint,
    make_clusters,
    scratch_databases,
    seed_inventory,
    server_facts,
    write_mmdb_files,
)
from ipintel import db as ipdb, demo_logs, ingest, schema
from ipintel.config import Settings
from ipintel.enrich import EnrichOptions, Pass, enrich
from ipintel.passes import CymruPass, GreyNoisePass, MaxMindPass
from ipintel.progress import Reporter

OUT_DIR = Path(__file__).resolve().parent / "out"
QUERIES = {q.name: q.sql for q in ipdb.parse_queries(Path(__file__).with_suffix(".sql").read_text(encoding="utf-8"))}
MB = 1 << 20


def q(name: str) -> LiteralString:
    # Our own file, never input: as literal as a string in the source.
    return cast(LiteralString, QUERIES[name])


def create(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(server, dbname=name)
    schema.upgrade(dsn)
    return dsn


def vacuum_and_sizes(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(q("vacuum_analyze"))
        return [{"table": t, "rows": n, "total_bytes": b, "heap_bytes": h, "index_bytes": i}
                for t, n, b, h, i in conn.execute(q("table_sizes")).fetchall()]


def measure_ingest(dsn: str, log_mb: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ipintel-sizing-") as tmp:
        # One generated day is ~5 MB; every day must lie in the past, or ingest rejects its lines
        # as implausible (more than a day in the future).
        start = date.today() - timedelta(days=log_mb // 4 + 10)
        log = demo_logs.generate_large(Path(tmp) / "cowrie.json", log_mb * MB, start=start)
        print(f"ingest: {log.bytes / MB:,.0f} MB, {log.events:,} events, {log.sessions:,} sessions ...", flush=True)
        checkpoint(dsn)
        started = time.perf_counter()
        summary = ingest.ingest(dsn, [str(log.path)], reporter=Reporter(interactive=False))
        seconds = time.perf_counter() - started
    result = {"mb": round(log.bytes / MB), "lines": summary.lines, "events": summary.events,
              "sessions": summary.sessions_new, "ips": summary.ips_new, "rejects": summary.rejects,
              "seconds": round(seconds, 1), "lines_per_second": round(summary.lines / seconds),
              "sessions_per_second": round(summary.sessions_new / seconds),
              "mb_per_second": round(log.bytes / MB / seconds, 1)}
    print(f"    {result['lines_per_second']:,} lines/s, {result['sessions_per_second']:,} sessions/s "
          f"({result['seconds']} s)", flush=True)
    return result


def timed_pass(dsn: str, settings: Settings, p: Pass, *, force: bool = False) -> dict[str, Any]:
    checkpoint(dsn)
    started = time.perf_counter()
    summary = enrich(settings, EnrichOptions(sources=(p.source,), force=force), passes=[p],
                     reporter=Reporter(interactive=False))
    seconds = time.perf_counter() - started
    [ps] = summary.passes
    if ps.status not in ("succeeded", "finished_with_failures"):
        raise RuntimeError(f"the {p.source} pass did not finish: {ps}")
    result = {"source": p.source, "due": ps.due, "fetched": ps.fetched, "merged": ps.merged, "failed": ps.failed,
              "pass_seconds": round(ps.seconds, 1), "enrich_seconds": round(seconds, 1),
              "snapshots_taken": summary.snapshots,
              # enrich() = lock + the pass + take_snapshots(): the rest is the snapshot step
              "snapshot_seconds": round(seconds - ps.seconds, 1),
              "ips_per_second": round(ps.fetched / ps.seconds) if ps.seconds else None}
    print(f"    {p.source}: {ps.fetched:,} IPs in {ps.seconds:.1f} s = {result['ips_per_second']:,} IPs/s "
          f"(then {summary.snapshots:,} snapshots; enrich {seconds:.1f} s)", flush=True)
    return result


def hot_share(dsn: str, table: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(q("update_counters"), {"table": table}).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def measure_passes(server: str, dsn: str, ips: int, sessions: int, networks: int) -> dict[str, Any]:
    from bench.cymru_pass import answer_table
    from tests.fakes.cymru_server import running_cymru_server
    from tests.fakes.greynoise_server import GreyNoiseFake, _QuickStopHTTPServer

    rng = random.Random(0.42)
    result: dict[str, Any] = {}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake's access log, one line per request
    with tempfile.TemporaryDirectory(prefix="ipintel-sizing-") as tmp:
        geoip = Path(tmp)
        clusters = make_clusters(networks, rng)
        facts = rng.getstate()  # the refresh below writes the same facts with newer build epochs
        write_mmdb_files(geoip, clusters, rng)
        result["inventory"] = seed_inventory(dsn, clusters, ips, 0.42)
        started = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            conn.execute(sql.SQL(q("add_sessions")).format(sessions=sql.Literal(sessions)))
            row = conn.execute(q("counts")).fetchone()
        assert row is not None
        result["sessions"] = {"sessions": row[1], "seconds": round(time.perf_counter() - started, 1)}
        print(f"passes: {row[0]:,} IPs, {row[1]:,} sessions", flush=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(q("vacuum_analyze"))
            addresses = [r[0] for r in conn.execute(q("routable_ips"))]

        with running_cymru_server(answer_table(addresses)) as cymru:
            http = _QuickStopHTTPServer(host="127.0.0.1", port=0, threaded=True)
            http.start()
            try:
                fake = GreyNoiseFake(http)
                settings = Settings(database_url=dsn, geoip_dir=str(geoip), cymru_addr=cymru.addr,
                                    greynoise_url=fake.url, greynoise_key=fake.api_key, cymru_batch_size=10_000,
                                    cymru_concurrency=2, greynoise_tier="enterprise", greynoise_rate=100.0)
                passes = result["passes"] = [
                    timed_pass(dsn, settings, MaxMindPass(settings, system_dirs=())),
                    # Cymru is asked by default only for IPs no source gave an ASN: forced, it
                    # refreshes every IP, as after its TTL.
                    timed_pass(dsn, settings, CymruPass(settings), force=True),
                    timed_pass(dsn, settings, GreyNoisePass(settings)),
                ]
            finally:
                http.stop()
        result["snapshots"] = {"sessions": sum(p["snapshots_taken"] for p in passes)}

        # A newer MaxMind build: every answer is due again; how many state rewrites stay HOT.
        _newer_build(geoip, clusters, facts)
        before = hot_share(dsn, "enrichment_state")
        refresh = timed_pass(dsn, settings, MaxMindPass(settings, system_dirs=()))
        after = hot_share(dsn, "enrichment_state")
        updates, hot = after[0] - before[0], after[1] - before[1]
        result["maxmind_refresh"] = refresh | {"state_updates": updates, "state_hot_updates": hot,
                                                "state_hot_percent": round(100 * hot / updates) if updates else None}
        print(f"    new build: enrichment_state {updates:,} updates, {hot:,} HOT", flush=True)
    return result


def _newer_build(geoip: Path, clusters: list[Any], facts: Any) -> None:
    """The same files again (the same random draws: `facts`), one day newer."""
    import bench.maxmind_pass as mp

    city, asn = mp.CITY_EPOCH, mp.ASN_EPOCH
    mp.CITY_EPOCH, mp.ASN_EPOCH = CITY_EPOCH + 86_400, ASN_EPOCH + 86_400
    try:
        rng = random.Random()
        rng.setstate(facts)
        write_mmdb_files(geoip, clusters, rng)
    finally:
        mp.CITY_EPOCH, mp.ASN_EPOCH = city, asn


def per_million(sizes: list[dict[str, Any]], ips: int, sessions: int) -> dict[str, Any]:
    by_table = {s["table"].removeprefix("ipintel."): s for s in sizes}
    session_tables = ["session_summaries"]
    ip_tables = ["ip_inventory", "enrichment_state", "ip_asn_history"]
    session_bytes = sum(by_table[t]["total_bytes"] for t in session_tables if t in by_table)
    ip_bytes = sum(by_table[t]["total_bytes"] for t in ip_tables if t in by_table)
    return {
        "mb_per_million_sessions": round(session_bytes / MB * 1_000_000 / sessions),
        "mb_per_million_ips": round(ip_bytes / MB * 1_000_000 / ips),
        "tables": {t: {"rows": s["rows"], "mb": round(s["total_bytes"] / MB, 1),
                       "bytes_per_row": round(s["total_bytes"] / s["rows"]) if s["rows"] > 0 else None}
                   for t, s in by_table.items() if s["total_bytes"] > 65_536},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sizing", description=__doc__.split("\n")[0])
    parser.add_argument("--ips", type=int, default=200_000, help="IPs in the inventory (default: %(default)s)")
    parser.add_argument("--sessions", type=int, default=1_000_000, help="sessions over them (default: %(default)s)")
    parser.add_argument("--networks", type=int, default=4_000, help="address clusters (default: %(default)s)")
    parser.add_argument("--log-mb", type=int, default=200, help="size of the Cowrie log ingested (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "sizing.json")
    args = parser.parse_args(argv)
    server = os.environ.get("IPINTEL_BENCH_DSN")
    if not server:
        print("python -m bench.sizing: set IPINTEL_BENCH_DSN to a PostgreSQL server URI", file=sys.stderr)
        return 2
    if args.sessions < args.ips:
        parser.error("--sessions must be at least --ips (every IP has a session)")
    token = uuid.uuid4().hex[:8]
    names = (f"ipintel_sizing_ingest_{token}", f"ipintel_sizing_passes_{token}")
    results: dict[str, Any] = {"environment": server_facts(server)}
    with scratch_databases(server, *names) as (ingest_dsn, passes_dsn):
        create(server, names[0])
        results["ingest"] = measure_ingest(ingest_dsn, args.log_mb)
        results["ingest"]["sizes"] = per_million(vacuum_and_sizes(ingest_dsn), results["ingest"]["ips"] or 1,
                                                 results["ingest"]["sessions"])
        create(server, names[1])
        results |= measure_passes(server, passes_dsn, args.ips, args.sessions, args.networks)
        results["sizes"] = per_million(vacuum_and_sizes(passes_dsn), args.ips, results["sessions"]["sessions"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in results.items() if k != "environment"}, indent=2))
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
