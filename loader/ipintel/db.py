"""Thin database layer: connections and named queries, psycopg 3 with dict rows.

Queries live in SQL (functions in sql/ and migrations); the statements that call them are named
blocks of one packaged file, sql/queries.sql, looked up with `query(name)`. Python passes named
parameters, cast in SQL, and streams bulk rows with COPY. It never loops over rows issuing
statements.
"""

from __future__ import annotations

import functools
import importlib.resources
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, LiteralString, NamedTuple, TypeVar, cast

import psycopg
import psycopg.errors
from psycopg.rows import dict_row

APPLICATION_NAME = "ipintel"
T = TypeVar("T")

QUERIES_FILE = "sql/queries.sql"  # in the ipintel package (package data)
QUERIES_ORIGIN = f"loader/ipintel/{QUERIES_FILE}"  # its path in the project, as its first line says
_QUERY_NAME = re.compile(r"^-- ([a-z0-9_]+) --$", re.MULTILINE)


class NamedQuery(NamedTuple):
    name: str
    description: str  # the comment lines after the name, without their "-- "
    sql: str  # the statement, as written in the file


def parse_queries(text: str) -> list[NamedQuery]:
    """The named blocks of a queries file, in file order (procrastinate's format):

        -- name --
        -- What it is for (one or more comment lines).
        SELECT ...;

    Comment lines after the statement (a heading before the next block) belong to no query.
    Raises ValueError for a block without a description or without a statement."""
    parts = _QUERY_NAME.split(text)
    found = []
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = body.strip("\n").splitlines()
        description = []
        while lines and lines[0].startswith("--"):
            description.append(lines.pop(0).removeprefix("--").strip())
        while lines and (not lines[-1].strip() or lines[-1].startswith("--")):
            lines.pop()  # blank and comment lines after the statement (a section heading) are not sent
        statement = "\n".join(lines).strip()
        if not any(description) or not statement:
            raise ValueError(f"{QUERIES_ORIGIN}: query {name} needs a description line and a statement")
        found.append(NamedQuery(name, " ".join(d for d in description if d), statement))
    return found


@functools.cache
def queries() -> dict[str, LiteralString]:
    """Every named statement of sql/queries.sql, read and parsed once, each preceded by a
    `-- From loader/ipintel/sql/queries.sql: name` line so server logs point back to it."""
    text = importlib.resources.files("ipintel").joinpath(QUERIES_FILE).read_text(encoding="utf-8")
    named: dict[str, LiteralString] = {}
    for q in parse_queries(text):
        if q.name in named:
            raise ValueError(f"{QUERIES_ORIGIN}: query {q.name} is defined twice")
        # The text comes from our own packaged file, never from input: it is as literal as a
        # string in the source, which is what LiteralString asks of a query. (mypy reads
        # LiteralString as str, hence "redundant"; checkers that implement PEP 675 need the cast.)
        sent = f"-- From {QUERIES_ORIGIN}: {q.name}\n{q.sql}"
        named[q.name] = cast(LiteralString, sent)  # type: ignore[redundant-cast]
    return named


def query(name: str) -> LiteralString:
    """The statement named `name` in sql/queries.sql (KeyError for an unknown name)."""
    return queries()[name]


def copy_batch(cur: psycopg.Cursor[Any], statement: LiteralString, batch_id: int, lines: bytes) -> None:
    """Stream `lines` (COPY text, one row per line, each line ending in a newline) into
    `statement`, the batch id put in front of every line: a newline in COPY text only ends a line
    (one in a value is escaped), so one replace in C adds it to all of them."""
    if not lines:
        return
    prefix = b"%d\t" % batch_id
    with cur.copy(statement) as copy:
        copy.write(prefix + lines[:-1].replace(b"\n", b"\n" + prefix) + b"\n")


def connect(dsn: str, *, autocommit: bool = False) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(dsn, autocommit=autocommit, row_factory=dict_row,
                           application_name=APPLICATION_NAME)


@contextmanager
def connection(dsn: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with connect(dsn, autocommit=autocommit) as conn:
        yield conn


def query_all(conn: psycopg.Connection[Any], query: LiteralString, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def query_one(conn: psycopg.Connection[Any], query: LiteralString, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


# What libpq says when a connection cannot be opened (psycopg raises it with no SQLSTATE).
_CONNECT_FAILURE_PREFIXES = ("connection failed", "connection is bad")
# SQLSTATEs that mean "fix the configuration or the role", not "run again".
_CONFIGURATION_SQLSTATES = ("28000", "28P01", "3D000", "42501", "53300", "57P03")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def is_configuration_error(exc: BaseException) -> bool:
    """True when the database refused us before any work (unreachable, authentication, no such
    database, too many connections, missing privilege): the CLI exits 2, like bad configuration."""
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate is None:
        return str(exc).startswith(_CONNECT_FAILURE_PREFIXES)
    return exc.sqlstate in _CONFIGURATION_SQLSTATES


def describe_error(exc: BaseException) -> str:
    """One line saying what a database error means for the user and what to do about it.

    Deadlocks, serialization failures and the timeouts are OperationalError subclasses like a
    refused connection, but need a different reaction: they are named here, each on its own.
    Nothing of the DSN is added (libpq's own messages never carry the password).
    """
    diag = getattr(exc, "diag", None)
    # The server's primary message: str(exc) adds the CONTEXT lines (the whole PL/pgSQL call
    # stack, statements included), which `where` below sums up as the function's name.
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    message = _one_line(primary or str(exc)) or type(exc).__name__
    where = ""
    context = getattr(diag, "context", None) if diag is not None else None
    if context:
        function = re.search(r"function ([\w.]+)\(", context)
        if function:
            where = f" in {function.group(1)}()"
    rerun = "the transaction in flight was rolled back, what was committed is kept: run again"
    if isinstance(exc, psycopg.errors.DeadlockDetected):
        return f"deadlock detected{where}: another session locked the same rows in the opposite order; {rerun}"
    if isinstance(exc, psycopg.errors.SerializationFailure):
        return (f"serialization failure{where}: a concurrent transaction changed the same rows; {rerun}")
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return (f"lock timeout{where}: another session held a lock longer than lock_timeout allows "
                f"({message}); {rerun} when it is released")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        if "statement timeout" in message:
            return (f"statement timeout{where}: a query ran longer than statement_timeout allows; "
                    f"{rerun}, or raise statement_timeout for this role")
        return f"query cancelled{where} by an administrator or another session ({message}); {rerun}"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"permission denied{where}: {message}; grant the role what ipintel needs"
    if is_configuration_error(exc):
        for prefix in _CONNECT_FAILURE_PREFIXES:
            message = message.removeprefix(f"{prefix}: ")
        return f"cannot connect to the database: {message}"
    if isinstance(exc, psycopg.OperationalError) and (
            exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))):
        return (f"lost the connection to the database ({message}); what was committed is kept, "
                "the next run resumes")
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        return f"database error {exc.sqlstate}{where}: {message}"
    return f"database error: {message}"


def tier_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    row = query_one(conn, query("tier_counts"))
    assert row is not None
    return {k: int(v) for k, v in row.items()}


# A deadlock or serialization failure rolls back one transaction and nothing else: running the
# same transaction again is the documented remedy. Bounded: a conflict that repeats this often
# is a bug to report, not to hide.
RETRY_ATTEMPTS = 5
RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def in_transaction_with_retry(conn: psycopg.Connection[Any], work: Callable[[], T], *,
                              attempts: int = RETRY_ATTEMPTS) -> T:
    """Run `work()` in one transaction of `conn` (autocommit), again from the start after a
    deadlock or serialization failure, at most `attempts` times with a short random backoff.
    `work` must be safe to repeat: everything it wrote was rolled back with the transaction."""
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                return work()
        except RETRYABLE:
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise AssertionError("unreachable")
