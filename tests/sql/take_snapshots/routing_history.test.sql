-- take_snapshots() with routing history: a session's ASN comes from the routing snapshot of its
-- own day first, with that snapshot as its source; sessions routing does not cover fall back to
-- ip_asn_history, then to the current ASN. A prefix that moves from AS A to AS B between two
-- snapshots gives A to a session before the move and B to one after.
BEGIN;
SELECT plan(4);
-- The source names the snapshot's day as YYYY-MM-DD whatever the session's DateStyle (0038).
SET LOCAL DateStyle = 'SQL, DMY';

SELECT ipintel_tests.load_routes('2018-05-06', '{{81.2.69.0/24,64500}}');
SELECT ipintel_tests.load_routes('2018-05-13', '{{81.2.69.0/24,64501}}');

-- Only GreyNoise-free snapshots here: every source but MaxMind disabled; MaxMind answered now
-- with another ASN (the current one).
UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
VALUES ('81.2.69.7', '2018-05-07', '2026-11-01', 3);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('before-move', '2018-05-07 10:00Z', '2018-05-07 10:01Z', '81.2.69.7'),
    ('after-move', '2018-05-14 10:00Z', '2018-05-14 10:01Z', '81.2.69.7'),
    ('years-later', '2026-11-01 10:00Z', '2026-11-01 10:01Z', '81.2.69.7');
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
VALUES (:run, 900, 'maxmind', '81.2.69.7', '2026-11-02',
        '{"found": true, "country": "GB", "asn": 64999, "as_org": "NOW-AS", "asn_db": {"type": "GeoLite2-ASN"}}');
SELECT ipintel.merge_batch(:run, 900);

SELECT is(ipintel.take_snapshots(), 3::bigint, 'three sessions snapshotted');
SELECT results_eq($$SELECT session_id, snapshot_asn, snapshot_asn_source FROM ipintel.session_summaries ORDER BY first_event_at$$,
    $$VALUES ('before-move'::text, 64500::bigint, 'routing:routeviews:2018-05-06'::text),
             ('after-move', 64501, 'routing:routeviews:2018-05-13'),
             ('years-later', 64999, 'maxmind:current')$$,
    'before the move A, after it B, from the snapshot of their day; routing does not cover 2026: the current ASN');
SELECT is((SELECT count(*) FROM ipintel.session_summaries WHERE snapshot_complete_at IS NOT NULL), 3::bigint,
          'all complete');
-- Loading routing history later does not rewrite a snapshot taken from the current ASN.
SELECT ipintel_tests.load_routes('2026-10-30', '{{81.2.69.0/24,65000}}');
SELECT ipintel.take_snapshots();
SELECT is((SELECT snapshot_asn_source FROM ipintel.session_summaries WHERE session_id = 'years-later'), 'maxmind:current',
          'a complete snapshot is not rewritten by routing history loaded later');

SELECT * FROM finish();
ROLLBACK;
