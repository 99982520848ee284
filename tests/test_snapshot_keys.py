"""A whole pass works snapshots out per key and takes the ones the per-session statement takes.

Revision 0074: without routing snapshots or dated geolocation builds, take_snapshots() works the
values out once per key (ipintel.snapshot_key_values: an IP, an ingest time, a run of days with
the same range list snapshots) and joins them by hash to the sessions; the IPs whose ASN history
changes among a key's sessions go through the per-session statement (take_snapshots(ips)), as
every session of a pass for some IPs does. The same data, passed both ways in transactions rolled
back, must give every session the same snapshot: the first pass (GreyNoise answered half of the
IPs) and the pass after GreyNoise answers the rest (known fields kept, waiting ones filled).

The data has each case of the key: several ingest times per IP, sessions whose window has closed,
IPs whose ASN moved among their sessions (hard) or whose history starts after them (the current
ASN), a Tor exit list snapshot in the middle of the window (runs of days with other classes,
and a run that comes back to the snapshots of an earlier one after the list's max_age) and a
bogon.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bench.snapshot_step import STAGE_GREYNOISE, merge_answers, seed

SNAPSHOTS = """
SELECT s.session_id, s.snapshot_asn, s.snapshot_asn_source, s.snapshot_country, s.snapshot_country_source,
       s.snapshot_is_scanner, s.snapshot_is_scanner_source, s.snapshot_ip_type, s.snapshot_ip_type_source,
       s.snapshot_ip_provider, s.snapshot_is_known_attacker, s.snapshot_threatfeeds,
       s.snapshot_is_known_attacker_source, e.digest, s.snapshot_at IS NOT NULL, s.snapshot_complete_at IS NOT NULL
FROM ipintel.session_summaries s
LEFT JOIN ipintel.enrichment_documents e ON e.document_id = s.snapshot_document
ORDER BY s.session_id
"""

# The generated IPs are 11.0.0.0 + 37 * g (g = 1..300)
MOVED = "SELECT '11.0.0.0'::inet + g * 37 FROM generate_series(1, 300, 29) g"
LATE_HISTORY = "SELECT '11.0.0.0'::inet + g * 37 FROM generate_series(7, 300, 31) g"
TOR_IPS = ("'11.0.0.0'::inet + 2 * 37", "'11.0.0.0'::inet + 3 * 37", "'11.0.0.0'::inet + 4 * 37")

SHAPE = f"""
-- Sessions ingested at three times, some before GreyNoise's window.
UPDATE ipintel.session_summaries SET created_at = now() - interval '3 days' WHERE hashtext(session_id) % 3 = 1;
UPDATE ipintel.session_summaries SET created_at = now() - interval '40 days' WHERE hashtext(session_id) % 17 = 2;
-- (the queue's keys are the sessions' ingest times: made again for the times written above)
DELETE FROM ipintel.snapshot_queue;
INSERT INTO ipintel.snapshot_queue (source_ip, created_at, first_at, last_at)
SELECT source_ip, created_at, min(first_event_at), max(first_event_at)
FROM ipintel.session_summaries WHERE snapshot_complete_at IS NULL GROUP BY source_ip, created_at;

-- IPs whose ASN moved five days ago: their sessions before take the earlier ASN.
UPDATE ipintel.ip_asn_history SET valid = tstzrange(now() - interval '5 days', NULL)
WHERE ip IN ({MOVED}) AND upper_inf(valid);
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
SELECT ip, 64500, tstzrange(now() - interval '60 days', now() - interval '5 days'), 'maxmind'
FROM ({MOVED}) m(ip);

-- IPs first observed after all their sessions: no history at the sessions' time.
UPDATE ipintel.ip_asn_history SET valid = tstzrange(now() + interval '1 hour', NULL)
WHERE ip IN ({LATE_HISTORY}) AND upper_inf(valid) AND ip NOT IN ({MOVED});

-- A bogon with sessions (never looked up).
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen) VALUES ('10.1.2.3', now() - interval '30 days', now());
INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, protocol, source_ip)
SELECT 'bogon-' || g, 'sensor-0', now() - g * interval '1 day', now() - g * interval '1 day' + interval '1 minute',
       'ssh', '10.1.2.3'
FROM generate_series(1, 5) g;
"""


def tor_snapshot(conn: psycopg.Connection[Any]) -> None:
    """A Tor exit list snapshot taken 10 days ago naming three of the IPs: their class on the
    days it counts (7 days, the list's max_age) is tor, routed before and after."""
    [(batch,)] = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchall()
    conn.execute("INSERT INTO ipintel_staging.listed_ranges (batch_id, prefix, service, region) "
                 f"SELECT %s, ip::cidr, '', '' FROM (VALUES ({'), ('.join(TOR_IPS)})) v(ip)", (batch,))
    conn.execute("SELECT ipintel.load_range_snapshot('tor_bulk_exit_list', current_date - 10, 'test', %s)", (batch,))


def _take(conn: psycopg.Connection[Any], whole: bool) -> int:
    if whole:
        row = conn.execute("SELECT ipintel.take_snapshots()").fetchone()
    else:
        row = conn.execute("SELECT ipintel.take_snapshots((SELECT array_agg(DISTINCT source_ip) "
                           "FROM ipintel.snapshot_queue))").fetchone()
    assert row is not None
    return int(row[0])


CALLS = ("SELECT funcname || '(' || pg_get_function_identity_arguments(funcid) || ')', calls "
         "FROM pg_stat_xact_user_functions WHERE schemaname = 'ipintel' "
         "AND funcname IN ('snapshot_key_values', 'take_snapshots')")


def _passes(conn: psycopg.Connection[Any], *, whole: bool) -> tuple[list[Any], list[Any], dict[str, int]]:
    """The first pass and the pass after GreyNoise answers the rest, rolled back; with the calls
    of the two functions in that transaction (the counts not yet reported may hold an earlier
    transaction's: the difference)."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL track_functions = 'all'")
        before = dict(conn.execute(CALLS).fetchall())
        changed = _take(conn, whole)
        first = conn.execute(SNAPSHOTS).fetchall()
        merge_answers(conn, "greynoise", STAGE_GREYNOISE, 3, 2, answered=False)
        changed_later = _take(conn, whole)
        second = conn.execute(SNAPSHOTS).fetchall()
        calls = {name: n - before.get(name, 0) for name, n in conn.execute(CALLS).fetchall()}
        calls = {name: n for name, n in calls.items() if n} | {"changed": changed, "changed_later": changed_later}
    return first, second, calls


def test_a_whole_pass_per_key_takes_the_snapshots_the_per_session_statement_takes(db: str) -> None:
    seed(db, sessions=20_000, ips=300, answered_every=2)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SHAPE)
        tor_snapshot(conn)
        conn.execute("VACUUM ANALYZE")
        hard = conn.execute(f"SELECT count(DISTINCT q.source_ip) FROM ipintel.snapshot_queue q WHERE q.source_ip IN ({MOVED}) "
                            "AND q.first_at < now() - interval '5 days'").fetchone()
        assert hard is not None and hard[0] > 0, "no IP whose ASN moved among its sessions"

        per_key, per_key_later, key_calls = _passes(conn, whole=True)
        per_session, per_session_later, session_calls = _passes(conn, whole=False)

    # the whole pass went through the keys, and left the IPs whose ASN moved to the per-session
    # statement (a second call of take_snapshots(inet[]))
    assert key_calls.get("snapshot_key_values(p_first timestamp with time zone, p_last timestamp with time zone, p_batch_id bigint, p_ips inet[])") == 2
    assert key_calls.get("take_snapshots(p_ips inet[])", 0) >= 3
    assert "snapshot_key_values(p_first timestamp with time zone, p_last timestamp with time zone, p_batch_id bigint, p_ips inet[])" not in session_calls
    assert key_calls["changed"] == session_calls["changed"] > 0
    assert key_calls["changed_later"] == session_calls["changed_later"] > 0

    assert per_key == per_session
    assert per_key_later == per_session_later

    # the data reached each case
    sources = {row[2] for row in per_key}
    assert {"maxmind:history", "maxmind:current", "bogon"} <= sources
    assert any(row[7] == "tor" for row in per_key) and any(row[7] == "routed" for row in per_key)
    assert any(row[15] for row in per_key) and not all(row[15] for row in per_key)
    assert all(row[15] for row in per_key_later)
    asns_of_moved = {row[1] for row in per_key if row[0] and row[2] == "maxmind:history"}
    assert 64500 in asns_of_moved


# Keys (IP, ingest time) with sessions that wait for GreyNoise both inside and outside the window.
STRADDLING = """
SELECT count(*) FROM (
    SELECT s.source_ip, s.created_at
    FROM ipintel.session_summaries s
    WHERE s.snapshot_at IS NOT NULL AND s.snapshot_complete_at IS NULL
    GROUP BY s.source_ip, s.created_at
    HAVING bool_or(s.first_event_at >= %(since)s AND s.first_event_at < %(until)s)
       AND bool_or(s.first_event_at < %(since)s OR s.first_event_at >= %(until)s)) k
"""


def test_a_pass_fills_again_what_a_redo_reset_among_a_waiting_key_s_sessions(db: str) -> None:
    """A pass leaves a key out when no incomplete session of it lacks a field ready (in_play of
    snapshot_key_values). A redo of part of a waiting key's sessions (GreyNoise still due for its
    IP) resets those and leaves the others touched, every one of which knows the ready fields: the
    key must stay in play, and the pass inside the redo fills the reset sessions as they were.
    Were the key judged by its touched sessions alone, the reset ones would stay empty."""
    seed(db, sessions=3_000, ips=40, answered_every=2)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        taken = conn.execute("SELECT ipintel.take_snapshots()").fetchone()
        assert taken is not None and taken[0] == 3_000
        before = conn.execute(SNAPSHOTS).fetchall()
        assert any(row[2] is not None and not row[15] for row in before), "no session waits for GreyNoise"

        # the seed's sessions start over the last 3,000 minutes, each IP's spread over them all
        window = conn.execute("SELECT now() - interval '30 hours' AS since, now() - interval '20 hours' AS until").fetchone()
        assert window is not None
        bounds = {"since": window[0], "until": window[1]}
        straddling = conn.execute(STRADDLING, bounds).fetchone()
        assert straddling is not None and straddling[0] > 0, "no waiting key with sessions on both sides"

        redo = conn.execute("SELECT sessions_reset, sessions_taken FROM ipintel.redo_snapshots(%(since)s, %(until)s, "
                            "'test: part of each key')", bounds).fetchone()
        assert redo is not None and redo[0] > 0
        # every reset session taken again: the complete ones and the ones still waiting
        assert redo[1] == redo[0]
        after = conn.execute(SNAPSHOTS).fetchall()
        # the sessions the queue's keys cover, and whether verify_sessions finds the queue sound
        queued = conn.execute("SELECT (SELECT count(*) FROM ipintel.session_summaries s JOIN ipintel.snapshot_queue q "
                              "ON q.source_ip = s.source_ip AND q.created_at = s.created_at "
                              "AND s.first_event_at BETWEEN q.first_at AND q.last_at "
                              "WHERE s.snapshot_complete_at IS NULL), "
                              "(SELECT sum(violations) FROM ipintel.verify_sessions())").fetchone()

    assert after == before
    assert queued is not None and queued[0] == sum(1 for row in after if not row[15]) and queued[1] == 0
