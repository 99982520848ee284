"""Re-merge of unchanged documents (a TTL refresh) against a bare COPY of the same rows, in one run.

A remote source's answers expire (GreyNoise: 7 days) and are fetched again; most come back
unchanged. Here N IPs get a GreyNoise answer through the production path (the queries the engine's
`Batches.write` runs: next_batch_id, COPY into ipintel_staging.enrichment_results, merge_batch,
one transaction per batch of 10,000, inside a run), then the same N documents again in a second
run: only their freshness changes.

(a) the second run's batches: COPY + merge_batch of N unchanged documents;
(f) the floor, in the same database right after: a bare COPY of the same rows (ip, fetched_at,
    document) in the same batches and transactions into a table with no index (the better of two);
(f2) the freshness floor: the same COPY into an unindexed staging table, then the least a correct
    re-merge must write, an UPDATE ... FROM of each IP's fetch time in a (ip, source) table with only
    its primary key (fillfactor 50, as enrichment_state), same batches and transactions.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from bench import table
from bench.maxmind_pass import checkpoint, scratch_databases
from ipintel import db, schema
from ipintel.enrich import copy_json, copy_results

BATCH = 10_000
SOURCE = "greynoise"


def documents(n: int) -> list[tuple[str, dict[str, Any]]]:
    """N GreyNoise-like answers for 11.0.0.0 + 37 * i (a third of them noise)."""
    import ipaddress

    first = ipaddress.IPv4Address("11.0.0.0")
    return [(str(first + 37 * i), {"observed": True, "noise": i % 3 == 0, "riot": False,
                                   "classification": "malicious" if i % 3 == 0 else "unknown",
                                   "name": f"bench-{i % 97}", "last_seen": "2026-01-01"})
            for i in range(1, n + 1)]


def merge_run(dsn: str, docs: list[tuple[str, dict[str, Any]]]) -> tuple[float, int]:
    """One run of the source over `docs`, batch by batch as the engine writes them; (seconds, merged)."""
    with psycopg.connect(dsn, row_factory=psycopg.rows.dict_row) as conn:
        run = conn.execute(db.query("start_run"), {"source": SOURCE, "provenance": "{}", "status": "running",
                                                   "message": None}).fetchone()
        conn.commit()
        assert run is not None
        merged = 0
        started = time.perf_counter()
        for first in range(0, len(docs), BATCH):
            with conn.transaction(), conn.cursor() as cur:
                batch = cur.execute(db.query("next_batch_id")).fetchone()
                assert batch is not None
                lines = copy_results(run["id"], SOURCE, datetime.now(UTC), None, docs[first:first + BATCH])
                db.copy_batch(cur, db.query("copy_enrichment_results"), batch["id"], lines)
                counts = cur.execute(db.query("merge_batch"), {"run": run["id"], "batch": batch["id"]}).fetchone()
                assert counts is not None
                merged += int(counts["merged"])
        seconds = time.perf_counter() - started
        conn.execute(db.query("finish_run"), {"run": run["id"], "status": "succeeded", "message": None})
        conn.commit()
    return seconds, merged


def copy_in_batches(conn: psycopg.Connection[Any], docs: list[tuple[str, dict[str, Any]]], table: str,
                    then: tuple[sql.Composable, ...] = ()) -> float:
    """COPY (ip, fetched_at, result) rows into public.`table` in the engine's batches, one
    transaction each, running the statements `then` after each COPY; returns the seconds."""
    started = time.perf_counter()
    for first in range(0, len(docs), BATCH):
        with conn.transaction(), conn.cursor() as cur:
            # COPY text made as the engine makes it (copy_json), so the floor is not
            # slowed by a slower formatter
            at = datetime.now(UTC).isoformat().encode()
            with cur.copy(sql.SQL("COPY {} (ip, fetched_at, result) FROM STDIN").format(
                    sql.Identifier("public", table))) as copy:
                copy.write(b"".join(ip.encode() + b"\t" + at + b"\t" + copy_json(doc) + b"\n"
                                    for ip, doc in docs[first:first + BATCH]))
            for statement in then:
                cur.execute(statement)
    return time.perf_counter() - started


def copy_floor(dsn: str, docs: list[tuple[str, dict[str, Any]]]) -> float:
    """The same rows COPYed bare, same batches and transactions, into a table with no index."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE public.floor_copy (ip inet NOT NULL, fetched_at timestamptz NOT NULL, "
                     "result jsonb NOT NULL)")
        conn.commit()
        seconds = copy_in_batches(conn, docs, "floor_copy")
        conn.execute("DROP TABLE public.floor_copy")
    return seconds


def freshness_floor(dsn: str, docs: list[tuple[str, dict[str, Any]]]) -> float:
    """COPY of the same rows, then UPDATE ... FROM of their fetch time in a primary-key-only table."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE UNLOGGED TABLE public.floor_staging (ip inet NOT NULL, fetched_at timestamptz NOT NULL, "
                     "result jsonb NOT NULL)")
        conn.execute("CREATE TABLE public.floor_state (ip inet NOT NULL, source text NOT NULL, "
                     "fetched_at timestamptz NOT NULL, PRIMARY KEY (ip, source)) WITH (fillfactor = 50)")
        conn.execute("INSERT INTO public.floor_state SELECT unnest(%s::inet[]), %s, now() - interval '8 days'",
                     ([ip for ip, _ in docs], SOURCE))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE) public.floor_state")
        conn.autocommit = False
        seconds = copy_in_batches(conn, docs, "floor_staging", then=(
            sql.SQL("UPDATE public.floor_state s SET fetched_at = f.fetched_at FROM public.floor_staging f "
                    "WHERE s.ip = f.ip AND s.source = {}").format(sql.Literal(SOURCE)),
            sql.SQL("TRUNCATE public.floor_staging")))
        conn.execute("DROP TABLE public.floor_staging, public.floor_state")
        conn.commit()
    return seconds


def run(server: str, *, documents_n: int) -> dict[str, Any]:
    name = f"ipintel_bench_remerge_{uuid.uuid4().hex[:8]}"
    docs = documents(documents_n)
    with scratch_databases(server, name) as (dsn,):
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        schema.upgrade(dsn)
        with psycopg.connect(dsn) as conn:
            conn.execute("INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen) "
                         "SELECT unnest(%s::inet[]), now() - interval '30 days', now()", ([ip for ip, _ in docs],))
        print(f"re-merge: {documents_n:,} GreyNoise documents, first merge ...", flush=True)
        first, first_merged = merge_run(dsn, docs)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        checkpoint(server)
        again, again_merged = merge_run(dsn, docs)
        checkpoint(server)
        floor = min(copy_floor(dsn, docs), copy_floor(dsn, docs))  # the better of two: it is short
        fresh = min(freshness_floor(dsn, docs), freshness_floor(dsn, docs))
    ratio = again / floor if floor else None
    fresh_ratio = again / fresh if fresh else None
    print(f"    first merge {first:.2f} s ({first_merged:,} merged); re-merge of the same documents {again:.2f} s "
          f"({again_merged:,} merged); bare COPY {floor:.2f} s: {ratio:.2f}x COPY; COPY + the fetch times' UPDATE "
          f"{fresh:.2f} s: {fresh_ratio:.2f}x" if ratio and fresh_ratio else "", flush=True)
    size = f"{documents_n:,} documents"
    return {
        "documents": documents_n, "first_merge_seconds": round(first, 2), "first_merged": first_merged,
        "remerge_seconds": round(again, 2), "remerge_merged": again_merged, "copy_floor_seconds": round(floor, 2),
        "ratio_to_copy": None if ratio is None else round(ratio, 2), "freshness_floor_seconds": round(fresh, 2),
        "ratio_to_freshness_floor": None if fresh_ratio is None else round(fresh_ratio, 2),
        "table_rows": [table.row(
            "re-merge of unchanged documents (TTL refresh)", size, f"{again:.2f} s", floor=f"{floor:.2f} s",
            floor_kind="bare COPY of the same rows", baseline=f"first merge {first:.2f} s", ratio=ratio,
            target_op="<=", target_value=1.0, target="<=1x COPY"),
            # The least any correct re-merge writes: the new fetch time of every IP.
            table.row(
                "re-merge of unchanged documents, against the fetch-time write", size, f"{again:.2f} s",
                floor=f"{fresh:.2f} s", floor_kind="COPY + UPDATE ... FROM of the fetch times, primary key only",
                ratio=fresh_ratio, better="lower", target="none (what a re-merge must write at least)")],
    }
