"""Revision 0027 (session_summaries partitioned by month) on a populated database: how long each
part takes, the longest lock, what a writer and a reader of sessions waited, and every row kept.

`python -m bench.partitioning [--sessions N]` (IPINTEL_BENCH_DSN names the server, as for
`python -m bench`). In a database of its own: upgrade to 0026, generate N sessions from N/5 IPs in
N/2000 ASNs over four months (bench/migrations.sql's generator, half the sessions snapshotted),
VACUUM ANALYZE, CHECKPOINT; count and checksum the sessions and digest the attribution
(bench/partitioning.sql); then `alembic upgrade 0027` while
- a sampler reads the migrating session's relation locks from pg_locks every few milliseconds
  (a lock seen in consecutive samples is one hold; its length is from the first sample that saw
  it to the last),
- a writer updates one session after another (its own transaction each, as ingest's chunks are)
  and a reader reads one session after another, each recording its slowest statement: the
  longest any of them waited for the migration;
and each part of the revision is timed (first part, copy, swap: three transactions). Then count,
checksum and digest again, and the partitions.

Figures go to bench/out/partitioning-<N>.json and a summary on stdout (docs/operations.md quotes
it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from psycopg.rows import dict_row

from bench.maxmind_pass import checkpoint, server_facts
from bench.migrations import BLOCKS, MODES, database, populate_at
from ipintel import db as ipdb, migrate, schema

OUT_DIR = Path(__file__).resolve().parent / "out"
QUERIES = {q.name: q.sql for q in ipdb.parse_queries((Path(__file__).with_suffix(".sql")).read_text(encoding="utf-8"))}
APP = "ipintel-bench-migrate"  # bench.migrations.database() names the migrating connection so
SAMPLE_SECONDS = 0.005
CANARY_PAUSE = 0.02
# Two samples apart by more than this are two holds of a lock, not one (a batch's commit).
SAME_HOLD_GAP = 0.05
REVISION, PARENT = "0027", "0026"


def q(name: str) -> LiteralString:
    # Our own file, never input: as literal as a string in the source.
    return cast(LiteralString, QUERIES[name])


@dataclass
class Hold:
    relation: str
    mode: str
    first: float
    last: float

    @property
    def seconds(self) -> float:
        return self.last - self.first


@dataclass
class LockSampler:
    """Every hold of a relation lock by the migrating session, from consecutive samples."""

    dsn: str
    holds: list[Hold] = field(default_factory=list)
    samples: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._open: dict[tuple[str, str], Hold] = {}
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True, application_name="ipintel-bench-sampler") as conn:
            while not self._stop.is_set():
                now = time.perf_counter()
                for relation, mode in conn.execute(q("migrating_locks"), {"app": APP}).fetchall():
                    hold = self._open.get((relation, mode))
                    if hold is None or now - hold.last > SAME_HOLD_GAP:
                        hold = Hold(relation, mode, now, now)
                        self._open[(relation, mode)] = hold
                        self.holds.append(hold)
                    hold.last = now
                self.samples += 1
                time.sleep(SAMPLE_SECONDS)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def longest(self, part_of: Callable[[float], str], existing: set[str]) -> list[dict[str, Any]]:
        """Per blocking mode seen (SHARE and stronger), its longest hold that another session could
        wait for: on which relation (named as it was then), in which part of the revision, how
        long. Left out: what the first part creates, which no one sees before its commit (the lock
        goes with it), and the copy's bookkeeping table, which only the revision reads."""
        def visible(h: Hold) -> bool:
            return h.relation != "ipintel.session_summaries_copy" and (
                h.relation in existing or part_of(h.first) != "first part")
        result = []
        for mode in reversed(MODES):
            holds = [h for h in self.holds if h.mode == mode and visible(h)]
            if holds and mode in BLOCKS:
                top = max(holds, key=lambda h: h.seconds)
                result.append({"mode": mode, "relation": top.relation, "part": part_of(top.first),
                               "seconds": round(top.seconds, 3), "blocks": BLOCKS[mode], "holds": len(holds)})
        return result


@dataclass
class Canary:
    """Runs one statement on one session after another until stopped; keeps the slowest."""

    dsn: str
    statement: str
    sessions: list[str]
    runs: int = 0
    slowest: float = 0.0
    slowest_at: float = 0.0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"canary-{self.statement}", daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True, application_name="ipintel-bench-canary") as conn:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    conn.execute(q(self.statement), {"session_id": self.sessions[self.runs % len(self.sessions)]})
                except psycopg.Error as exc:  # recorded, not raised: the figure says it failed
                    self.errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
                took = time.perf_counter() - started
                if took > self.slowest:
                    self.slowest, self.slowest_at = took, started
                self.runs += 1
                time.sleep(CANARY_PAUSE)

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self, origin: float) -> dict[str, Any]:
        return {"statements": self.runs, "slowest_seconds": round(self.slowest, 3),
                "slowest_at_seconds": round(self.slowest_at - origin, 3), "errors": self.errors[:3]}


@contextmanager
def timed_parts() -> Iterator[dict[str, list[float]]]:
    """While active, every SQL part a revision runs is timed: {part: [start, end]} (perf_counter)."""
    parts: dict[str, list[float]] = {}
    original_sql, original_concurrent = migrate.run_revision_sql, migrate.run_concurrent_sql

    def timed(run: Callable[..., None], part_of: Callable[..., str]) -> Callable[..., None]:
        def wrapper(*args: Any, **kwargs: Any) -> None:
            part = part_of(*args, **kwargs)
            start = time.perf_counter()
            run(*args, **kwargs)
            parts[part] = [start, time.perf_counter()]
        return wrapper

    # The revision modules import these names when alembic loads them, for each upgrade.
    migrate.run_revision_sql = timed(original_sql, lambda _file, direction, **_: direction)
    migrate.run_concurrent_sql = timed(original_concurrent, lambda _file, part="concurrently": part)
    try:
        yield parts
    finally:
        migrate.run_revision_sql, migrate.run_concurrent_sql = original_sql, original_concurrent


def state(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        sums = conn.execute(q("sessions_checksum")).fetchone()
        answers = conn.execute(q("attribution_answers")).fetchone()
    assert sums is not None and answers is not None
    return {"sessions": sums["sessions"], "checksum": sums["checksum"], "attribution": answers}


def timed_downgrade(dsn: str, sessions: list[str], existing: set[str]) -> dict[str, Any]:
    """`alembic downgrade 0026` (one transaction) with the sampler and the canaries."""
    with (LockSampler(dsn) as sampler, Canary(dsn, "canary_write", sessions) as writer,
          Canary(dsn, "canary_read", sessions) as reader):
        time.sleep(0.2)
        origin = time.perf_counter()
        schema.downgrade(dsn, PARENT)
        ended = time.perf_counter()
        time.sleep(0.1)
    return {"seconds": round(ended - origin, 3), "longest_locks": sampler.longest(lambda _at: "downgrade", existing),
            "writer": writer.figures(origin), "reader": reader.figures(origin)}


def measure(server: str, sessions: int, downgrade: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"sessions": sessions}
    with database(server, f"ipintel_bench_partitioning_{uuid.uuid4().hex[:8]}") as dsn:
        schema.upgrade(dsn, PARENT)
        result["populate"] = populate_at(dsn, sessions)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) ipintel.session_summaries")
            canary_sessions = [r[0] for r in conn.execute(q("canary_sessions"))]
            existing = {r[0] for r in conn.execute(q("existing_relations"))}
        checkpoint(dsn)
        started = time.perf_counter()
        result["before"] = state(dsn)
        result["checksum_seconds"] = round(time.perf_counter() - started, 1)
        print(f"    before: {result['before']['sessions']:,} sessions, checksum {result['before']['checksum']}", flush=True)

        with (LockSampler(dsn) as sampler, Canary(dsn, "canary_write", canary_sessions) as writer,
              Canary(dsn, "canary_read", canary_sessions) as reader, timed_parts() as parts):
            time.sleep(0.2)  # sampler and canaries connected and running
            origin = time.perf_counter()
            schema.upgrade(dsn, REVISION)
            ended = time.perf_counter()
            time.sleep(0.1)
        swap_started = parts["swap"][0]
        result["migration"] = {
            "seconds": round(ended - origin, 3),
            # part 1 commits when alembic enters the copy's autocommit block; the swap (swap.sql and
            # swap_tables.sql, one transaction) commits when the upgrade returns
            "first_part_seconds": round(parts["upgrade"][1] - parts["upgrade"][0], 3),
            "copy_seconds": round(parts["copy"][1] - parts["copy"][0], 3),
            "swap_seconds": round(ended - swap_started, 3),
            "longest_locks": sampler.longest(
                lambda at: "first part" if at < parts["copy"][0] else "copy" if at < swap_started else "swap",
                existing),
            "lock_samples": sampler.samples,
            "writer": writer.figures(origin),
            "reader": reader.figures(origin),
        }
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE ipintel.session_summaries")
            result["partitions"] = [dict(zip(("partition", "bounds", "rows"), r, strict=True))
                                    for r in conn.execute(q("partitions"))]
            next_month = conn.execute(q("next_month_partition")).fetchone()
        result["next_month_partition"] = next_month[0] if next_month else None
        result["after"] = state(dsn)
        if downgrade:
            result["downgrade"] = timed_downgrade(dsn, canary_sessions, existing)
            result["after_downgrade"] = state(dsn)
    result["kept"] = (result["before"]["sessions"], result["before"]["checksum"]) == (
        result["after"]["sessions"], result["after"]["checksum"])
    result["attribution_same"] = result["before"]["attribution"] == result["after"]["attribution"]
    return result


def summary(r: dict[str, Any]) -> str:
    m = r["migration"]
    per_million = 1_000_000 / r["sessions"]
    lines = [
        f"0027 on {r['sessions']:,} sessions: {m['seconds']} s in all "
        f"({round(m['seconds'] * per_million, 1)} s per million): first part {m['first_part_seconds']} s, "
        f"copy {m['copy_seconds']} s, swap {m['swap_seconds']} s",
    ]
    for lock in m["longest_locks"]:
        lines.append(f"  longest {lock['mode']}: {lock['seconds']} s on {lock['relation']} in the {lock['part']} "
                     f"(blocks {lock['blocks']}; {lock['holds']} hold(s) of this mode)")
    for who in ("writer", "reader"):
        c = m[who]
        lines.append(f"  a {who} of sessions: slowest statement {c['slowest_seconds']} s at +{c['slowest_at_seconds']} s "
                     f"of {c['statements']:,}{'; errors: ' + '; '.join(c['errors']) if c['errors'] else ''}")
    lines.append(f"  before: {r['before']['sessions']:,} sessions, checksum {r['before']['checksum']}")
    lines.append(f"  after:  {r['after']['sessions']:,} sessions, checksum {r['after']['checksum']} "
                 f"({'every row kept' if r['kept'] else 'ROWS DIFFER'}; attribution "
                 f"{'the same' if r['attribution_same'] else 'DIFFERS'})")
    lines.append(f"  partitions: {', '.join(p['partition'] for p in r['partitions'])}; next month's: "
                 f"{r['next_month_partition'] or 'MISSING'}")
    if "downgrade" in r:
        d, back = r["downgrade"], r["after_downgrade"]
        lines.append(f"downgrade to {PARENT}: {d['seconds']} s ({round(d['seconds'] * per_million, 1)} s per million)")
        for lock in d["longest_locks"]:
            lines.append(f"  longest {lock['mode']}: {lock['seconds']} s on {lock['relation']} (blocks {lock['blocks']})")
        for who in ("writer", "reader"):
            lines.append(f"  a {who} of sessions: slowest statement {d[who]['slowest_seconds']} s")
        lines.append(f"  after it: {back['sessions']:,} sessions, checksum {back['checksum']} "
                     f"({'every row kept' if (back['sessions'], back['checksum']) == (r['before']['sessions'], r['before']['checksum']) else 'ROWS DIFFER'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.partitioning", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=2_000_000,
                        help="sessions generated (IPs: a fifth, ASNs: 1 in 2,000) (default: %(default)s)")
    parser.add_argument("--downgrade", action="store_true", help="then time `alembic downgrade 0026` as well")
    parser.add_argument("--out", type=Path, help="JSON results (default: bench/out/partitioning-<sessions>.json)")
    args = parser.parse_args(argv)
    server = os.environ.get("IPINTEL_BENCH_DSN")
    if not server:
        print("python -m bench.partitioning: set IPINTEL_BENCH_DSN to a PostgreSQL server URI (`make bench` "
              "starts a throwaway cluster and sets it)", file=sys.stderr)
        return 2
    print(f"{REVISION} on {args.sessions:,} generated sessions", flush=True)
    result = measure(server, args.sessions, args.downgrade)
    out = args.out or OUT_DIR / f"partitioning-{args.sessions}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": server_facts(server), **result}, indent=2, default=str) + "\n",
                   encoding="utf-8")
    print(summary(result))
    print(f"results written to {out}")
    return 0 if result["kept"] and result["attribution_same"] and result["next_month_partition"] else 1


if __name__ == "__main__":
    sys.exit(main())
