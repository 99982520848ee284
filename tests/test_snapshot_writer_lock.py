"""Sessions have one writer at a time (revision 0068): take_snapshots and redo_snapshots take the
lock every merge of Cowrie events takes first, so a snapshot pass waits for the ingest chunk in
flight and then fills its sessions too (before, it skipped the rows the chunk held, SKIP LOCKED),
and an ingest chunk waits for a snapshot pass or a redo."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from ipintel import ingest
from ipintel.progress import Reporter

LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('ipintel.session_summaries', 0))"
IP = "45.33.7.1"
SESSIONS = ("lock-1", "lock-2", "lock-3")


def seed(conn: psycopg.Connection[Any]) -> None:
    """Three sessions of one IP that GreyNoise (the one source enabled) has answered: ready."""
    conn.execute("UPDATE ipintel.enrichment_policy SET enabled = (source = 'greynoise')")
    conn.execute("SELECT ipintel.ensure_session_partitions(ARRAY['2026-11-20 00:00Z'::timestamptz])")
    conn.execute("INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen) VALUES (%s, '2026-11-20', '2026-11-20')",
                 (IP,))
    for n, session in enumerate(SESSIONS):
        conn.execute("INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) "
                     "VALUES (%s, %s, %s, %s)",
                     (session, f"2026-11-20 10:0{n}Z", f"2026-11-20 10:0{n}:30Z", IP))
    with conn.transaction():
        run = conn.execute("SELECT ipintel.start_run('greynoise', '{}'::jsonb)").fetchone()
        batch = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchone()
        assert run is not None and batch is not None
        conn.execute("INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) "
                     "VALUES (%s, %s, 'greynoise', %s, now(), %s)",
                     (run[0], batch[0], IP, Jsonb({"observed": True, "noise": True, "riot": False})))
        conn.execute("SELECT * FROM ipintel.merge_batch(%s, %s)", (run[0], batch[0]))


def waiting_for_advisory_lock(conn: psycopg.Connection[Any]) -> bool:
    """Whether a backend of this database waits for an advisory lock."""
    row = conn.execute("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                       "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()").fetchone()
    return row is not None and row[0] > 0


def test_a_pass_waits_for_the_chunk_in_flight_and_fills_its_sessions_too(conn: psycopg.Connection[Any],
                                                                          db: str) -> None:
    seed(conn)
    taken: list[int] = []

    def snapshot_pass() -> None:
        with psycopg.connect(db, autocommit=True) as other:
            row = other.execute("SELECT ipintel.take_snapshots()").fetchone()
            assert row is not None
            taken.append(int(row[0]))

    with psycopg.connect(db) as chunk:
        # An ingest chunk in flight: the merge's lock, and one of the sessions updated.
        chunk.execute(LOCK)
        chunk.execute("UPDATE ipintel.session_summaries SET event_count = event_count + 1 WHERE session_id = %s",
                      (SESSIONS[0],))
        worker = threading.Thread(target=snapshot_pass)
        worker.start()
        # the pass is seen waiting for the chunk's advisory lock (not merely slow to start)
        deadline = time.monotonic() + 10
        while worker.is_alive() and not waiting_for_advisory_lock(conn) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.is_alive(), f"take_snapshots did not wait for the chunk: it took {taken}"
        assert waiting_for_advisory_lock(conn), "take_snapshots is running but not waiting for the lock"
        chunk.commit()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert taken == [3], "every session filled, the one the chunk was updating too"
    rows = conn.execute("SELECT session_id, event_count, snapshot_complete_at IS NOT NULL FROM ipintel.session_summaries "
                        "WHERE source_ip = %s ORDER BY session_id", (IP,)).fetchall()
    assert rows == [(SESSIONS[0], 1, True), (SESSIONS[1], 0, True), (SESSIONS[2], 0, True)]


def test_an_ingest_chunk_waits_for_a_pass(conn: psycopg.Connection[Any], db: str) -> None:
    seed(conn)
    with psycopg.connect(db) as snapshots:
        # A pass whose transaction is still open holds the lock until it ends.
        row = snapshots.execute("SELECT ipintel.take_snapshots()").fetchone()
        assert row == (3,)
        conn.execute("SET lock_timeout = '1s'")
        # a session of an address never seen: the chunk shares no row and no document with the pass
        conn.execute("INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, "
                     "src_ip, sensor) VALUES (-7, 1, 'cowrie.session.connect', '2026-11-20 11:00Z', 'lock-4', "
                     "'45.33.7.2', 'hp1')")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute("SELECT * FROM ipintel.merge_cowrie_events(-7)")
        snapshots.commit()
    merged = conn.execute("SELECT sessions_new, ips_new FROM ipintel.merge_cowrie_events(-7)").fetchone()
    assert merged == (1, 1)


def test_a_redo_waits_for_the_chunk_in_flight(conn: psycopg.Connection[Any], db: str) -> None:
    seed(conn)
    conn.execute("SELECT ipintel.take_snapshots()")
    with psycopg.connect(db) as chunk:
        chunk.execute(LOCK)
        conn.execute("SET lock_timeout = '1s'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute("SELECT * FROM ipintel.redo_snapshots('2026-11-20', '2026-11-21', 'test')")
        chunk.commit()
    assert conn.execute("SELECT count(*) FROM ipintel.snapshot_redos").fetchone() == (0,), "nothing recorded"
    redo = conn.execute("SELECT sessions_reset, sessions_taken FROM ipintel.redo_snapshots("
                        "'2026-11-20', '2026-11-21', 'test')").fetchone()
    assert redo == (3, 3)


def test_ingest_says_that_it_waits_for_a_pass_and_for_how_long(conn: psycopg.Connection[Any], db: str,
                                                                tmp_path: Path) -> None:
    """Waiting for a snapshot pass is shown, not silent: a note naming the backend that holds the
    sessions' lock, another when it is done, and the seconds waited in the summary."""
    seed(conn)
    log = tmp_path / "cowrie.json"
    log.write_text("".join(json.dumps({"eventid": eventid, "message": "", "sensor": "hp1", "timestamp": at,
                                       "src_ip": "45.33.7.9", "session": "lock-wait"}) + "\n"
                           for eventid, at in (("cowrie.session.connect", "2026-11-20T12:00:00Z"),
                                               ("cowrie.session.closed", "2026-11-20T12:00:05Z"))))
    notes: list[str] = []

    class Recorder(Reporter):
        def note(self, text: str) -> None:
            notes.append(text)
            super().note(text)

    done: list[ingest.IngestSummary] = []
    with psycopg.connect(db) as snapshots:
        # a pass whose transaction is still open: it holds the sessions' lock until it ends
        assert snapshots.execute("SELECT ipintel.take_snapshots()").fetchone() == (3,)
        holder = snapshots.info.backend_pid
        worker = threading.Thread(target=lambda: done.append(ingest.ingest(db, [str(log)],
                                                                           reporter=Recorder(interactive=False))))
        worker.start()
        deadline = time.monotonic() + 30
        while not notes and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert notes and notes[0].startswith(f"waiting for backend pid {holder} to finish "
                                             "writing sessions"), notes
        time.sleep(1)
        assert worker.is_alive(), "ingest went on while the pass held the lock"
        assert conn.execute("SELECT count(*) FROM ipintel.session_summaries WHERE session_id = 'lock-wait'"
                            ).fetchone() == (0,)
        snapshots.commit()
    worker.join(timeout=60)
    assert not worker.is_alive() and len(done) == 1
    assert done[0].sessions_new == 1 and done[0].seconds_waiting >= 1
    assert notes[-1].startswith(f"backend pid {holder} is done writing sessions: ingest goes on "
                                "after waiting"), notes
