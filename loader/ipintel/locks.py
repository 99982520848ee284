"""One run at a time per database: PostgreSQL session advisory locks on a dedicated connection.

The lock lives as long as the connection: a crashed or killed loader releases it at once,
with no stale lock file to clean up.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import psycopg

from ipintel import db


class LockHeld(RuntimeError):
    """Another process holds the lock (CLI exit code 3)."""

    def __init__(self, name: str, holder_pid: int | None, holder_since: str | None) -> None:
        self.name, self.holder_pid, self.holder_since = name, holder_pid, holder_since
        who = f"backend pid {holder_pid}" if holder_pid else "another session"
        since = f", connected since {holder_since}" if holder_since else ""
        super().__init__(f"{name} is held by {who}{since}")


# How often a run that does not wait tries again when the lock it could not take has no holder a
# moment later (see Lock.__enter__).
HOLDER_GONE_RETRIES = 3


class Lock:
    """`with Lock(dsn, "ipintel.enrich", wait=False) as lock:` — `lock.conn` stays open (autocommit)."""

    def __init__(self, dsn: str, name: str, *, wait: bool = False, poll_seconds: float = 1.0) -> None:
        self.dsn, self.name, self.wait, self.poll_seconds = dsn, name, wait, poll_seconds
        self.conn: psycopg.Connection[Any]

    def __enter__(self) -> Lock:
        self.conn = db.connect(self.dsn, autocommit=True)
        retries = 0
        try:
            while True:
                # The lock key is derived from the name in SQL (try_advisory_lock in sql/queries.sql),
                # so psql users can see and take the same lock.
                row = db.query_one(self.conn, db.query("try_advisory_lock"), {"name": self.name})
                if row and row["ok"]:
                    return self
                if not self.wait:
                    holder = db.query_one(self.conn, db.query("advisory_lock_holder"), {"name": self.name})
                    if holder is None and retries < HOLDER_GONE_RETRIES:
                        # Nobody holds it now: its holder ended between the two queries (a run
                        # that just ended frees its lock as its backend exits, a moment after it
                        # closed its connection). A run started back to back with it takes it.
                        retries += 1
                        continue
                    raise LockHeld(self.name, holder["pid"] if holder else None,
                                   holder["since"] if holder else None)
                time.sleep(self.poll_seconds)
        except BaseException:
            self.conn.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.conn.close()  # closing the session releases the lock
