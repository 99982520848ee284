-- A merged batch reads its own IPs' rows of ip_inventory by index probes (revision 0056), whatever
-- the statistics say, in three statements that scanned it. Before, those statements of
-- merge_batch could hash the whole inventory once per batch (a first enrichment then cost in
-- proportion to the inventory for every batch of 10,000). Here a batch of 2,000 answers, half
-- repeats and half first answers, is merged into an inventory of 30,000 IPs, 20,000 of them
-- answered, with fresh statistics: the shape in which the planner chose the hashes. Counted
-- with the scans of this transaction (pg_stat_xact_all_tables).
BEGIN;
SELECT plan(3);

INSERT INTO ipintel.ip_inventory (ip)
SELECT '10.20.0.0'::inet + g * 3 FROM generate_series(1, 30000) g;
SELECT ipintel_tests.answer('maxmind',
    (SELECT jsonb_object_agg(host('10.20.0.0'::inet + g * 3),
                             jsonb_build_object('country', 'NL', 'asn', 64500 + g % 7, 'asn_db', '{"type": "GeoLite2-ASN"}'::jsonb))
     FROM generate_series(1, 20000) g),
    '2026-11-01', 1);

-- IPs 19,001-21,000: 1,000 repeats of the stored answer and 1,000 first answers.
CREATE TEMP TABLE batch AS
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run_id, nextval('ipintel_staging.batch_id_seq') AS batch_id;
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result, build)
SELECT b.run_id, b.batch_id, 'maxmind', '10.20.0.0'::inet + g * 3, '2026-11-08',
       jsonb_build_object('country', 'NL', 'asn', 64500 + g % 7, 'asn_db', '{"type": "GeoLite2-ASN"}'::jsonb), 2
FROM batch b, generate_series(19001, 21000) g;
ANALYZE ipintel.ip_inventory, ipintel.enrichment_state, ipintel_staging.enrichment_results;

CREATE TEMP TABLE scans_before AS
SELECT t.relid, coalesce(t.seq_scan, 0) AS seq_scan
FROM pg_stat_xact_all_tables t
WHERE t.relid = 'ipintel.ip_inventory'::regclass;

SELECT results_eq($$SELECT m.fetched, m.merged FROM batch b, ipintel.merge_batch(b.run_id, b.batch_id) m$$,
                  $$VALUES (2000::bigint, 2000::bigint)$$, 'the batch is merged whole');

-- At most the two statements still planned freely may scan it (record_enrichment_state's refresh
-- of repeated answers and apply_answers' write of the changed rows); at 0055, four scans.
SELECT cmp_ok((SELECT t.seq_scan - b.seq_scan FROM pg_stat_xact_all_tables t JOIN scans_before b USING (relid)
               WHERE t.relid = 'ipintel.ip_inventory'::regclass), '<=', 2::bigint,
              'the count, the insert of new answers and the read of the current rows probe ip_inventory');

SELECT results_eq(
    $$SELECT count(*) FILTER (WHERE fetched_at = '2026-11-08' AND changed_at = '2026-11-01'),
             count(*) FILTER (WHERE fetched_at = '2026-11-08' AND changed_at = '2026-11-08'),
             count(*) FILTER (WHERE fetched_at = '2026-11-01')
      FROM ipintel.enrichment_state WHERE source = 'maxmind'$$,
    $$VALUES (1000::bigint, 1000::bigint, 19000::bigint)$$,
    'repeats refreshed, first answers recorded, the others untouched');

SELECT * FROM finish();
ROLLBACK;
