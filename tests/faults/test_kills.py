"""SIGKILL of `ipintel ingest` and `ipintel enrich` at seeded random moments: after each kill the
next run converges to exactly what a clean run leaves, table for table (harness.FINGERPRINT):
nothing lost, nothing counted twice, nothing half-merged, no staging row or running run left.

Each kill point is a fresh clone of the world's template, a real `ipintel` process killed after a
random delay (drawn over the whole run for half the points, over its work after its first
progress line for the others), then one more run to its end.
IPINTEL_FAULT_SEED and IPINTEL_FAULT_KILLS change the draw and the number of points.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Sequence

from tests.conftest import PgServer
from tests.faults.conftest import World
from tests.faults.harness import IPINTEL, STATS, assert_converged, database, query, run, wait_for_no_loader

SEED = int(os.environ.get("IPINTEL_FAULT_SEED", "1414"))
KILL_POINTS = int(os.environ.get("IPINTEL_FAULT_KILLS", "20"))
STARTUP = 0.3  # seconds: the earliest kill, about when the process has connected


class Progress:
    """Reads a process's stderr (its progress lines) in a thread; `started` is set at the first line,
    which a run prints once it holds its lock and has begun the work (a file, a pass)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)
            self.started.set()


def kill_points(pg_server: PgServer, world: World, command: Sequence[str], rng: random.Random) -> list[str]:
    """Kill `ipintel command` at KILL_POINTS random moments (each in a fresh clone), run it again, and
    check it converged; returns a description of each point.

    Every other point is drawn over the whole run, start-up included; the others over the work
    itself, from the run's first progress line on."""
    done: list[str] = []
    attempts = 0
    longest = world.clean_seconds  # the latest kill point: shortened by any run that ends sooner
    while len(done) < KILL_POINTS:
        attempts += 1
        assert attempts <= 2 * KILL_POINTS, f"only {len(done)} of {attempts} runs were alive when killed"
        in_work = len(done) % 2 == 1
        with database(pg_server, world.template) as dsn:
            env = world.env_for(dsn)
            started = time.monotonic()
            proc = subprocess.Popen([str(IPINTEL), *command], env=env, cwd=world.cwd, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            progress = Progress(proc)
            try:
                if in_work:
                    assert progress.started.wait(timeout=60), "no progress line"
                delay = rng.uniform(time.monotonic() - started if in_work else STARTUP, longest)
                proc.wait(timeout=max(0.0, delay - (time.monotonic() - started)))
                alive = False  # finished before its kill point: not counted, drawn again
                longest = min(longest, 0.95 * (time.monotonic() - started))
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL: no handler, no cleanup, no rollback sent by the client
                alive = True
                working = progress.started.is_set()
            finally:
                proc.wait(timeout=30)
                progress.thread.join(timeout=30)
            if not alive:
                assert proc.returncode == 0, "".join(progress.lines)
                continue
            wait_for_no_loader(dsn)
            runs = "ingest_runs" if command[0] == "ingest" else "enrichment_runs"
            in_flight = query(dsn, f"SELECT count(*) AS n FROM ipintel.{runs} WHERE status = 'running'")[0]["n"]
            rerun = run(command, env, world.cwd, timeout=120)
            assert rerun.code == 0, f"run after a kill at {delay:.2f}s: {rerun.out}{rerun.err}"
            assert_converged(dsn, world.clean, f"killed at {delay:.2f}s")
        STATS.kills[command[0]] += 1
        STATS.kills_in_work[command[0]] += working
        STATS.kills_mid_run[command[0]] += bool(in_flight)
        done.append(f"{delay:.2f}s{' (working)' if working else ''}{' (run in flight)' if in_flight else ''}")
    return done


def test_killed_ingest_converges_to_a_clean_run(pg_server: PgServer, ingest_world: World) -> None:
    # Small chunks: a kill lands between and inside chunk transactions, in gzip and plain files,
    # in sessions that span two files.
    points = kill_points(pg_server, ingest_world, ["ingest", str(ingest_world.logs), "--chunk-lines", "500"],
                         random.Random(SEED))
    assert sum("working" in p for p in points) >= KILL_POINTS // 2 and any("in flight" in p for p in points), points


def test_killed_enrich_converges_to_a_clean_run(pg_server: PgServer, enrich_world: World) -> None:
    # MaxMind, Team Cymru (batches of 25, two connections) and GreyNoise, then snapshots.
    points = kill_points(pg_server, enrich_world, ["enrich"], random.Random(SEED + 1))
    assert sum("working" in p for p in points) >= KILL_POINTS // 2 and any("in flight" in p for p in points), points
