"""asn_ranking (top_asns' ranking) finds the full ranking's first p_top ASNs from each day's
busiest ASNs and a bar (the threshold algorithm) instead of summing every ASN of the window:
the same rows in the same order, whatever the data, ties and the unknown ASN (NULL) included."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings, strategies as st

FIRST_DAY = date(2026, 11, 1)

# What asn_ranking must equal: every ASN of the window summed, then ranked.
FULL_RANKING = """
SELECT asn, sum(sessions)::bigint FROM ipintel.attribution_asn_daily
WHERE day >= %(since)s AND day < %(until)s
GROUP BY asn ORDER BY 2 DESC, 1 NULLS LAST LIMIT %(top)s"""

RANKING = "SELECT asn, sessions FROM ipintel.asn_ranking(%(since)s, %(until)s, %(top)s)"


def load(cur: psycopg.Cursor[Any], rows: dict[tuple[int, int | None], int]) -> None:
    """Rows of attribution_asn_daily: (day offset, ASN or None) -> sessions."""
    cur.execute("DELETE FROM ipintel.attribution_asn_daily")
    cur.execute("INSERT INTO ipintel.attribution_asn_daily (day, asn, sessions, login_attempts, login_successes, "
                "commands, downloads, distinct_ips) "
                "SELECT %s::date + r.offset_days, r.asn, r.sessions, 0, 0, 0, 0, public.hll_empty(12, 5) "
                "FROM unnest(%s::int[], %s::bigint[], %s::bigint[]) AS r(offset_days, asn, sessions)",
                (FIRST_DAY, [k[0] for k in rows], [k[1] for k in rows], list(rows.values())))


def ranked(cur: psycopg.Cursor[Any], query: str, since: int, until: int, top: int | None) -> list[tuple[Any, ...]]:
    window = {"since": FIRST_DAY + timedelta(days=since), "until": FIRST_DAY + timedelta(days=until), "top": top}
    return cur.execute(query, window).fetchall()


@contextmanager
def paths(conn: psycopg.Connection[Any]) -> Iterator[list[str]]:
    """The ways asn_ranking ranked meanwhile ("threshold" or "full"), from its DEBUG messages."""
    taken: list[str] = []

    def note(diagnostic: psycopg.errors.Diagnostic) -> None:
        if (diagnostic.message_primary or "").startswith("asn_ranking: "):
            taken.append((diagnostic.message_primary or "").split()[1].rstrip(","))

    conn.execute("SET LOCAL client_min_messages = debug1")
    conn.add_notice_handler(note)
    try:
        yield taken
    finally:
        conn.remove_notice_handler(note)


def test_an_asn_never_a_day_leader_wins_the_window(conn: psycopg.Connection[Any]) -> None:
    # AS64509 is second every day and first over the three days: only the bar (step 2) finds it.
    rows = {(0, 64501): 10, (0, 64509): 9, (1, 64502): 10, (1, 64509): 9, (2, 64503): 10, (2, 64509): 9,
            (0, None): 2, (2, 64504): 1}
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        load(cur, rows)
        with paths(conn) as taken:
            assert ranked(cur, RANKING, 0, 3, 1) == [(64509, 27)]
            assert ranked(cur, RANKING, 0, 3, 3) == [(64509, 27), (64501, 10), (64502, 10)]
        assert taken == ["threshold", "threshold"]
        assert ranked(cur, RANKING, 0, 3, None) == ranked(cur, FULL_RANKING, 0, 3, None)


def test_the_full_ranking_when_every_asn_is_asked(conn: psycopg.Connection[Any]) -> None:
    rows = {(0, 64501): 5, (0, None): 5, (1, 64502): 3}
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        load(cur, rows)
        with paths(conn) as taken:
            assert ranked(cur, RANKING, 0, 2, None) == [(64501, 5), (None, 5), (64502, 3)]
            assert ranked(cur, RANKING, 0, 2, 0) == []
            assert ranked(cur, RANKING, 0, 2, 60_000) == [(64501, 5), (None, 5), (64502, 3)]
        assert taken == ["full", "full", "full"], "p_top NULL or 0, or 2 x 60,000 leaders to read: every ASN summed"
        assert ranked(cur, RANKING, 5, 9, 10) == [], "a window without sessions"
        assert ranked(cur, RANKING, 2, 0, 10) == [], "an empty window"


def test_the_full_ranking_when_the_bar_admits_too_many(conn: psycopg.Connection[Any]) -> None:
    # 60,000 ASNs with one session on each of two days, AS64501 with two: the bar (2 sessions over
    # 2 days) admits every row, more than the 100,000 the steps may read; the list is cut there.
    rows: dict[tuple[int, int | None], int] = {(d, 70000 + n): 1 for d in (0, 1) for n in range(60_000)}
    rows |= {(0, 64501): 2, (1, 64501): 2}
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        load(cur, rows)
        with paths(conn) as taken:
            assert ranked(cur, RANKING, 0, 2, 2) == [(64501, 4), (70000, 2)]
        assert taken == ["full"]


# Skewed like a honeypot's traffic: a few ASNs on most days, many small ones, ties common.
asns = st.one_of(st.sampled_from([64501, 64502, 64503, None]), st.integers(64504, 64540))
day_rows = st.dictionaries(st.tuples(st.integers(0, 9), asns), st.integers(1, 40), min_size=1, max_size=120)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day_rows, st.integers(0, 9), st.integers(1, 11), st.one_of(st.none(), st.integers(1, 25)))
def test_the_same_rows_as_the_full_ranking(conn: psycopg.Connection[Any], rows: dict[tuple[int, int | None], int],
                                           since: int, length: int, top: int | None) -> None:
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        load(cur, rows)
        assert ranked(cur, RANKING, since, since + length, top) == ranked(cur, FULL_RANKING, since, since + length, top)
