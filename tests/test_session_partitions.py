"""Revision 0027 on a populated database: session_summaries partitioned by month, every row kept,
the attribution answering the same, writes during the copy kept, and back again."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg

from ipintel import migrate, schema
from tests.datagen import populate

SESSIONS, IPS = 20_000, 4_000
# One session every 15 minutes back from 2026-10-01: March to September 2026, seven months.
STEP = "-15 minutes"
REVISION = schema.migrations_dir() / "versions" / "0027_session_partitions.py"

# Every column of every session, in one digest (a row's text is its columns in order).
CHECKSUM = """
SELECT count(*), md5(string_agg(s::text, '|' ORDER BY s.session_id)) FROM ipintel.session_summaries s
"""
# What analysts read: every session's attribution, the activity per ASN and per day, the
# snapshot backlog and the verify checks.
ANSWERS = {
    "session_attribution": "SELECT md5(string_agg(a::text, '|' ORDER BY a.session_id)) FROM ipintel.session_attribution a",
    "activity_by_asn": "SELECT * FROM ipintel.activity_by_asn('2026-05-01', '2026-08-01')",
    "activity_by_day": "SELECT * FROM ipintel.activity_by_day('2026-04-28', '2026-05-03')",
    "asn_sessions": "SELECT count(*), min(session_id), max(session_id) FROM ipintel.asn_sessions(64501)",
    "ip_timeline": "SELECT at, kind, source, asn FROM ipintel.ip_timeline('11.0.0.7') WHERE kind = 'session'",
    "snapshot_backlog": "SELECT count(*), md5(string_agg(b.session_id, ',' ORDER BY b.session_id)) FROM ipintel.snapshot_backlog b",
    "verify_counts": "SELECT * FROM ipintel.verify_counts()",
    "verify_snapshots": "SELECT rule, violations FROM ipintel.verify_snapshots()",
}


def checksum(dsn: str) -> tuple[Any, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(CHECKSUM).fetchone()
    assert row is not None
    return tuple(row)


def answers(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(query).fetchall() for name, query in ANSWERS.items()}


def partitions(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'ipintel.session_summaries'::regclass ORDER BY 1""")]


def at_0026_with_sessions(dsn: str) -> None:
    """A database at 0026 with SESSIONS sessions over seven months, their snapshots taken as
    0026 takes them (MaxMind answered, the other sources awaited: some fields known)."""
    schema.upgrade(dsn, "0026")
    populate(dsn, sessions=SESSIONS, ips=IPS, step=STEP)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT ipintel.take_snapshots()")
        conn.execute("VACUUM ANALYZE ipintel.session_summaries")


def test_partitioning_keeps_every_session_and_every_answer_and_goes_back(empty_db: str, pg_server: Any) -> None:
    at_0026_with_sessions(empty_db)
    before, answered = checksum(empty_db), answers(empty_db)
    assert before[0] == SESSIONS
    assert answered["activity_by_asn"] and answered["asn_sessions"][0][0] > 0 and answered["ip_timeline"]
    at_0026 = schema.schema_dump(empty_db)

    schema.upgrade(empty_db, "0027")

    assert checksum(empty_db) == before, "every session kept, every column the same"
    assert answers(empty_db) == answered, "the attribution answers the same"
    months = partitions(empty_db)
    assert [m for m in months if m <= "session_summaries_2026_09"] == [
        f"session_summaries_2026_0{m}" for m in range(3, 10)], "one partition per month with sessions"
    with psycopg.connect(empty_db) as conn:
        this_month, next_month, in_default, copy_left = conn.execute(
            """SELECT 'session_summaries_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'),
                      'session_summaries_' || to_char((now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM'),
                      (SELECT count(*) FROM ipintel.session_summaries_default),
                      to_regclass('ipintel.session_summaries_copy')""").fetchone() or ()
        assert {this_month, next_month, "session_summaries_default"} <= set(months)
        assert in_default == 0 and copy_left is None, "the sessions are in their months; the copy's helpers are gone"
        assert conn.execute("SELECT violations FROM ipintel.verify_sessions()").fetchone() == (0,)
        # A session from before any partition (written directly, as only a DBA can) is kept, in the default partition.
        conn.execute("""INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
                        VALUES ('from-2015', '2015-02-03 04:05:06+00', '2015-02-03 04:05:07+00', '11.0.0.7')""")
        assert conn.execute("SELECT tableoid::regclass::text FROM ipintel.session_summaries "
                            "WHERE session_id = 'from-2015'").fetchone() == ("ipintel.session_summaries_default",)
        conn.execute("DELETE FROM ipintel.session_summaries WHERE session_id = 'from-2015'")

    schema.downgrade(empty_db, "0026")
    assert checksum(empty_db) == before, "the downgrade keeps every session"
    assert schema.schema_dump(empty_db) == at_0026, "the downgrade gives back 0026's schema"
    assert answers(empty_db) == answered

    schema.upgrade(empty_db, "0027")
    assert checksum(empty_db) == before


def run_first_part(dsn: str) -> None:
    """0027's first part as the revision runs it (as the owner, one transaction)."""
    text = migrate.revision_sql_path(str(REVISION), "upgrade").read_text(encoding="utf-8")
    with psycopg.connect(dsn) as conn:
        conn.execute(migrate.AS_OWNER + text)


def stage_and_merge(conn: psycopg.Connection[Any], batch: int, events: list[tuple[str, str, str]]) -> None:
    """Ingest's merge of a chunk: (eventid, time, session) events from 11.0.0.7."""
    with conn.transaction():
        with conn.cursor().copy("COPY ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, "
                                "src_ip, sensor) FROM STDIN") as copy:
            for line, (eventid, ts, session) in enumerate(events, 1):
                copy.write_row((batch, line, eventid, ts, session, "11.0.0.7", "hp1"))
        conn.execute("SELECT * FROM ipintel.merge_cowrie_events(%s)", (batch,))


def test_writes_during_the_copy_are_kept(empty_db: str) -> None:
    """Ingest, snapshots and a DBA's delete go on between the first part and the swap, and while
    the copy runs: the swapped table holds exactly what the old one held at the swap."""
    at_0026_with_sessions(empty_db)
    with psycopg.connect(empty_db) as conn:
        known = [r[0] for r in conn.execute(
            "SELECT session_id FROM ipintel.session_summaries ORDER BY session_id LIMIT 3 OFFSET 10000")]
    run_first_part(empty_db)

    with psycopg.connect(empty_db, autocommit=True) as conn:
        # Before the copy: a new session, more events for a known one (one moves a month back), a delete.
        stage_and_merge(conn, -1, [("cowrie.session.connect", "2026-11-30 10:00:00+00", "new-before"),
                                   ("cowrie.command.input", "2026-11-30 10:00:05+00", known[0]),
                                   ("cowrie.session.connect", "2026-02-27 23:00:00+00", known[1])])
        conn.execute("DELETE FROM ipintel.session_summaries WHERE session_id = %s", (known[2],))

        # During the copy: merges from a second connection, as many as the copy lets through.
        stop = threading.Event()
        merged = []

        def ingest() -> None:
            with psycopg.connect(empty_db, autocommit=True) as writer:
                n = 0
                while not stop.is_set():
                    n += 1
                    stage_and_merge(writer, -100 - n, [("cowrie.session.connect", "2026-11-29 12:00:00+00", f"during-{n}"),
                                                       ("cowrie.login.failed", "2026-11-29 12:00:01+00", known[0])])
                    merged.append(n)

        writer = threading.Thread(target=ingest)
        writer.start()
        try:
            conn.execute("CALL ipintel.copy_sessions_to_partitions(500)")
        finally:
            stop.set()
            writer.join()
        assert merged, "the merges ran while the copy did"

        # After the copy, before the swap: snapshots are taken, a session gets more events.
        conn.execute("SELECT ipintel.take_snapshots()")
        stage_and_merge(conn, -2, [("cowrie.session.closed", "2026-11-30 10:01:00+00", "new-before")])
        copy = conn.execute("SELECT finished_at IS NOT NULL, batches FROM ipintel.session_summaries_copy").fetchone()
        assert copy is not None and copy[0] and copy[1] >= SESSIONS // 500

    before = checksum(empty_db)
    assert before[0] == SESSIONS - 1 + 1 + len(merged)
    # `ipintel migrate` finds the first part done, the copy finished (it resumes: nothing left), swaps.
    schema.upgrade(empty_db, "0027")
    assert checksum(empty_db) == before
    with psycopg.connect(empty_db) as conn:
        moved = conn.execute("SELECT tableoid::regclass::text, event_count FROM ipintel.session_summaries "
                             "WHERE session_id = %s", (known[1],)).fetchone()
        assert moved is not None and moved[0] == "ipintel.session_summaries_2026_02", "moved to its earlier month"
        assert conn.execute("SELECT violations FROM ipintel.verify_sessions()").fetchone() == (0,)


def test_the_swap_refuses_an_unfinished_copy(empty_db: str) -> None:
    at_0026_with_sessions(empty_db)
    run_first_part(empty_db)
    swap = "".join(migrate.revision_sql_path(str(REVISION), part).read_text(encoding="utf-8")
                   for part in ("swap", "swap_tables"))
    with psycopg.connect(empty_db) as conn:
        try:
            conn.execute(migrate.AS_OWNER + swap)
        except psycopg.errors.RaiseException as exc:
            assert "the copy of session_summaries is not finished" in str(exc)
        else:
            raise AssertionError("the swap ran before the copy")
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT to_regclass('ipintel.session_summaries_partitioned') IS NOT NULL, "
                            "(SELECT count(*) FROM ipintel.session_summaries)").fetchone() == (True, SESSIONS)


def test_revision_files_are_the_parts_the_runbook_names() -> None:
    parts = sorted(p.name.split(".", 1)[1] for p in Path(REVISION).parent.glob("0027_session_partitions.*"))
    assert parts == ["copy.sql", "downgrade.sql", "py", "swap.sql", "swap_tables.sql", "upgrade.sql"]


def test_the_partitioning_benchmark_runs_and_finds_every_row_kept(pg_server: Any) -> None:
    """bench/partitioning.py at a tiny size: the figures docs/operations.md quotes come from it."""
    from bench import partitioning

    result = partitioning.measure(pg_server.dsn("postgres"), 2_000, downgrade=True)
    assert result["kept"] and result["attribution_same"] and result["next_month_partition"]
    migration = result["migration"]
    assert migration["copy_seconds"] > 0 and migration["swap_seconds"] > 0 and migration["first_part_seconds"] > 0
    assert {lock["mode"] for lock in migration["longest_locks"]} >= {"AccessExclusiveLock", "ExclusiveLock"}
    assert migration["writer"]["statements"] > 0 and not migration["writer"]["errors"]
    assert (result["after_downgrade"]["sessions"], result["after_downgrade"]["checksum"]) == (
        result["before"]["sessions"], result["before"]["checksum"])
    assert "every row kept" in partitioning.summary(result)
