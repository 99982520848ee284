-- redo_snapshots(): the one audited way to rewrite a snapshot. Sessions snapshotted from the
-- current ASN are taken again after routing history for their days is loaded; every redo is a
-- row with its reason and counts; any other rewrite is refused by the trigger.
BEGIN;
SELECT plan(7);

UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES ('81.2.69.7', '2018-05-07', '2018-05-08', 2);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('old-1', '2018-05-07 10:00Z', '2018-05-07 10:01Z', '81.2.69.7'),
    ('old-2', '2018-05-08 10:00Z', '2018-05-08 10:01Z', '81.2.69.7');
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
VALUES (:run, 901, 'maxmind', '81.2.69.7', now(),
        '{"found": true, "country": "GB", "asn": 64999, "as_org": "NOW-AS", "asn_db": {"type": "GeoLite2-ASN"}}');
SELECT ipintel.merge_batch(:run, 901);
SELECT ipintel.take_snapshots();
SELECT is((SELECT array_agg(DISTINCT snapshot_asn_source) FROM ipintel.session_summaries), ARRAY['maxmind:current'],
          'snapshotted from the current ASN (no routing history yet)');

-- Routing history for 2018 arrives later.
INSERT INTO ipintel_staging.routing_prefixes (batch_id, prefix, asn) VALUES (902, '81.2.69.0/24', 64500);
SELECT ipintel.load_routing_snapshot('routeviews', '2018-05-06', 'routeviews-rv2-20180506-1200.pfx2as.gz', 902);

SELECT throws_ok($$UPDATE ipintel.session_summaries SET snapshot_asn = 64500, snapshot_asn_source = 'routing:routeviews:2018-05-06'
                   WHERE session_id = 'old-1'$$,
                 '23000', 'snapshot of session old-1: a known snapshot field is never rewritten',
                 'a direct rewrite is refused');
SELECT throws_ok($$SELECT set_config('ipintel.snapshot_redo', '1', true);
                   UPDATE ipintel.session_summaries SET snapshot_asn = 1 WHERE session_id = 'old-1'$$,
                 '23000', NULL, 'naming a redo that is not running does not open the door');

SELECT results_eq($$SELECT sessions_reset, sessions_taken FROM ipintel.redo_snapshots('2018-05-07', '2018-05-08', 'routing history for May 2018 loaded')$$,
                  $$VALUES (1::bigint, 1::bigint)$$, 'the window''s session is reset and taken again');
SELECT results_eq($$SELECT session_id, snapshot_asn, snapshot_asn_source FROM ipintel.session_summaries ORDER BY 1$$,
    $$VALUES ('old-1'::text, 64500::bigint, 'routing:routeviews:2018-05-06'::text), ('old-2', 64999, 'maxmind:current')$$,
    'inside the window: routing history at its day; outside: untouched');
SELECT results_eq($$SELECT since, until, reason, sessions_reset, sessions_taken, finished_at IS NOT NULL FROM ipintel.snapshot_redos$$,
    $$VALUES ('2018-05-07'::timestamptz, '2018-05-08'::timestamptz, 'routing history for May 2018 loaded'::text, 1::bigint, 1::bigint, true)$$,
    'the redo is recorded with its reason and counts');
SELECT throws_ok($$SELECT * FROM ipintel.redo_snapshots('2018-05-07', '2018-05-08', '  ')$$, '23514', NULL,
                 'a redo needs a reason');

SELECT * FROM finish();
ROLLBACK;
