"""PostgreSQL restarted (`pg_ctl restart -m fast`) under a running `ipintel ingest` and `ipintel
enrich`: the run ends with one line saying the connection was lost and that the next run resumes,
exit 1 (README: a database error mid-run), and the next run finishes the work: the database ends
exactly as after a clean run.

Every backend is terminated by the restart (the test's own connections too); the restart happens
once the run has committed part of its work, at the moment named by each case.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import PgServer
from tests.faults.conftest import World
from tests.faults.harness import assert_converged, database, error_line, query, restart_server, run, start

INGEST_POINTS = {
    "after its first chunk": "SELECT count(*) > 0 AS ready FROM ipintel.ingest_files WHERE bytes_ingested > 0",
    "in its third file": "SELECT count(*) >= 3 AS ready FROM ipintel.ingest_files",
}
ENRICH_POINTS = {
    "in the Team Cymru pass": "SELECT count(*) > 0 AS ready FROM ipintel.enrichment_runs "
                              "WHERE source = 'cymru' AND status = 'running' AND merged > 0",
    "in the GreyNoise pass": "SELECT count(*) > 0 AS ready FROM ipintel.enrichment_runs "
                             "WHERE source = 'greynoise' AND status = 'running'",
}


def restart_under(pg_server: PgServer, world: World, command: list[str], ready: str) -> None:
    with database(pg_server, world.template) as dsn:
        env = world.env_for(dsn)
        proc = start(command, env, world.cwd)
        try:
            deadline = time.monotonic() + 60
            while not query(dsn, ready)[0]["ready"]:
                assert proc.poll() is None, f"the run ended before the restart: {proc.communicate()}"
                assert time.monotonic() < deadline, "the run never got there"
                time.sleep(0.01)
            restart_server(dsn)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, out + err
        line = error_line(err, command[0])
        assert line.startswith(f"ipintel {command[0]}: lost the connection to the database (") and \
            line.endswith("what was committed is kept, the next run resumes"), line

        rerun = run(command, env, world.cwd, timeout=120)
        assert rerun.code == 0, rerun.out + rerun.err
        assert_converged(dsn, world.clean, f"{command[0]} after a restart")


@pytest.mark.parametrize("ready", INGEST_POINTS.values(), ids=INGEST_POINTS.keys())
def test_restart_under_ingest(pg_server: PgServer, ingest_world: World, ready: str) -> None:
    restart_under(pg_server, ingest_world, ["ingest", str(ingest_world.logs), "--chunk-lines", "500"], ready)


@pytest.mark.parametrize("ready", ENRICH_POINTS.values(), ids=ENRICH_POINTS.keys())
def test_restart_under_enrich(pg_server: PgServer, enrich_world: World, ready: str) -> None:
    restart_under(pg_server, enrich_world, ["enrich"], ready)
