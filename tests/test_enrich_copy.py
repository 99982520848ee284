"""The COPY text the enrichment writes its answers with (ipintel.enrich.copy_results, put into
staging by db.copy_batch): every document arrives in PostgreSQL exactly as the pass made it,
whatever its strings hold (attackers write the AS names and hostnames sources report)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings, strategies as st

from ipintel import db
from ipintel.enrich import copy_results

FETCHED_AT = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)

# JSON text PostgreSQL keeps: no NUL (jsonb refuses \u0000), no lone surrogate (not UTF-8).
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=16)
documents = st.dictionaries(texts, values, max_size=6)


def staged(conn: psycopg.Connection[Any], answers: list[tuple[str, Any]], build: int | None = None) -> list[tuple[Any, ...]]:
    """The answers COPYed into staging as a batch is, read back; the transaction rolled back."""
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        run = cur.execute("SELECT ipintel.start_run('greynoise', '{}'::jsonb)").fetchone()
        assert run is not None
        lines = copy_results(run[0], "greynoise", FETCHED_AT, build, answers)
        db.copy_batch(cur, db.query("copy_enrichment_results"), 424242, lines)
        return cur.execute(
            "SELECT batch_id, run_id = %s, source, host(ip), fetched_at, build, result "
            "FROM ipintel_staging.enrichment_results ORDER BY ip", (run[0],)).fetchall()


def test_hostile_strings_arrive_whole(conn: psycopg.Connection[Any]) -> None:
    document = {"as_org": 'EVIL\tAS\nline two\r\\ "quoted" \\N \\. ünïcödé 🙂',
                "nested": {"key\twith tab": ["\\", "\\\\N", "\x01\x1f"]}, "asn": 64500, "big": 2 ** 70}
    rows = staged(conn, [("45.33.1.1", document), ("2001:db8::1", {})], build=7)
    assert rows == [(424242, True, "greynoise", "45.33.1.1", FETCHED_AT, 7, document),
                    (424242, True, "greynoise", "2001:db8::1", FETCHED_AT, 7, {})]


def test_an_empty_batch_copies_nothing(conn: psycopg.Connection[Any]) -> None:
    assert copy_results(1, "greynoise", FETCHED_AT, None, []) == b""
    assert staged(conn, []) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(documents, min_size=1, max_size=5))
def test_any_document_arrives_as_made(conn: psycopg.Connection[Any], docs: list[dict[str, Any]]) -> None:
    answers = [(f"45.33.0.{n}", doc) for n, doc in enumerate(docs, start=1)]
    rows = staged(conn, answers)
    assert [(r[3], r[6]) for r in rows] == answers
