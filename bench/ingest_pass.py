"""`ipintel ingest` against its floor, side by side in one run (issue 15).

On generated Cowrie logs (ipintel.demo_logs: 3 sensors, 5 days, gzip and plain), each on a fresh
database of the same server:

(a) ipintel: `ingest.ingest()`, the CLI's code path (parsing in a second process);
(b) the same with parsing in the loader's own process (`parallel=False`): the shape before;
(p) parse alone: reading the files and making each chunk's COPY text (its events aggregated per
    session since revision 0081), no database;
(l) load alone: the loader's COPY + merge of those already-parsed chunks, the exact path of (a)
    without any parsing (the server's share of the work);
(f) the floor: COPY of every parsed event (chunks.copy_line, formatted before the clock starts)
    into ipintel_staging.cowrie_events, in chunks of the same size, each its own transaction,
    nothing merged: what a loader staging events must at least send (ipintel stages sessions);
(e) the steady state: the last day ingested into a database where the first four are ingested,
    their IPs answered (MaxMind-shaped answers merged by SQL, the other sources switched off)
    and their snapshots taken, so the ingest merge takes most of the new sessions' snapshots
    itself (revision 0042; in its insert since 0080); then take_snapshots() for what is left. A
    day is a run of under two seconds, and one run of it said little: the same code measured
    from 70,000 to 105,000 events/s in turns on this 2-core machine (revision 0080's A/B runs).
    So it is ingested ENRICHED_RUNS times, each into a fresh copy of the same database, and the
    median run is the figure (every run's events/s is kept in the results, `runs`);
(m) months kept: the same logs as (a) into a database that already holds 24 earlier months of
    sessions (as many a month as the logs have), one partition each. A chunk's lookup of its
    sessions by id must not grow with them (revision 0060: session_keys); the row's ratio is (m)
    to (a).

With parsing and loading overlapped, (a) cannot beat max(p, l): the figures name which bounds it.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, LiteralString
from unittest import mock

import psycopg
from psycopg import sql

from bench import table
from bench.maxmind_pass import checkpoint, scratch_databases, server_facts
from ipintel import chunks, cowrie, demo_logs, ingest, schema

EVENTS_PER_SESSION = 8.43  # what demo_logs averages: sessions = events / this
TARGET = 100_000  # events/s


def _parse_alone(files: list[Path], chunk_lines: int) -> tuple[dict[str, list[Any]], int, float]:
    """Every file's chunks as the parser makes them: (chunks per path, events, seconds)."""
    started = time.perf_counter()
    by_path: dict[str, list[Any]] = {}
    events = 0
    for index, path in enumerate(files):
        by_path[str(path)] = list(chunks.file_chunks(chunks.Job(index, str(path), 0, 0, chunk_lines)))
        events += sum(c.events for c in by_path[str(path)])
    return by_path, events, time.perf_counter() - started


class _Preparsed(ingest._ParseInline):
    """The parser of (l): hands over chunks parsed before the clock started."""

    def __init__(self, by_path: dict[str, list[Any]]) -> None:
        super().__init__()
        self._chunks = by_path
        self._queue: deque[Iterator[Any]] = deque()

    def submit(self, job: chunks.Job) -> None:
        assert job.start_offset == 0, "load alone starts from an empty database"
        self._queue.append(iter([dataclasses.replace(c, index=job.index) for c in self._chunks[job.path]]))

    def next(self) -> Any:
        while True:
            item = next(self._queue[0], None)
            if item is not None:
                return item
            self._queue.popleft()


# The staging table of single events, and its columns in chunks.copy_line's order. The loader
# stages sessions (chunks.ChunkSessions, revision 0081); the floor COPYs events, and
# tests/test_chunk_sessions.py stages them to hold ChunkSessions to the merge's own aggregation.
COPY_EVENTS: LiteralString = (
    "COPY ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, "
    "sensor, protocol, src_port, dst_ip, dst_port, duration, client_version, hassh) FROM STDIN")


def _event_payloads(files: list[Path], chunk_lines: int) -> list[bytes]:
    """Every file's events as COPY text lines of cowrie_events (chunks.copy_line), chunk_lines a
    payload: what the floor COPYs. The loader stages each chunk's sessions instead (revision 0081);
    the floor stays the COPY of every parsed event, the least a loader of events must send."""
    payloads = []
    for path in files:
        lines: list[str] = []
        with cowrie.read_events(path) as reader:
            for item in reader:
                if type(item) is cowrie.Event:
                    lines.append(chunks.copy_line(item))
                if len(lines) >= chunk_lines:
                    payloads.append("".join(lines).encode())
                    lines = []
        if lines:
            payloads.append("".join(lines).encode())
    return payloads


def _copy_floor(dsn: str, payloads: list[bytes]) -> float:
    """COPY the formatted chunks into the staging table, one transaction each; seconds."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        copy_sql = COPY_EVENTS
        started = time.perf_counter()
        for number, data in enumerate(payloads, start=1):
            prefix = b"%d\t" % number
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.write(prefix + data[:-1].replace(b"\n", b"\n" + prefix) + b"\n")
        seconds = time.perf_counter() - started
        conn.execute("TRUNCATE ipintel_staging.cowrie_events")
    return seconds


def _ingest(dsn: str, logs: Path, chunk_lines: int, parallel: bool | None) -> dict[str, Any]:
    started = time.perf_counter()
    summary = ingest.ingest(dsn, [str(logs)], chunk_lines=chunk_lines, parallel=parallel)
    seconds = time.perf_counter() - started
    return {"events": summary.events, "sessions": summary.sessions_new, "rejects": summary.rejects,
            "seconds": round(seconds, 2), "events_per_second": round(summary.events / seconds)}


# MaxMind-shaped answers for every IP of the inventory, merged through merge_batch: the setup of
# (e), not measured. 256 ASNs and one country, so snapshots have values to take.
ANSWER_EVERY_IP: LiteralString = """
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result)
SELECT %(run)s, %(batch)s, 'maxmind', i.ip, now(), 1,
       jsonb_build_object('country', 'NL', 'asn', 64500 + (hashtext(host(i.ip)) & 255),
                          'as_org', 'BENCH-AS-' || (hashtext(host(i.ip)) & 255),
                          'asn_db', jsonb_build_object('type', 'GeoLite2-ASN'))
FROM ipintel.ip_inventory i"""


def answer_every_ip(conn: psycopg.Connection[Any]) -> None:
    """MaxMind alone enabled, and its answers for every IP of the inventory merged (one run, one batch)."""
    conn.execute("UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind')")
    run = conn.execute("SELECT ipintel.start_run('maxmind', '{}'::jsonb)").fetchone()
    batch = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchone()
    assert run is not None and batch is not None
    conn.execute(ANSWER_EVERY_IP, {"run": run[0], "batch": batch[0]})
    conn.execute("SELECT * FROM ipintel.merge_batch(%s, %s)", (run[0], batch[0]))
    conn.execute("SELECT ipintel.finish_run(%s, 'succeeded', NULL)", (run[0],))


ENRICHED_RUNS = 3


def _ingest_enriched(server: str, dsn: str, files: list[Path], chunk_lines: int) -> dict[str, Any]:
    """(e): days but the last ingested, answered and snapshotted; then the last day, measured
    ENRICHED_RUNS times, each into a copy of that database: the median run, and every run."""
    last_day = [f for f in files if f.name == "cowrie.json"]  # the live file: the newest day
    earlier = [f for f in files if f.name != "cowrie.json"]
    ingest.ingest(dsn, [str(f) for f in earlier], chunk_lines=chunk_lines)
    with psycopg.connect(dsn, autocommit=True) as conn:
        answer_every_ip(conn)
        conn.execute("SELECT ipintel.take_snapshots()")
        conn.execute("SELECT ipintel.roll_up_attribution()")
        conn.execute("VACUUM (ANALYZE)")
        template = conn.info.dbname
    copies = [f"{template}_run{n}" for n in range(1, ENRICHED_RUNS + 1)]
    runs = []
    with scratch_databases(server, *copies) as copy_dsns, psycopg.connect(server, autocommit=True) as conn:
        for name, copy_dsn in zip(copies, copy_dsns, strict=True):
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
            runs.append(_ingest_enriched_once(server, copy_dsn, last_day, chunk_lines))
    median = sorted(runs, key=lambda r: r["events_per_second"])[len(runs) // 2]
    return {**median, "runs": [r["events_per_second"] for r in runs]}


def _ingest_enriched_once(server: str, dsn: str, last_day: list[Path], chunk_lines: int) -> dict[str, Any]:
    """One measured ingest of the last day into `dsn` (a copy of the prepared database)."""
    checkpoint(server)
    started = time.perf_counter()
    summary = ingest.ingest(dsn, [str(f) for f in last_day], chunk_lines=chunk_lines)
    seconds = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        # the sessions the measured run made (created_at: their ingest's transaction time)
        row = conn.execute("SELECT count(*) FILTER (WHERE snapshot_complete_at IS NOT NULL), count(*) "
                           "FROM ipintel.session_summaries "
                           "WHERE created_at >= (SELECT max(started_at) FROM ipintel.ingest_runs)").fetchone()
        assert row is not None
        taken_started = time.perf_counter()
        taken = conn.execute("SELECT ipintel.take_snapshots()").fetchone()
        taken_seconds = time.perf_counter() - taken_started
    assert taken is not None
    return {"events": summary.events, "sessions": row[1], "seconds": round(seconds, 2),
            "events_per_second": round(summary.events / seconds), "complete_at_ingest": row[0],
            "taken_after": taken[0], "take_snapshots_after_seconds": round(taken_seconds, 2)}


MONTHS_KEPT = 24
# (m): MONTHS_KEPT earlier months of sessions (as many a month as the logs hold), each in its own
# partition, from one IP; ids that no generated log uses. The sessions have no snapshot, so the
# attribution triggers queue nothing; session_keys gets their keys as for any insert.
KEEP_MONTHS: tuple[LiteralString, ...] = (
    "INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen) VALUES ('11.0.0.1', now(), now())",
    """SELECT ipintel.ensure_session_partitions(ARRAY(SELECT now() - g * interval '1 month'
                                                  FROM generate_series(1, %(months)s::int) g))""",
    """INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, protocol, source_ip,
                                          login_attempts, login_successes, event_count)
       SELECT 'kept-' || g, 'kept', m.start + (g %% 27) * interval '1 day',
              m.start + (g %% 27) * interval '1 day' + interval '1 minute', 'ssh', '11.0.0.1', 1, 0, 3
       FROM generate_series(1, %(months)s::int * %(per_month)s::int) g
       CROSS JOIN LATERAL (SELECT date_trunc('month', now()) - (1 + g %% %(months)s::int) * interval '1 month' AS start) m""")


def _ingest_months_kept(server: str, dsn: str, logs: Path, chunk_lines: int, per_month: int) -> dict[str, Any]:
    """(m): the logs into a database that already keeps MONTHS_KEPT months of sessions."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            for statement in KEEP_MONTHS:
                conn.execute(statement, {"months": MONTHS_KEPT, "per_month": per_month})
        conn.execute("VACUUM (ANALYZE)")
        row = conn.execute("SELECT (SELECT count(*) FROM ipintel.session_summaries), "
                           "(SELECT count(*) FROM pg_inherits WHERE inhparent = 'ipintel.session_summaries'::regclass)"
                           ).fetchone()
    assert row is not None
    checkpoint(server)
    return {**_ingest(dsn, logs, chunk_lines, None), "sessions_kept": row[0], "partitions": row[1]}


def run(server: str, *, events: int, chunk_lines: int = ingest.DEFAULT_CHUNK_LINES) -> dict[str, Any]:
    token = uuid.uuid4().hex[:8]
    names = [f"ipintel_bench_ingest_{token}", f"ipintel_bench_ingest_inproc_{token}",
             f"ipintel_bench_ingest_load_{token}", f"ipintel_bench_ingest_floor_{token}",
             f"ipintel_bench_ingest_enriched_{token}", f"ipintel_bench_ingest_months_{token}"]
    results: dict[str, Any] = {"environment": server_facts(server), "chunk_lines": chunk_lines}
    with tempfile.TemporaryDirectory(prefix="ipintel-bench-ingest-") as tmp, \
            scratch_databases(server, *names) as (dsn, inproc_dsn, load_dsn, floor_dsn, enriched_dsn, months_dsn):
        logs = Path(tmp) / "logs"
        generated = demo_logs.generate(logs, sessions=max(1, round(events / EVENTS_PER_SESSION)), days=5)
        files = cowrie.expand_paths([str(logs)])
        results["logs"] = {"events": generated.events, "sessions": generated.sessions, "files": len(files),
                           "bytes_on_disk": sum(f.stat().st_size for f in files)}
        print(f"ingest: {generated.events:,} events in {len(files)} files "
              f"({generated.sessions:,} sessions)", flush=True)
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(names[0])))
        schema.upgrade(dsn)
        with psycopg.connect(server, autocommit=True) as conn:  # the same empty, migrated start
            for name in names[1:]:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                              sql.Identifier(names[0])))

        checkpoint(server)
        print("(a) ipintel ingest (parsing in a second process) ...", flush=True)
        a = results["ipintel"] = _ingest(dsn, logs, chunk_lines, None)
        print(f"    {a['events']:,} events in {a['seconds']} s = {a['events_per_second']:,} events/s", flush=True)

        checkpoint(server)
        print("(b) the same, parsing in the loader's process ...", flush=True)
        b = results["in_process"] = _ingest(inproc_dsn, logs, chunk_lines, False)
        print(f"    {b['events']:,} events in {b['seconds']} s = {b['events_per_second']:,} events/s", flush=True)

        print("(p) parse alone (read, decode, format COPY lines) ...", flush=True)
        by_path, parsed, parse_seconds = _parse_alone(files, chunk_lines)
        p = results["parse_alone"] = {"events": parsed, "seconds": round(parse_seconds, 2),
                                      "events_per_second": round(parsed / parse_seconds)}
        print(f"    {parsed:,} events in {p['seconds']} s = {p['events_per_second']:,} events/s", flush=True)

        checkpoint(server)
        print("(l) load alone: COPY + merge of the parsed chunks, the loader's own path ...", flush=True)
        with mock.patch.object(ingest, "_ParseInline", lambda: _Preparsed(by_path)):
            lo = results["load_alone"] = _ingest(load_dsn, logs, chunk_lines, False)
        print(f"    {lo['events']:,} events in {lo['seconds']} s = {lo['events_per_second']:,} events/s", flush=True)

        checkpoint(server)
        print("(f) floor: COPY of the parsed events alone ...", flush=True)
        copy_seconds = _copy_floor(floor_dsn, _event_payloads(files, chunk_lines))
        f = results["copy_floor"] = {"events": parsed, "seconds": round(copy_seconds, 2),
                                     "events_per_second": round(parsed / copy_seconds)}
        print(f"    {parsed:,} events in {f['seconds']} s = {f['events_per_second']:,} events/s", flush=True)

        print("(e) the last day into a database whose IPs are enriched ...", flush=True)
        e = results["enriched"] = _ingest_enriched(server, enriched_dsn, files, chunk_lines)
        print(f"    {e['events']:,} events in {e['seconds']} s = {e['events_per_second']:,} events/s (median of "
              f"{', '.join(f'{r:,}' for r in e['runs'])}); "
              f"{e['complete_at_ingest']:,} of {e['sessions']:,} sessions complete at ingest; "
              f"take_snapshots() after: {e['taken_after']:,} sessions in {e['take_snapshots_after_seconds']} s",
              flush=True)

        print(f"(m) the same logs into a database that keeps {MONTHS_KEPT} earlier months of sessions ...", flush=True)
        m = results["months_kept"] = _ingest_months_kept(server, months_dsn, logs, chunk_lines, generated.sessions)
        print(f"    {m['events']:,} events in {m['seconds']} s = {m['events_per_second']:,} events/s "
              f"({m['sessions_kept']:,} sessions kept in {m['partitions']} partitions)", flush=True)

    bound = max(p["seconds"], lo["seconds"])
    results["limits"] = {
        "ipintel_to_copy_floor": round(a["events_per_second"] / f["events_per_second"], 2),
        "ipintel_to_parse_alone": round(a["events_per_second"] / p["events_per_second"], 2),
        "ipintel_to_load_alone": round(a["events_per_second"] / lo["events_per_second"], 2),
        "ipintel_to_in_process": round(a["events_per_second"] / b["events_per_second"], 2),
        "load_alone_to_copy_floor": round(lo["events_per_second"] / f["events_per_second"], 2),
        # Overlapped, the run takes at least the longer of the two; this says how close it gets.
        "overlap_efficiency": round(bound / a["seconds"], 2),
        "bound": "parse (one core of Python)" if p["seconds"] >= lo["seconds"] else "COPY + merge (the server)",
    }
    events_per_s = a["events_per_second"]
    results["table_rows"] = [table.row(
        "ingest", f"{a['events']:,} events", f"{events_per_s:,} events/s",
        floor=f"{f['events_per_second']:,} events/s",
        floor_kind="COPY of the parsed events into staging, same chunks",
        baseline=f"{b['events_per_second']:,} events/s (parse in the loader's process)",
        ratio=results["limits"]["ipintel_to_copy_floor"], better="higher",
        target=f">= {TARGET // 1000}K events/s", met_=events_per_s >= TARGET),
        table.row(
            "ingest, IPs already enriched (snapshots at ingest)",
            f"{e['events']:,} events, median of {len(e['runs'])} runs",
            f"{e['events_per_second']:,} events/s",
            floor=f"{f['events_per_second']:,} events/s", floor_kind="COPY of the parsed events into staging (as above)",
            baseline=f"{e['complete_at_ingest']:,} of {e['sessions']:,} snapshots complete at ingest",
            ratio=round(e["events_per_second"] / f["events_per_second"], 2), better="higher",
            target=f">= {TARGET // 1000}K events/s", met_=e["events_per_second"] >= TARGET),
        # The lookup of a chunk's sessions must not grow with the months kept (revision 0060).
        table.row(
            f"ingest, {MONTHS_KEPT} earlier months kept", f"{m['events']:,} events, {m['sessions_kept']:,} sessions kept",
            f"{m['events_per_second']:,} events/s",
            floor=f"{a['events_per_second']:,} events/s", floor_kind="the same ingest into an empty database (the first row)",
            ratio=round(m["events_per_second"] / a["events_per_second"], 2), better="higher", target="none set")]
    lim = results["limits"]
    print(f"ingest / COPY floor: {lim['ipintel_to_copy_floor']}x; / parse alone: {lim['ipintel_to_parse_alone']}x; "
          f"/ load alone: {lim['ipintel_to_load_alone']}x; / in-process parsing: {lim['ipintel_to_in_process']}x; "
          f"bound: {lim['bound']} (overlap efficiency {lim['overlap_efficiency']})", flush=True)
    return results
