-- A re-merge of unchanged answers (a TTL refresh; revision 0053): each answer that repeats the
-- stored document has its fetch time and build written, its changed_at and facts kept, and
-- apply_answers is not called at all when no ip_inventory row of the batch can change. In a
-- batch that mixes repeated and changed answers, the changed ones get their new facts and
-- changed_at, and are resolved.
BEGIN;
SELECT plan(8);
-- The calls of this transaction's functions, counted (pg_stat_xact_user_functions).
SET LOCAL track_functions = 'all';

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.30'), ('203.0.114.31');
SELECT ipintel_tests.answer('maxmind',
    '{"203.0.114.30": {"country": "NL", "asn": 64500, "asn_db": {"type": "GeoLite2-ASN"}},
      "203.0.114.31": {"country": "DE", "asn": 64501, "asn_db": {"type": "GeoLite2-ASN"}}}',
    '2026-11-01', 1);
CREATE TEMP TABLE calls_before AS
SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = 'ipintel';

-- The same documents from the next build.
SELECT is(ipintel_tests.answer('maxmind',
    '{"203.0.114.30": {"country": "NL", "asn": 64500, "asn_db": {"type": "GeoLite2-ASN"}},
      "203.0.114.31": {"country": "DE", "asn": 64501, "asn_db": {"type": "GeoLite2-ASN"}}}',
    '2026-11-08', 2), 2::bigint, 'both repeated answers are recorded (merged)');
SELECT results_eq(
    $$SELECT host(ip), fetched_at, build, changed_at, asn, country FROM ipintel.enrichment_state
      WHERE source = 'maxmind' ORDER BY ip$$,
    $$VALUES ('203.0.114.30', '2026-11-08'::timestamptz, 2::bigint, '2026-11-01'::timestamptz, 64500::bigint, 'NL'),
             ('203.0.114.31', '2026-11-08', 2, '2026-11-01', 64501, 'DE')$$,
    'fetch time and build written; changed_at and the facts kept');
SELECT is((SELECT a.calls - b.calls FROM pg_stat_xact_user_functions a JOIN calls_before b USING (funcname)
           WHERE a.schemaname = 'ipintel' AND a.funcname = 'apply_answers'), 0::bigint,
          'nothing of the batch can change in ip_inventory: apply_answers is not called');
SELECT is((SELECT a.calls - b.calls FROM pg_stat_xact_user_functions a JOIN calls_before b USING (funcname)
           WHERE a.schemaname = 'ipintel' AND a.funcname = 'record_enrichment_state'), 1::bigint,
          'record_enrichment_state is (once)');

-- An answer staged out of order (older than the recorded change) with the same document.
SELECT ipintel_tests.answer('maxmind', '{"203.0.114.30": {"country": "NL", "asn": 64500, "asn_db": {"type": "GeoLite2-ASN"}}}',
                            '2026-10-25', 2);
SELECT results_eq($$SELECT fetched_at, changed_at FROM ipintel.enrichment_state WHERE ip = '203.0.114.30'$$,
                  $$VALUES ('2026-10-25'::timestamptz, '2026-10-25'::timestamptz)$$,
                  'an older repeat says the document held by its fetch time already');

-- One repeated answer and one changed answer in one batch.
SELECT is(ipintel_tests.answer('maxmind',
    '{"203.0.114.30": {"country": "NL", "asn": 64500, "asn_db": {"type": "GeoLite2-ASN"}},
      "203.0.114.31": {"country": "FR", "asn": 64502, "asn_db": {"type": "GeoLite2-ASN"}}}',
    '2026-11-15', 3), 2::bigint, 'both answers of a mixed batch are recorded');
SELECT results_eq(
    $$SELECT host(ip), fetched_at, build, changed_at, asn, country FROM ipintel.enrichment_state
      WHERE source = 'maxmind' ORDER BY ip$$,
    $$VALUES ('203.0.114.30', '2026-11-15'::timestamptz, 3::bigint, '2026-10-25'::timestamptz, 64500::bigint, 'NL'),
             ('203.0.114.31', '2026-11-15', 3, '2026-11-15', 64502, 'FR')$$,
    'the changed answer gets its new facts and changed_at, the repeated one only its freshness');
SELECT results_eq($$SELECT host(ip), current_asn, geo_country FROM ipintel.ip_inventory ORDER BY ip$$,
                  $$VALUES ('203.0.114.30', 64500::bigint, 'NL'), ('203.0.114.31', 64502, 'FR')$$,
                  'and the changed one is resolved into ip_inventory');

SELECT * FROM finish();
ROLLBACK;
