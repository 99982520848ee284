"""The one-run-at-a-time locks (ipintel.locks): advisory locks, which PostgreSQL keeps per database."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from ipintel import db as ipdb
from ipintel.locks import Lock, LockHeld

LOCK_SQL = "SELECT pg_advisory_lock(hashtextextended('ipintel.ingest', 0))"


def ingest_running(conn: psycopg.Connection[Any], query_one: Any = ipdb.query_one) -> bool:
    """What ipintel.ingest_is_running() says on conn (query_one: the real one, when it is patched)."""
    row = query_one(conn, "SELECT ipintel.ingest_is_running() AS running")
    assert row is not None
    return bool(row["running"])


def test_a_run_in_another_database_is_not_named_as_the_holder(db: str, empty_db: str) -> None:
    """An ingest of another database on the same server holds a lock of the same name, which does
    not stop this database's ingest: the holder query must not name it either."""
    with psycopg.connect(empty_db, autocommit=True) as other:
        other.execute(LOCK_SQL)
        with ipdb.connect(db, autocommit=True) as conn:
            assert ipdb.query_one(conn, ipdb.query("advisory_lock_holder"), {"name": "ipintel.ingest"}) is None
            assert not ingest_running(conn)
        with Lock(db, "ipintel.ingest", wait=False) as lock:  # free in this database
            assert ingest_running(lock.conn)


def test_the_holder_named_is_the_one_in_this_database(db: str, empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as other, psycopg.connect(db, autocommit=True) as here:
        other.execute(LOCK_SQL)
        here.execute(LOCK_SQL)
        with pytest.raises(LockHeld) as raised:
            with Lock(db, "ipintel.ingest", wait=False):
                pass
        assert raised.value.holder_pid == here.info.backend_pid


def test_a_lock_freed_between_the_try_and_the_holder_query_is_taken(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that just ended frees its lock as its backend exits, a moment after it closed its
    connection: the next run's try can fail, and its look for the holder then find nobody. That
    run takes the lock (it used to exit 3, "held by another session": a flaky ingest test)."""
    holder = psycopg.connect(db, autocommit=True)
    holder.execute(LOCK_SQL)
    real_query_one = ipdb.query_one

    def holder_exits_first(conn: Any, statement: Any, params: Any = None) -> Any:
        if statement == ipdb.query("advisory_lock_holder") and not holder.closed:
            holder.close()  # its backend ends: the lock is free by the time the holder is looked for
            deadline = time.monotonic() + 10
            while ingest_running(conn, real_query_one):
                assert time.monotonic() < deadline, "the holder's backend did not end"
                time.sleep(0.01)
        return real_query_one(conn, statement, params)

    monkeypatch.setattr(ipdb, "query_one", holder_exits_first)
    with Lock(db, "ipintel.ingest", wait=False) as lock:
        assert ingest_running(lock.conn, real_query_one)
