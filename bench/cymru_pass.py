"""Team Cymru: wall time of 10,000 IPs against a bulk whois server that takes 5 s per batch.

Cymru says ~10,000 IPs should come back in under a minute in bulk mode. The old tool sent its
batches one after the other (~100 s for 20 batches of 500 at 5 s each); ipintel keeps two
connections open (IPINTEL_CYMRU_CONCURRENCY=2) with 500 IPs each (IPINTEL_CYMRU_BATCH_SIZE), so
the same work should take ~50 s without making us a less polite client. Both shapes are timed
here in one run, each against its own fake server (tests/fakes/cymru_server.py: real TCP, the
real line protocol, `Behaviour(latency=...)` before the banner), and the fake's record of every
connection shows how many IPs each query carried: none may ever hold a lone IP.

    .venv/bin/python -m bench.cymru_pass        # from the repository root; takes ~150 s

By default only the client (`ipintel.sources.cymru.lookup`) is timed. With IPINTEL_BENCH_DSN
naming a PostgreSQL server (as for `python -m bench`), the whole pass is timed instead
(`ipintel enrich --source cymru` through the engine: due IPs, COPY, merge_cymru, snapshots) in a
scratch database created, migrated and dropped there; the bench IPs (11.0.0.0 and up) are its
ip_inventory and each configuration forces them (`--ip`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

IPS = 10_000
LATENCY_SECONDS = 5.0
# (label, IPs per bulk query, connections at once): ipintel's defaults, then the old serial shape.
CONFIGURATIONS: tuple[tuple[str, int, int], ...] = (
    ("defaults", 500, 2),
    ("serial", 500, 1),  # the old tool
)
FIRST_IP = ipaddress.IPv4Address("11.0.0.0")


def bench_ips(count: int) -> list[str]:
    return [str(FIRST_IP + i) for i in range(count)]


def answer_table(ips: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    """One verbose row per IP, sixteen made-up origin ASNs (documentation range) over /24s."""
    table = {}
    for i, ip in enumerate(ips):
        asn = 64496 + i % 16
        prefix = str(ipaddress.ip_network(f"{ip}/24", strict=False))
        table[ip] = [(asn, prefix, "US", "arin", "2001-01-01", f"BENCH-AS-{asn}, US")]
    return table


def _seed(dsn: str, ips: Sequence[str]) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO ipintel.ip_inventory (ip) SELECT unnest(%(ips)s::inet[])", {"ips": list(ips)})


@contextmanager
def _scratch_database(server: str | None) -> Iterator[str | None]:
    """A migrated database on `server`, dropped at the end; None without a server (client only)."""
    if server is None:
        yield None
        return
    import psycopg
    from psycopg import sql

    from bench.maxmind_pass import scratch_databases
    from ipintel import schema

    name = f"ipintel_bench_cymru_{uuid.uuid4().hex[:8]}"
    with scratch_databases(server, name) as (dsn,):
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        schema.upgrade(dsn)
        yield dsn


def _time_client(addr: str, ips: Sequence[str], batch_size: int, concurrency: int) -> dict[str, Any]:
    from ipintel.sources.cymru import CymruSettings, lookup

    settings = CymruSettings(addr=addr, batch_size=batch_size, concurrency=concurrency)
    started = time.perf_counter()
    outcome = asyncio.run(lookup(ips, settings))
    seconds = round(time.perf_counter() - started, 2)
    return {"seconds": seconds, "results": outcome.results, "failed": sum(len(f.ips) for f in outcome.failures)}


def _time_pass(dsn: str, addr: str, ips: Sequence[str], batch_size: int, concurrency: int) -> dict[str, Any]:
    from ipintel.config import Settings
    from ipintel.enrich import EnrichOptions, enrich
    from ipintel.passes import CymruPass
    from ipintel.progress import Reporter

    settings = Settings(database_url=dsn, geoip_dir=None, cymru_addr=addr, greynoise_url="http://127.0.0.1:9",
                        greynoise_key=None, cymru_batch_size=batch_size, cymru_concurrency=concurrency)
    started = time.perf_counter()
    summary = enrich(settings, EnrichOptions(sources=("cymru",), ips=ips), passes=[CymruPass(settings)],
                     reporter=Reporter(interactive=False))
    seconds = round(time.perf_counter() - started, 2)
    [ps] = summary.passes
    return {"seconds": seconds, "results": ps.fetched, "merged": ps.merged, "failed": ps.failed}


def run(dsn_or_none: str | None = None, *, ips: int = IPS, latency: float = LATENCY_SECONDS,
        configurations: Sequence[tuple[str, int, int]] = CONFIGURATIONS) -> dict[str, Any]:
    """Time each configuration; returns the figures (seconds, queries, IPs per query, peak connections).

    `dsn_or_none`: a PostgreSQL server URI to time the whole pass in a scratch database there,
    or None to time the client only.
    """
    from tests.fakes.cymru_server import Behaviour, running_cymru_server

    addresses = bench_ips(ips)
    table = answer_table(addresses)
    rows = []
    with _scratch_database(dsn_or_none) as dsn:
        if dsn:
            _seed(dsn, addresses)
        for label, batch_size, concurrency in configurations:
            print(f"cymru {label}: {ips:,} IPs, batches of {batch_size}, {concurrency} connection(s), "
                  f"{latency:g} s per batch ...", flush=True)
            with running_cymru_server(table) as server:
                server.default = Behaviour(latency=latency)
                if dsn:
                    timing = _time_pass(dsn, server.addr, addresses, batch_size, concurrency)
                else:
                    timing = _time_client(server.addr, addresses, batch_size, concurrency)
                sizes = [len(query) for query in server.queries]
                row = {"label": label, "batch_size": batch_size, "concurrency": concurrency, **timing,
                       "queries": len(sizes), "min_query": min(sizes, default=0),
                       "max_query": max(sizes, default=0), "lone_ip_queries": sizes.count(1),
                       "max_concurrent": server.max_concurrent, "ips_sent": sum(sizes)}
            print(f"    {row['seconds']} s, {row['queries']} queries of {row['min_query']}-{row['max_query']} IPs, "
                  f"at most {row['max_concurrent']} at once", flush=True)
            rows.append(row)
    result: dict[str, Any] = {
        "mode": "pass" if dsn_or_none else "client", "ips": ips, "latency_seconds": latency, "runs": rows,
        "min_query": min(row["min_query"] for row in rows), "max_query": max(row["max_query"] for row in rows),
        "lone_ip_queries": sum(row["lone_ip_queries"] for row in rows),
    }
    by_label = {row["label"]: row for row in rows}
    if "defaults" in by_label and "serial" in by_label:
        result["speedup"] = round(by_label["serial"]["seconds"] / by_label["defaults"]["seconds"], 2)
    if "defaults" in by_label:
        result["table_rows"] = table_rows(result, by_label["defaults"], by_label.get("serial"))
    return result


def table_rows(result: dict[str, Any], defaults: dict[str, Any], serial: dict[str, Any] | None) -> list[dict[str, Any]]:
    """ipintel's defaults against the floor the fake's latency sets (every batch waits `latency`,
    `concurrency` at once: no client can do better), the old serial shape as the baseline."""
    from bench import table

    ips, latency = result["ips"], result["latency_seconds"]
    rounds = math.ceil(math.ceil(ips / defaults["batch_size"]) / defaults["concurrency"])
    floor = rounds * latency
    return [table.row(
        f"Team Cymru {result['mode']} against the fake", f"{ips:,} IPs, {latency:g} s per batch",
        f"{defaults['seconds']:.1f} s",
        floor=f"{floor:.1f} s", floor_kind=f"{rounds} rounds of the fake's latency",
        baseline=f"{serial['seconds']:.1f} s serial" if serial else "", ratio=defaults["seconds"] / floor,
        target="<=1.2x floor (10K IPs in a minute)", target_op="<=", target_value=1.2)]


def print_table(result: dict[str, Any]) -> None:
    print(f"Team Cymru {result['mode']}: {result['ips']:,} IPs, {result['latency_seconds']:g} s latency per bulk query")
    header = ("configuration", "batch", "conns", "seconds", "queries", "IPs/query", "lone-IP", "peak conns",
              "answered", "failed")
    lines = [header] + [
        (row["label"], str(row["batch_size"]), str(row["concurrency"]), f"{row['seconds']:.1f}", str(row["queries"]),
         f"{row['min_query']}-{row['max_query']}", str(row["lone_ip_queries"]), str(row["max_concurrent"]),
         f"{row['results']:,}", f"{row['failed']:,}")
        for row in result["runs"]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))))
    if "speedup" in result:
        print(f"defaults vs serial: {result['speedup']:.2f}x faster")
    print(f"IPs per query over every connection: {result['min_query']}-{result['max_query']}; "
          f"queries holding a lone IP: {result['lone_ip_queries']}")


if __name__ == "__main__":
    print_table(run(os.environ.get("IPINTEL_BENCH_DSN") or None))
