-- attribution_daily: a re-snapshot (redo_snapshots after routing history is loaded for the
-- sessions' day) that moves a session to another ASN updates both groups of its day.
BEGIN;
SELECT plan(4);

UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'dshield';
SELECT ipintel_tests.skipped_pass(s) FROM unnest(ARRAY['ipinfo', 'dbip']) s;
SELECT ipintel.roll_up_attribution();

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.7'), ('203.0.115.7');
SELECT ipintel_tests.answer('maxmind',
    '{"203.0.114.7": {"country": "NL", "asn": 64500, "as_org": "A", "asn_db": {"type": "GeoLite2-ASN"}},
      "203.0.115.7": {"country": "NL", "asn": 64500, "as_org": "A", "asn_db": {"type": "GeoLite2-ASN"}}}',
    '2026-10-01', 1);
INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, source_ip)
VALUES ('r1', 's1', '2026-11-05 10:00+00', '2026-11-05 10:01+00', '203.0.114.7'),
       ('r2', 's1', '2026-11-05 11:00+00', '2026-11-05 11:01+00', '203.0.115.7');
SELECT ipintel.take_snapshots();
SELECT ipintel.roll_up_attribution();
SELECT results_eq($$SELECT asn, sessions FROM ipintel.attribution_daily WHERE day = '2026-11-05'$$,
                  $$VALUES (64500::bigint, 2::bigint)$$, 'both sessions under AS 64500');

-- Routing history says 203.0.114.0/24 was announced by AS 64999 that day: a redo moves r1.
SELECT ipintel_tests.load_routes('2026-11-05', ARRAY[['203.0.114.0/24', '64999']]);
SELECT ipintel.redo_snapshots('2026-11-05', '2026-11-06', 'routing history loaded');
SELECT is((SELECT snapshot_asn FROM ipintel.session_summaries WHERE session_id = 'r1'), 64999::bigint,
          'the redo moved r1 to AS 64999');
SELECT is(ipintel.roll_up_attribution(), 1::bigint, 'one day to recount');
SELECT results_eq($$SELECT asn, sessions, public.hll_cardinality(distinct_ips)::bigint FROM ipintel.attribution_daily
                    WHERE day = '2026-11-05' ORDER BY asn$$,
                  $$VALUES (64500::bigint, 1::bigint, 1::bigint), (64999::bigint, 1::bigint, 1::bigint)$$,
                  'the old group lost the session, the new one has it');

SELECT * FROM finish();
ROLLBACK;
