"""The run-length merge of dated snapshots (ipintel.merge_dated_runs, through load_routing_snapshot).

Property (hypothesis): for any set of daily routing snapshots over a few pairs, loaded in any
order, some twice, with pairs staged twice, prefix_origins holds exactly the runs worked out here
independently: a pair's runs are its maximal stretches of consecutive loaded snapshots that show
it, each valid from the first of them to the day after the last, or unbounded above when the last
is the newest snapshot loaded. Each snapshot's `prefixes` is its count of distinct pairs, and each
load's opened / closed are the runs it opened and the runs it ended or split.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

PAIRS = [("81.2.0.0/16", 1), ("81.2.69.0/24", 2), ("81.2.69.0/24", 7), ("5.6.0.0/16", 3),
         ("5.6.0.0/16", 4), ("2a01:4f8::/32", 24940)]
FIRST = date(2026, 1, 1)

Snapshot = tuple[date, list[tuple[str, int]]]


@st.composite
def loads(draw: st.DrawFn) -> list[Snapshot]:
    """Snapshots of distinct days (gaps allowed) in a drawn load order, one of them perhaps loaded
    twice; each with a subset of PAIRS, some staged twice."""
    days = draw(st.lists(st.integers(0, 9), min_size=1, max_size=6, unique=True))
    snapshots = []
    for day in days:
        shown = draw(st.lists(st.sampled_from(PAIRS), max_size=len(PAIRS) + 2))
        snapshots.append((FIRST + timedelta(days=day), shown))
    if draw(st.booleans()):
        snapshots.append(draw(st.sampled_from(snapshots)))
    return snapshots


def expected_runs(snapshots: list[Snapshot]) -> list[tuple[str, int, str]]:
    """The runs of the set of snapshots (the first load of each day counts), as text."""
    shown: dict[date, set[tuple[str, int]]] = {}
    for day, pairs in snapshots:
        shown.setdefault(day, set(pairs))
    days = sorted(shown)
    runs = []
    for pair in PAIRS:
        start = last = None
        for day in days + [None]:
            if day is not None and pair in shown[day]:
                start = start or day
                last = day
                continue
            if start is not None and last is not None:
                upper = "" if last == days[-1] else (last + timedelta(days=1)).isoformat()
                runs.append((pair[0], pair[1], f"[{start.isoformat()},{upper})"))
            start = last = None
    return sorted(runs)


def bounds(valid: str) -> tuple[str, str]:
    """A daterange's text '[lower,upper)' as (lower, upper); upper '' when unbounded."""
    lower, upper = valid[1:-1].split(",")
    return lower, upper


@pytest.fixture
def routing_conn(db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db) as connection:
        yield connection


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshots=loads())
def test_any_set_of_snapshots_in_any_order_gives_its_runs(routing_conn: psycopg.Connection,
                                                         snapshots: list[Snapshot]) -> None:
    conn = routing_conn
    try:
        loaded_days: set[date] = set()
        for day, pairs in snapshots:
            before = set(conn.execute("SELECT prefix::text, asn, valid::text FROM ipintel.prefix_origins").fetchall())
            batch = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchone()
            assert batch is not None
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO ipintel_staging.routing_prefixes (batch_id, prefix, asn) VALUES (%s, %s, %s)",
                                [(batch[0], prefix, asn) for prefix, asn in pairs])
            out = conn.execute("SELECT loaded, prefixes, origins_opened, origins_closed "
                               "FROM ipintel.load_routing_snapshot('routeviews', %s, 'test', %s)",
                               (day, batch[0])).fetchone()
            assert out is not None
            after = set(conn.execute("SELECT prefix::text, asn, valid::text FROM ipintel.prefix_origins").fetchall())
            if day in loaded_days:
                assert (out[0], out[2], out[3], after) == (False, 0, 0, before), f"{day} loaded again"
                continue
            loaded_days.add(day)
            assert out[1] == len(set(pairs)), f"{day}: prefixes counts the distinct pairs"
            # opened: the new runs that start on the day, but not a run moved back to start on it
            # (the run of the snapshot after it: the same pair and end, a later start)
            starts = {r for r in after - before if bounds(r[2])[0] == day.isoformat()}
            moved = {r for r in starts for b in before - after
                     if b[:2] == r[:2] and bounds(b[2])[1] == bounds(r[2])[1] and bounds(b[2])[0] > day.isoformat()}
            assert out[2] == len(starts - moved), f"{day}: runs opened"
            # closed: the runs that held the day and no longer do (ended after the snapshot before it)
            held = conn.execute("SELECT count(*) FROM unnest(%s::daterange[]) v WHERE v @> %s::date",
                                ([r[2] for r in before - after], day)).fetchone()
            assert held is not None and out[3] == held[0], f"{day}: runs cut"
        found = conn.execute("SELECT prefix::text, asn, valid::text FROM ipintel.prefix_origins "
                             "ORDER BY 1, 2, 3").fetchall()
        assert sorted(found) == expected_runs(snapshots)
        assert conn.execute("SELECT count(*) FROM ipintel_staging.routing_prefixes").fetchone() == (0,)
    finally:
        conn.rollback()
