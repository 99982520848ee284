"""Least privilege (revision 0021): the loader does its whole job and nothing else; the reader reads.

Each test logs in over TCP as a real login role, member of ipintel_loader or ipintel_reader,
the way an operator's cron job or an analyst would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ipintel import cli


@pytest.fixture
def login_as(db: str) -> Iterator[Callable[[str], str]]:
    """`login_as(group)`: a new login role in `group`, and the DSN of the test database as it."""
    made: list[str] = []

    def make(group: str) -> str:
        name, password = f"t_{group}_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(name), sql.Literal(password), sql.Identifier(group)))
        made.append(name)
        return make_conninfo(db, user=name, password=password, passfile="")

    yield make
    with psycopg.connect(db, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def refused(dsn: str, statement: str) -> str:
    """The error a statement gets (it must get one)."""
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        conn.execute(statement)
    return str(err.value).splitlines()[0]


WRITES = [
    "INSERT INTO ipintel.ip_inventory (ip) VALUES ('81.2.69.1')",
    "UPDATE ipintel.session_summaries SET snapshot_asn = 1",
    "DELETE FROM ipintel.asn_inventory",
    "UPDATE ipintel.enrichment_policy SET enabled = false",
    "INSERT INTO ipintel.enrichment_runs (source) VALUES ('maxmind')",
    "UPDATE ipintel.api_budget SET used = 0",
    "CREATE TABLE ipintel.mine (x int)",
    "CREATE TABLE ipintel_staging.mine (x int)",
    "CREATE FUNCTION ipintel.mine() RETURNS int LANGUAGE sql RETURN 1",
    "ALTER TABLE ipintel.ip_inventory ADD COLUMN x int",
    "DROP VIEW ipintel.session_attribution",
    "TRUNCATE ipintel.ip_asn_history",
]


@pytest.mark.parametrize("statement", WRITES)
def test_the_loader_cannot_write_a_table_or_change_the_schema(login_as: Callable[[str], str], statement: str) -> None:
    assert refused(login_as("ipintel_loader"), statement).startswith(("permission denied", "must be owner"))


@pytest.mark.parametrize("statement", [
    *WRITES,
    "SELECT ipintel.take_snapshots()",
    "SELECT * FROM ipintel.merge_batch(1, 1)",
    "SELECT ipintel.start_ingest_run()",
    "COPY ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) FROM STDIN",
])
def test_the_reader_can_neither_write_nor_call_what_writes(login_as: Callable[[str], str], statement: str) -> None:
    assert refused(login_as("ipintel_reader"), statement).startswith(("permission denied", "must be owner"))


def test_the_loader_does_not_read_the_api_budget(login_as: Callable[[str], str]) -> None:
    assert "permission denied for table api_budget" in refused(login_as("ipintel_loader"),
                                                              "SELECT * FROM ipintel.api_budget")


def test_the_reader_reads_every_table_view_and_report(login_as: Callable[[str], str], db: str) -> None:
    with psycopg.connect(db) as conn:
        relations = [r[0] for r in conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'ipintel' AND c.relkind IN ('r', 'v', 'p') ORDER BY 1")]
    assert "ipintel.session_attribution" in relations and len(relations) > 15
    with psycopg.connect(login_as("ipintel_reader")) as conn:
        for relation in relations:
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(relation)))
        conn.execute("SELECT * FROM ipintel.report_top_asns(now() - interval '7 days', now(), 10)")
        conn.execute("SELECT * FROM ipintel.snapshot_backlog")
        # the analyst's functions and ipintel verify's checks (revision 0025)
        conn.execute("SELECT * FROM ipintel.activity_by_asn(now() - interval '7 days', now())")
        conn.execute("SELECT * FROM ipintel.campaigns(now() - interval '7 days', now())")
        conn.execute("SELECT * FROM ipintel.ip_timeline('192.0.2.1')")
        conn.execute("SELECT * FROM ipintel.verify_counts()")
        conn.execute("SELECT * FROM ipintel.verify_snapshots()")


def test_no_function_is_executable_by_public(db: str) -> None:
    with psycopg.connect(db) as conn:
        public = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'ipintel' AND has_function_privilege('public', p.oid, 'EXECUTE')").fetchall()
        definers = conn.execute(
            "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'ipintel' AND p.prosecdef ORDER BY 1").fetchall()
    assert public == []
    # the loader's entry points (sql/099_roles.sql, the geolocation builds' and range lists' loaders among them,
    # analyze_sessions_without_statistics since 0065) and ensure_session_partitions (its partitions are the owner's)
    assert len(definers) == 20
    assert all("search_path=\"\"" in config for _, config in definers), definers


def test_the_loader_runs_the_whole_demo(login_as: Callable[[str], str], cli_database: Callable[[str], None],
                                        tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Ingest, the MaxMind pass, snapshots, status and report, all as a member of ipintel_loader."""
    cli_database(login_as("ipintel_loader"))
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 0, capsys.readouterr().err
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM ipintel.session_summaries WHERE snapshot_at IS NOT NULL), "
                           "(SELECT count(*) FROM ipintel.enrichment_state), "
                           "(SELECT count(*) FROM ipintel.ingest_runs WHERE status <> 'running')").fetchone()
    assert row is not None and row[0] > 0 and row[1] > 0 and row[2] == 1
