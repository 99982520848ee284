"""Statement and lock timeouts set low on purpose (libpq's PGOPTIONS, as a DBA would set them for
the role) while another session holds a table the run needs: the run ends with one line naming
the timeout and what to do, exit 1 (README), and keeps what it had committed; once the lock is
gone, the next run ends exactly where a clean run does.

The lock is taken once the run has committed part of its work, so "nothing lost" means the
committed part is kept and the rest is not lost either.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.conftest import PgServer
from tests.faults.conftest import World
from tests.faults.harness import STATS, assert_converged, database, error_line, query, run, start

TIMEOUTS = {
    "lock_timeout": ("lock timeout", "run again when it is released"),
    "statement_timeout": ("statement timeout", "or raise statement_timeout for this role"),
}


def time_out_under(pg_server: PgServer, world: World, command: list[str], ready: str, table: str,
                   setting: str) -> None:
    starts, ends = TIMEOUTS[setting]
    with database(pg_server, world.template) as dsn:
        env = world.env_for(dsn, PGOPTIONS=f"-c {setting}=300")
        proc = start(command, env, world.cwd)
        try:
            deadline = time.monotonic() + 60
            while not query(dsn, ready)[0]["ready"]:
                assert proc.poll() is None, f"the run ended before the lock was taken: {proc.communicate()}"
                assert time.monotonic() < deadline, "the run never got there"
                time.sleep(0.01)
            with psycopg.connect(dsn) as holder:  # a transaction holding the table until the run gives up
                holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, out + err
        line = error_line(err, command[0])
        assert line.startswith(f"ipintel {command[0]}: {starts}") and line.endswith(ends), line
        assert "CONTEXT" not in line and len(line) < 300, line  # the function's name, not the call stack

        rerun = run(command, world.env_for(dsn), world.cwd, timeout=120)
        assert rerun.code == 0, rerun.out + rerun.err
        assert_converged(dsn, world.clean, f"{command[0]} after a {setting}")
    STATS.fault_cases += 1


@pytest.mark.parametrize("setting", TIMEOUTS)
def test_timeout_under_ingest(pg_server: PgServer, ingest_world: World, setting: str) -> None:
    time_out_under(pg_server, ingest_world, ["ingest", str(ingest_world.logs), "--chunk-lines", "500"],
                   "SELECT count(*) > 0 AS ready FROM ipintel.ingest_files WHERE bytes_ingested > 0",
                   "ipintel.session_summaries", setting)


@pytest.mark.parametrize("setting", TIMEOUTS)
def test_timeout_under_enrich(pg_server: PgServer, enrich_world: World, setting: str) -> None:
    time_out_under(pg_server, enrich_world, ["enrich"],
                   "SELECT count(*) > 0 AS ready FROM ipintel.enrichment_runs "
                   "WHERE source = 'cymru' AND merged > 0",
                   "ipintel.ip_inventory", setting)
