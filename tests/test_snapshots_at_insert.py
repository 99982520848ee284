"""An enriched chunk's sessions are inserted with the snapshots take_snapshots would give them.

Revision 0080: merge_cowrie_events works the snapshot values of a chunk's new sessions out per key
(ipintel.snapshot_key_values of the batch) and inserts the sessions with them, instead of inserting
them empty and filling them with take_snapshots(ips), the per-session statement. It keeps that
statement where routing snapshots or dated geolocation builds exist, so an (empty) geolocation
build loaded in the same transaction makes the same merge take the old way: both, rolled back
over the same data, must leave every session with the same snapshot, the same queue and the same
days queued for the roll-up.

The data has each case: IPs settled (complete at insert), IPs GreyNoise has not answered (ready
fields only, queued), IPs whose ASN history moves among the chunk's sessions (hard: left to
take_snapshots), IPs with sessions queued by an earlier ingest (take_snapshots too), a Tor exit
list snapshot among the chunk's days (several keys per IP), a session the chunk continues, a
bogon and an IP never seen.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bench.snapshot_step import merge_answers, seed
from tests.test_snapshot_keys import tor_snapshot

SNAPSHOTS = """
SELECT s.session_id, s.snapshot_asn, s.snapshot_asn_source, s.snapshot_country, s.snapshot_country_source,
       s.snapshot_is_scanner, s.snapshot_is_scanner_source, s.snapshot_ip_type, s.snapshot_ip_type_source,
       s.snapshot_ip_provider, s.snapshot_is_known_attacker, s.snapshot_threatfeeds,
       s.snapshot_is_known_attacker_source, e.digest, s.snapshot_at IS NOT NULL, s.snapshot_complete_at IS NOT NULL,
       s.event_count,
       -- queued: incomplete, and its key (IP, ingest time) in the queue, covering it
       s.snapshot_complete_at IS NULL
       AND EXISTS (SELECT 1 FROM ipintel.snapshot_queue q
                   WHERE q.source_ip = s.source_ip AND q.created_at = s.created_at
                     AND s.first_event_at BETWEEN q.first_at AND q.last_at) AS queued,
       ((s.source_ip - '11.0.0.0'::inet) / 37) % 4 = 1 AS late
FROM ipintel.session_summaries s
LEFT JOIN ipintel.enrichment_documents e ON e.document_id = s.snapshot_document
ORDER BY s.session_id
"""
DAYS_QUEUED = "SELECT DISTINCT day FROM ipintel.attribution_dirty_days ORDER BY day"

# The seed's IPs are 11.0.0.0 + 37 * g (g = 1..40); GreyNoise answered every second one.
IP = "'11.0.0.0'::inet + 37 * (1 + g % 40)"
MOVED = "SELECT '11.0.0.0'::inet + 37 * g FROM generate_series(1, 40, 7) g"

SHAPE = f"""
-- The IPs of MOVED changed their ASN four days ago: the chunk's sessions before take the earlier one.
UPDATE ipintel.ip_asn_history SET valid = tstzrange(now() - interval '4 days', NULL)
WHERE ip IN ({MOVED}) AND upper_inf(valid);
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
SELECT ip, 64500, tstzrange(now() - interval '60 days', now() - interval '4 days'), 'maxmind'
FROM ({MOVED}) m(ip);
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen) VALUES ('10.1.2.3', now() - interval '30 days', now());
"""

# 600 sessions over the last 12 days (the Tor snapshot, 10 days ago, counts for 7 of them), two
# events each; one continues a seeded session (md5('5')); a bogon and an IP never seen.
CHUNK = f"""
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
SELECT -7, 2 * g + e, CASE e WHEN 0 THEN 'cowrie.session.connect' ELSE 'cowrie.login.failed' END,
       now() - (g % 12) * interval '1 day' - g * interval '1 second' + e * interval '1 second',
       'chunk-' || g, {IP}, 'hp1'
FROM generate_series(1, 600) g CROSS JOIN generate_series(0, 1) e;
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-7, 5001, 'cowrie.login.failed', now(), md5('5'), '11.0.0.0'::inet + 37 * 6, 'hp1'),
       (-7, 5002, 'cowrie.session.connect', now() - interval '1 hour', 'chunk-bogon', '10.1.2.3', 'hp1'),
       (-7, 5003, 'cowrie.session.connect', now() - interval '1 hour', 'chunk-new-ip', '198.51.100.9', 'hp1');
"""

# GreyNoise answers a quarter of the IPs it had not answered (g = 1 mod 4) after the first pass:
# their sessions queued by the seed's ingest can now be completed (by the chunk's take_snapshots).
STAGE_LATE_GREYNOISE = """
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
SELECT %(run)s, %(batch)s, 'greynoise', i.ip, now(),
       jsonb_build_object('observed', true, 'noise', true, 'riot', false, 'classification', 'malicious')
FROM ipintel.ip_inventory i
CROSS JOIN LATERAL (SELECT (i.ip - '11.0.0.0'::inet) / 37 AS g) n
WHERE n.g %% 4 = 1
"""

CALLS = ("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = 'ipintel' "
         "AND funcname IN ('snapshot_key_values', 'take_snapshots')")

# A dated geolocation build with no range: it answers nothing, but its presence sends the merge
# the old way (take_snapshots(ips), per session).
EMPTY_BUILD = """
INSERT INTO ipintel.geo_editions (edition, source) VALUES ('test_empty', 'maxmind');
INSERT INTO ipintel.geo_builds (edition, built_on, build_epoch, database_type, file, sha256)
VALUES ('test_empty', '2001-09-09', 1000000000, 'GeoLite2-Country', 'empty.mmdb', repeat('0', 64));
"""


def _merge(conn: psycopg.Connection[Any], *, old_way: bool) -> tuple[list[Any], list[Any], dict[str, int]]:
    """The chunk merged (rolled back): the sessions' snapshots, the days queued, the calls."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL track_functions = 'all'")
        before = dict(conn.execute(CALLS).fetchall())
        if old_way:
            conn.execute(EMPTY_BUILD)
        conn.execute(CHUNK)
        row = conn.execute("SELECT sessions_new, sessions_updated FROM ipintel.merge_cowrie_events(-7)").fetchone()
        assert row == (602, 1)
        snapshots = conn.execute(SNAPSHOTS).fetchall()
        days = conn.execute(DAYS_QUEUED).fetchall()
        calls = {name: n - before.get(name, 0) for name, n in conn.execute(CALLS).fetchall()}
    return snapshots, days, {name: n for name, n in calls.items() if n}


def test_an_enriched_chunk_is_inserted_with_the_snapshots_take_snapshots_gives(db: str) -> None:
    seed(db, sessions=2_000, ips=40, answered_every=2)
    with psycopg.connect(db, autocommit=True) as conn:
        # the seeded sessions: settled, or (GreyNoise unanswered) queued with an earlier ingest time
        conn.execute("SELECT ipintel.take_snapshots()")
        merge_answers(conn, "greynoise", STAGE_LATE_GREYNOISE, 5, 4, answered=True)
        conn.execute(SHAPE)
        tor_snapshot(conn)  # three of the IPs on a Tor list snapshot taken 10 days ago
        conn.execute("VACUUM ANALYZE")

        at_insert, days_at_insert, calls_at_insert = _merge(conn, old_way=False)
        old, days_old, calls_old = _merge(conn, old_way=True)

    # the new way worked the chunk's keys out once; the old way never did
    assert calls_at_insert.get("snapshot_key_values") == 1
    assert "snapshot_key_values" not in calls_old
    # take_snapshots(ips) is still called for the IPs whose ASN moved and the IPs with earlier
    # queued sessions (once: both kinds in one call)
    assert calls_at_insert.get("take_snapshots") == 1 and calls_old.get("take_snapshots") == 1

    assert at_insert == old
    assert days_at_insert == days_old

    # the data reached each case
    chunk = [row for row in at_insert if row[0].startswith("chunk-")]
    assert any(row[15] and not row[17] for row in chunk), "no session complete at insert"
    assert any(row[14] and not row[15] and row[17] for row in chunk), "no session with ready fields only"
    sources = {row[2] for row in chunk}
    assert {"maxmind:history", "maxmind:current"} <= sources
    assert 64500 in {row[1] for row in chunk if row[2] == "maxmind:history"}
    assert {"tor", "routed"} <= {row[7] for row in chunk}
    assert all(not row[14] for row in chunk if row[0] in ("chunk-bogon", "chunk-new-ip"))
    # the seed's sessions of the IPs GreyNoise answered late are completed by the chunk's merge
    late = [row for row in at_insert if not row[0].startswith("chunk-") and row[18]]
    assert late and all(row[15] and row[6] == "greynoise" and not row[17] for row in late)
    continued = next(row for row in at_insert if row[0] == "e4da3b7fbbce2345d7772b0674a318d5")  # md5('5')
    assert continued[16] == 10  # the seed's 9 events and the chunk's one
