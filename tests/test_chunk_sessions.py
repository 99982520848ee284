"""The loader's sessions of a chunk (ipintel.chunks.ChunkSessions, revision 0081) are the sessions
merge_cowrie_events makes of the same events staged one by one.

The loader used to stage every event and let the SQL group them; it now stages the chunk's
sessions, aggregated by the parsing process by the same rules. Whatever the events (several
connects or none, direct-tcpip events first, equal timestamps, NULL facts, unknown eventids), the
merge must store the same sessions and count the same events either way.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from hypothesis import HealthCheck, example, given, settings, strategies as st

from bench.ingest_pass import COPY_EVENTS
from ipintel import chunks, db
from ipintel.cowrie import Event

BASE = dt.datetime.now(dt.UTC).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
EVENTIDS = ["cowrie.session.connect", "cowrie.session.closed", "cowrie.client.version", "cowrie.client.kex",
            "cowrie.login.failed", "cowrie.login.success", "cowrie.command.input", "cowrie.session.file_download",
            "cowrie.direct-tcpip.request", "cowrie.direct-tcpip.data", "cowrie.client.size"]
IPS = ["203.0.113.7", "198.51.100.20", "2001:db8::5", "127.0.0.1"]

FACTS = """
    SELECT session_id, source_ip, sensor, first_event_at, last_event_at, protocol, src_port, dst_ip, dst_port,
           duration_seconds, client_version, hassh, login_attempts, login_successes, command_count,
           download_count, event_count
    FROM ipintel.session_summaries ORDER BY session_id"""


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    """A chunk's events in line order: few sessions, few distinct times (ties), facts often NULL."""
    out = []
    for line_no in range(1, draw(st.integers(1, 25)) + 1):
        eventid = draw(st.sampled_from(EVENTIDS))
        ts = BASE + dt.timedelta(seconds=draw(st.integers(0, 4)), microseconds=draw(st.sampled_from([0, 250_000])))
        connect = eventid == "cowrie.session.connect"
        out.append(Event(
            line_no=line_no, eventid=eventid, event_ts=ts, session_id=draw(st.sampled_from(["s1", "s2", "s\\3"])),
            src_ip=draw(st.sampled_from(IPS)), sensor=draw(st.sampled_from([None, "hp-a", "hp\tb"])),
            protocol=draw(st.sampled_from([None, "ssh", "telnet"])) if connect else None,
            src_port=draw(st.sampled_from([None, 40_000, 51_234])) if connect else None,
            dst_ip=draw(st.sampled_from([None, "10.0.0.2"])) if connect else None,
            dst_port=draw(st.sampled_from([None, 22, 2222])) if connect else None,
            duration=draw(st.sampled_from([None, 1.5, 30.25])) if eventid == "cowrie.session.closed" else None,
            username=None, password=None, command=None, url=None, shasum=None,
            client_version=(draw(st.sampled_from([None, "SSH-2.0-Go", "SSH-2.0-x\\y"]))
                            if eventid == "cowrie.client.version" else None),
            hassh=draw(st.sampled_from([None, "abc", "def"])) if eventid == "cowrie.client.kex" else None,
            # Cowrie's own form, carried as written (the parser sets it when PostgreSQL reads it exactly)
            event_ts_text=ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if draw(st.booleans()) else None))
    return out


def _merged(conn: psycopg.Connection[Any], stage: Any) -> tuple[list[tuple[Any, ...]], Any]:
    """Stage one batch with `stage(cursor, batch)`, merge it, and read back the sessions and the
    merge's event counts; everything rolled back."""
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        batch = cur.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchone()[0]  # type: ignore[index]
        stage(cur, batch)
        merged = cur.execute("SELECT events, sessions_new, event_counts FROM ipintel.merge_cowrie_events(%s)",
                             (batch,)).fetchone()
        staged = cur.execute("SELECT (SELECT count(*) FROM ipintel_staging.cowrie_events)"
                             " + (SELECT count(*) FROM ipintel_staging.cowrie_sessions)"
                             " + (SELECT count(*) FROM ipintel_staging.cowrie_event_counts)").fetchone()
        assert staged == (0,), "the merge empties its batch"
        return cur.execute(FACTS).fetchall(), merged


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events())
@example([Event(1, "cowrie.direct-tcpip.request", BASE, "s1", "127.0.0.1", None, None, None, None, None, None,
                None, None, None, None, None, None, None),
          Event(2, "cowrie.client.size", BASE, "s1", "203.0.113.7", "hp-a", None, None, None, None, None,
                None, None, None, None, None, None, None)])
# ties: of two events at the same time the first line's values win (two direct-tcpip events alone:
# the peer is the first event's address; two connects: the first one's)
@example([Event(1, "cowrie.direct-tcpip.request", BASE, "s1", "127.0.0.1", None, None, None, None, None, None,
                None, None, None, None, None, None, None),
          Event(2, "cowrie.direct-tcpip.data", BASE, "s1", "203.0.113.7", None, None, None, None, None, None,
                None, None, None, None, None, None, None)])
@example([Event(1, "cowrie.session.connect", BASE, "s1", "203.0.113.7", "hp-a", "ssh", 40_000, "10.0.0.2", 22,
                None, None, None, None, None, None, None, None),
          Event(2, "cowrie.session.connect", BASE, "s1", "198.51.100.20", "hp-b", "telnet", 51_234, None, 2222,
                None, None, None, None, None, None, None, None)])
def test_the_loader_s_sessions_are_the_ones_the_merge_makes_of_its_events(conn: psycopg.Connection[Any],
                                                                        chunk: list[Event]) -> None:
    def as_events(cur: psycopg.Cursor[Any], batch: int) -> None:
        db.copy_batch(cur, COPY_EVENTS, batch, "".join(map(chunks.copy_line, chunk)).encode())

    sessions = chunks.ChunkSessions()
    for e in chunk:
        sessions.add(e)

    def as_sessions(cur: psycopg.Cursor[Any], batch: int) -> None:
        db.copy_batch(cur, db.query("copy_cowrie_sessions"), batch, sessions.copy_text())
        db.copy_batch(cur, db.query("copy_cowrie_event_counts"), batch, sessions.counts_text())

    by_sql, sql_counts = _merged(conn, as_events)
    by_loader, loader_counts = _merged(conn, as_sessions)
    assert by_loader == by_sql
    assert loader_counts == sql_counts
    assert sessions.events == len(chunk) == sql_counts[0]
