"""Thin database layer: connections and named queries, psycopg 3 with dict rows.

Queries live in SQL (functions in sql/ and migrations); Python calls them with named
parameters cast in SQL and streams bulk rows with COPY. It never loops over rows issuing
statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row

APPLICATION_NAME = "ipintel"


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


TIER_COUNTS: LiteralString = """
SELECT (SELECT count(*) FROM ipintel.asn_inventory)     AS asn_inventory,
       (SELECT count(*) FROM ipintel.ip_inventory)      AS ip_inventory,
       (SELECT count(*) FROM ipintel.session_summaries) AS session_summaries,
       (SELECT count(*) FROM ipintel.ip_asn_history)    AS ip_asn_history
"""


def tier_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    row = query_one(conn, TIER_COUNTS)
    assert row is not None
    return {k: int(v) for k, v in row.items()}
