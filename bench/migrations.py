"""Each migration revision on a populated database: how long it takes and what it locks.

`python -m bench.migrations [--sessions N] [--ips N] [--only REV]...` (IPINTEL_BENCH_DSN names the server,
as for `python -m bench`). For every revision R of ipintel's migrations, in a database of its own:
upgrade an empty database to R's parent, generate N sessions from N/5 IPs in N/2000 ASNs there
(set-based, bench/migrations.sql: the columns every revision has, answers as they were stored at
that revision), VACUUM ANALYZE and CHECKPOINT, then `alembic upgrade R` while a second connection
samples pg_locks every few milliseconds. Recorded per revision: the time of the upgrade; for
each existing table or view the migration locked, the strongest mode seen and for how long it
was held (a revision is one transaction, so a lock is held from the moment it is taken to the
commit). The same upgrade on an empty database gives the fixed cost.

Figures go to bench/out/migrations-<N>.json and a Markdown table on stdout (docs/operations.md
quotes it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.maxmind_pass import checkpoint, server_facts
from ipintel import db as ipdb, schema

OUT_DIR = Path(__file__).resolve().parent / "out"
QUERIES = {q.name: q.sql for q in ipdb.parse_queries((Path(__file__).with_suffix(".sql")).read_text(encoding="utf-8"))}
APP = "ipintel-bench-migrate"
SAMPLE_SECONDS = 0.005
# pg_locks modes, weakest first (the conflict table of the PostgreSQL manual, "Table-Level Locks").
MODES = ["AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
         "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"]
# What each mode blocks for ipintel's traffic: readers (SELECT: AccessShare), writers (ingest and
# the merges: RowExclusive).
BLOCKS = {"AccessExclusiveLock": "reads and writes", "ExclusiveLock": "writes",
          "ShareRowExclusiveLock": "writes", "ShareLock": "writes"}


def q(name: str) -> LiteralString:
    # Our own file, never input: as literal as a string in the source.
    return cast(LiteralString, QUERIES[name])


@dataclass
class LockSpan:
    mode: str
    first: float
    last: float


@dataclass
class LockSampler:
    """Samples the migrating session's relation locks until stopped."""

    dsn: str
    spans: dict[tuple[str, str], LockSpan] = field(default_factory=dict)
    waited: set[str] = field(default_factory=set)
    samples: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                now = time.perf_counter()
                for relation, _kind, mode, granted in conn.execute(q("held_locks"), {"app": APP}).fetchall():
                    if not granted:
                        self.waited.add(relation)
                        continue
                    span = self.spans.setdefault((relation, mode), LockSpan(mode, now, now))
                    span.last = now
                self.samples += 1
                time.sleep(SAMPLE_SECONDS)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def strongest(self, ended: float, held: dict[tuple[str, str], str]) -> dict[str, dict[str, Any]]:
        """Per relation locked (`held`: every lock at the commit): its strongest mode, and how long
        that mode was held until the commit (None: taken and released between two samples, so
        for less than SAMPLE_SECONDS plus a query's time)."""
        result: dict[str, dict[str, Any]] = {}
        for relation, mode in sorted(held, key=lambda key: MODES.index(key[1])):
            span = self.spans.get((relation, mode))
            seconds = round(max(ended - span.first, 0.0), 3) if span else None
            entry = result.setdefault(relation, {"kind": held[(relation, mode)], "modes": {}})
            entry["modes"][mode] = seconds  # every mode held, and for how long
            # the strongest mode wins (held sorted weakest first)
            entry |= {"mode": mode, "held_seconds": seconds, "blocks": BLOCKS.get(mode, "nothing ipintel does")}
        return dict(sorted(result.items()))


@contextmanager
def database(server: str, name: str) -> Iterator[str]:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server, dbname=name, application_name=APP)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def row_counts(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(q("vacuum_analyze"))
        return [{"table": t, "rows": n, "bytes": b} for t, n, b in conn.execute(q("row_counts")).fetchall()]


@contextmanager
def locks_at_commit() -> Iterator[dict[tuple[str, str], str]]:
    """While active, every revision's SQL is followed, in its transaction, by a read of the locks
    its session holds (own_locks): the complete set, which sampling can miss when a statement
    takes a millisecond. Yields {(relation, mode): relkind}."""
    from ipintel import migrate

    found: dict[tuple[str, str], str] = {}
    original = migrate.run_revision_sql

    def run_and_read_locks(revision_file: str, direction: str, *, as_owner: bool | None = None) -> None:
        from alembic import op

        original(revision_file, direction, as_owner=as_owner)
        dbapi = cast("psycopg.Connection[Any]", op.get_bind().connection.dbapi_connection)
        with dbapi.cursor() as cursor:
            for relation, kind, mode in cursor.execute(q("own_locks")).fetchall():
                found[(relation, mode)] = kind

    # The revision modules import run_revision_sql when alembic loads them, for each upgrade.
    migrate.run_revision_sql = run_and_read_locks
    try:
        yield found
    finally:
        migrate.run_revision_sql = original


def timed_upgrade(dsn: str, revision: str) -> tuple[float, dict[str, dict[str, Any]], list[str]]:
    with psycopg.connect(dsn) as conn:
        existing = {r[0] for r in conn.execute(q("existing_relations"))}
    with LockSampler(dsn) as sampler, locks_at_commit() as held:
        time.sleep(0.05)  # the sampler is connected and polling
        started = time.perf_counter()
        schema.upgrade(dsn, revision)
        ended = time.perf_counter()
        time.sleep(0.02)
    held = {key: kind for key, kind in held.items() if key[0] in existing}
    return ended - started, sampler.strongest(ended, held), sorted(sampler.waited)


def revisions() -> list[tuple[str, str | None, str]]:
    """(revision, its parent, its one-line doc) from the first to the head."""
    script = schema.script_directory()
    found = [(r.revision, cast(str | None, r.down_revision), (r.doc or "").split("\n")[0])
             for r in script.walk_revisions()]
    return list(reversed(found))


def measure(server: str, revision: str, parent: str | None, sessions: int, ips: int | None = None) -> dict[str, Any]:
    token = uuid.uuid4().hex[:8]
    result: dict[str, Any] = {"revision": revision}
    with database(server, f"ipintel_bench_mig_{revision}_{token}") as dsn:
        if parent:  # the first revision creates the tables: there is nothing to fill before it
            schema.upgrade(dsn, parent)
            result["populate"] = populate_at(dsn, sessions, ips)
        result["tables"] = row_counts(dsn)
        checkpoint(dsn)
        seconds, locks, waited = timed_upgrade(dsn, revision)
        result |= {"seconds": round(seconds, 3), "locks": locks, "waited_for": waited}
    with database(server, f"ipintel_bench_mig_{revision}_empty_{token}") as dsn:
        if parent:
            schema.upgrade(dsn, parent)
        seconds, _, _ = timed_upgrade(dsn, revision)
        result["empty_seconds"] = round(seconds, 3)
    return result


def populate_at(dsn: str, sessions: int, ips: int | None = None) -> dict[str, Any]:
    """The generated data, shaped as the database's revision stores it (IPs: a fifth of the
    sessions unless `ips` says how many)."""
    started = time.perf_counter()
    sizes = {"sessions": sql.Literal(sessions), "ips": sql.Literal(ips or max(sessions // 5, 1)),
             "asns": sql.Literal(max(sessions // 2000, 1))}
    with psycopg.connect(dsn) as conn:
        applied = schema.schema_state(conn).applied
        conn.execute(q("load_without_triggers"))
        # Up to 0035 sessions hold a copy of their snapshot's document; from 0036 on the id of the
        # one stored in enrichment_documents.
        if "0036" in applied:
            conn.execute(q("populate_documents"))
            document = {"document_column": sql.Identifier("snapshot_document"),
                        "document_open": sql.SQL("(SELECT d.document_id FROM ipintel.enrichment_documents d "
                                                 "WHERE d.digest = ipintel.enrichment_digest("),
                        "document_close": sql.SQL("))")}
        else:
            document = {"document_column": sql.Identifier("snapshot_enrichment"),
                        "document_open": sql.SQL(""), "document_close": sql.SQL("")}
        conn.execute(sql.SQL(q("populate_tiers")).format(**sizes, **document))
        # From 0017 on the answers' fetch times live in enrichment_state (0016 creates it empty;
        # 0017 fills it): a revision after 0017 finds them there.
        if "0017" in applied:
            conn.execute(sql.SQL(q("populate_state")).format())
    return {"seconds": round(time.perf_counter() - started, 1)}


def held(lock: dict[str, Any]) -> str:
    return "<0.01" if lock["held_seconds"] is None else str(lock["held_seconds"])


def markdown(results: list[dict[str, Any]], sessions: int) -> str:
    per_million = 1_000_000 / sessions
    lines = [f"| revision | what | s on {sessions:,} sessions | s per 1M sessions | s empty | locks held (mode, seconds) |",
             "|---|---|---:|---:|---:|---|"]
    for r in results:
        locks = "; ".join(f"`{rel.removeprefix('ipintel.')}` {lock['mode'].removesuffix('Lock')} {held(lock)}"
                          for rel, lock in r["locks"].items() if lock["mode"] != "AccessShareLock") or "none"
        lines.append(f"| {r['revision']} | {r['doc']} | {r['seconds']} | "
                     f"{round(max(r['seconds'] - r['empty_seconds'], 0) * per_million, 1)} | {r['empty_seconds']} | {locks} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.migrations", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000,
                        help="sessions generated (IPs: a fifth, ASNs: 1 in 2,000) (default: %(default)s)")
    parser.add_argument("--ips", type=int, help="IPs generated (default: a fifth of the sessions)")
    parser.add_argument("--only", action="append", metavar="REV", help="only this revision (repeatable)")
    parser.add_argument("--out", type=Path, help="JSON results (default: bench/out/migrations-<sessions>.json)")
    args = parser.parse_args(argv)
    server = os.environ.get("IPINTEL_BENCH_DSN")
    if not server:
        print("python -m bench.migrations: set IPINTEL_BENCH_DSN to a PostgreSQL server URI (`make bench` "
              "starts a throwaway cluster and sets it)", file=sys.stderr)
        return 2
    results = []
    for revision, parent, doc in revisions():
        if args.only and revision not in args.only:
            continue
        print(f"{revision}: {doc}", flush=True)
        result = measure(server, revision, parent, args.sessions, args.ips) | {"doc": doc}
        locked = ", ".join(f"{rel} {lock['mode']} {held(lock)} s" for rel, lock in result["locks"].items()
                           if lock["mode"] != "AccessShareLock")
        print(f"    {result['seconds']} s (empty: {result['empty_seconds']} s); {locked or 'no lock beyond reads'}",
              flush=True)
        results.append(result)
    out = args.out or OUT_DIR / f"migrations-{args.sessions}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": server_facts(server), "sessions": args.sessions,
                               "revisions": results}, indent=2) + "\n", encoding="utf-8")
    print(markdown(results, args.sessions))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
