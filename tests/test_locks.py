"""The one-run-at-a-time locks (ipintel.locks): advisory locks, which PostgreSQL keeps per database."""

from __future__ import annotations

import psycopg
import pytest

from ipintel import db as ipdb
from ipintel.locks import Lock, LockHeld

LOCK_SQL = "SELECT pg_advisory_lock(hashtextextended('ipintel.ingest', 0))"


def test_a_run_in_another_database_is_not_named_as_the_holder(db: str, empty_db: str) -> None:
    """An ingest of another database on the same server holds a lock of the same name, which does
    not stop this database's ingest: the holder query must not name it either."""
    with psycopg.connect(empty_db, autocommit=True) as other:
        other.execute(LOCK_SQL)
        with ipdb.connect(db, autocommit=True) as conn:
            assert ipdb.query_one(conn, ipdb.query("advisory_lock_holder"), {"name": "ipintel.ingest"}) is None
            assert ipdb.query_one(conn, "SELECT ipintel.ingest_is_running() AS running") == {"running": False}
        with Lock(db, "ipintel.ingest", wait=False) as lock:  # free in this database
            assert ipdb.query_one(lock.conn, "SELECT ipintel.ingest_is_running() AS running") == {"running": True}


def test_the_holder_named_is_the_one_in_this_database(db: str, empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as other, psycopg.connect(db, autocommit=True) as here:
        other.execute(LOCK_SQL)
        here.execute(LOCK_SQL)
        with pytest.raises(LockHeld) as raised:
            with Lock(db, "ipintel.ingest", wait=False):
                pass
        assert raised.value.holder_pid == here.info.backend_pid
