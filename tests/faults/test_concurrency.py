"""Runs at the same time, as cron and an operator start them: two ingests of overlapping files,
two enrichments, an ingest and an enrichment. One run at a time per database and per kind (an
advisory lock): the second ingest or enrichment exits 3 with one line (or waits, with --wait);
an ingest and an enrichment run together. Whatever the interleaving, once the refused run is
started again the database holds exactly what the same runs leave one after the other.

(tests/test_concurrent_runs.py checks ingest and enrich together in one process, at volume; here
they are real processes of the installed CLI.)
"""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path

import pytest

from ipintel import demo_logs
from tests.conftest import PgServer
from tests.faults.conftest import World
from tests.faults.harness import STATS, Finished, assert_converged, database, error_line, fingerprint, run, start


def together(commands: list[list[str]], env: dict[str, str], cwd: Path, stagger: float) -> list[Finished]:
    """Start every command, `stagger` seconds apart, and wait for them all."""
    procs = []
    for n, command in enumerate(commands):
        if n:
            time.sleep(stagger)
        procs.append((start(command, env, cwd), time.monotonic()))
    done = []
    try:
        for proc, started in procs:
            out, err = proc.communicate(timeout=120)
            done.append(Finished(proc.returncode, out, err, time.monotonic() - started))
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


@pytest.mark.parametrize("stagger", [0.0, 0.3, 0.8])
def test_two_ingests_of_overlapping_files(pg_server: PgServer, ingest_world: World, stagger: float) -> None:
    logs = ingest_world.logs
    first = ["ingest", str(logs / "hp-fra1"), str(logs / "hp-nyc3" / "cowrie.json"), "--chunk-lines", "500"]
    second = ["ingest", str(logs / "hp-nyc3"), str(logs / "hp-fra1" / "cowrie.json"), "--chunk-lines", "500"]
    with database(pg_server, ingest_world.template) as dsn:
        env = ingest_world.env_for(dsn)
        for command in (first, second):
            assert run(command, env, ingest_world.cwd, timeout=120).code == 0
        serial = fingerprint(dsn)
    assert serial == ingest_world.clean  # the two runs read every file, like one run of the folder

    with database(pg_server, ingest_world.template) as dsn:
        env = ingest_world.env_for(dsn)
        results = together([first, second], env, ingest_world.cwd, stagger)
        for command, result in zip([first, second], results, strict=True):
            if result.code == 3:
                assert error_line(result.err, "ingest").startswith("ipintel ingest: another ingest is running (")
                result = run(command, env, ingest_world.cwd, timeout=120)  # cron's next hour
            assert result.code == 0, result.out + result.err
        assert_converged(dsn, serial, f"two ingests {stagger}s apart")
    STATS.fault_cases += 1


@pytest.mark.parametrize("wait", [False, True], ids=["second exits 3", "second waits"])
def test_two_enrichments_at_once(pg_server: PgServer, enrich_world: World, wait: bool) -> None:
    command = ["enrich", *(["--wait"] if wait else [])]
    with database(pg_server, enrich_world.template) as dsn:
        env = enrich_world.env_for(dsn)
        results = together([command, command], env, enrich_world.cwd, 0.1)
        codes = sorted(r.code for r in results)
        if wait:
            assert codes == [0, 0], [r.err for r in results]
        else:
            assert codes == [0, 3], [r.err for r in results]
            refused = next(r for r in results if r.code == 3)
            line = error_line(refused.err, "enrich")
            # The holder is either inside a pass (its run row is named) or starting / between two
            # passes (no run row is 'running' then); both are said, and which one is a race.
            assert re.fullmatch(r"ipintel enrich: another enrichment is running: ipintel\.enrich "
                                r"\((run \d+ \(\S+, started [^)]+\)|no pass running: it is starting, or between two passes)\)"
                                r" is held by backend pid \d+, connected since .+\. Use --wait to wait for it\.", line), line
        assert_converged(dsn, enrich_world.clean, "two enrichments at once")
    STATS.fault_cases += 1


@pytest.fixture(scope="module")
def more_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third day of other attackers: new sessions and new IPs for the world's database."""
    logs = tmp_path_factory.mktemp("more") / "logs"
    demo_logs.generate(logs, seed=15, sessions=800, days=1, sensors=2, start=date(2026, 11, 3))
    return logs


# stagger 0.0 failed about one run in four until revision 0052: GreyNoise asks only IPs with 5
# sessions or more (the world's policy), and a snapshot taken while the ingest had loaded 3 of an
# IP's 7 sessions settled its is_scanner 'none' for good. A session-count threshold now declines
# an IP only when no ingest is running (tests/sql/take_snapshots/threshold_during_ingest.test.sql).
@pytest.mark.parametrize("stagger", [0.0, 0.5])
def test_ingest_and_enrich_at_once(pg_server: PgServer, enrich_world: World, more_logs: Path, stagger: float) -> None:
    ingest = ["ingest", str(more_logs), "--chunk-lines", "200"]
    with database(pg_server, enrich_world.template) as dsn:
        env = enrich_world.env_for(dsn)
        for command in (ingest, ["enrich"], ["enrich"]):
            assert run(command, env, enrich_world.cwd, timeout=120).code == 0
        serial = fingerprint(dsn)

    with database(pg_server, enrich_world.template) as dsn:
        env = enrich_world.env_for(dsn)
        results = together([["enrich"], ingest], env, enrich_world.cwd, stagger)
        assert [r.code for r in results] == [0, 0], [r.err for r in results]
        # IPs the ingest added after the enrichment chose its IPs are due for the next run.
        assert run(["enrich"], env, enrich_world.cwd, timeout=120).code == 0
        assert_converged(dsn, serial, f"ingest and enrich {stagger}s apart")
    STATS.fault_cases += 1
