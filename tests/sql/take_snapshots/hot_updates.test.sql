-- take_snapshots() writes its snapshots in place (revision 0038): no index of session_summaries
-- covers a column it writes (but the incomplete-snapshot index's predicate, which the completing
-- fill changes), the monthly partitions leave room on their pages (fillfactor 40), so a fill that
-- does not complete the snapshot is a HOT update (no new index entry).
BEGIN;
SELECT plan(5);

SELECT is(
    (SELECT count(*)::int
     FROM pg_catalog.pg_index x
     JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey::int2[])
     WHERE x.indrelid = 'ipintel.session_summaries'::regclass AND a.attname LIKE 'snapshot%'),
    0, 'no index of session_summaries covers a snapshot column');
SELECT is(
    (SELECT count(*)::int
     FROM pg_catalog.pg_index x
     WHERE x.indrelid = 'ipintel.session_summaries'::regclass
       AND (pg_catalog.pg_get_expr(x.indexprs, x.indrelid) LIKE '%snapshot%'
            OR pg_catalog.pg_get_expr(x.indpred, x.indrelid) LIKE '%snapshot%'
               AND pg_catalog.pg_get_expr(x.indpred, x.indrelid) <> '(snapshot_complete_at IS NULL)')),
    0, 'nor an expression or predicate, but the incomplete-snapshot index''s');

-- A month of its own, made as ingest makes it.
SELECT ipintel.ensure_session_partitions(ARRAY['2019-03-10 00:00Z'::timestamptz]);
SELECT is((SELECT c.reloptions FROM pg_catalog.pg_class c WHERE c.oid = 'ipintel.session_summaries_2019_03'::regclass),
          ARRAY['fillfactor=40'], 'a new monthly partition is filled to 40%');

UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
SELECT ('81.2.70.' || g)::inet, '2019-03-10', '2019-03-10', 1 FROM generate_series(0, 199) g;
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
SELECT 'hot-' || g, '2019-03-10 10:00Z', '2019-03-10 10:01Z', ('81.2.70.' || g)::inet
FROM generate_series(0, 199) g;
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
SELECT :run, 901, 'maxmind', i.ip, now(), '{"found": true, "country": "GB", "asn": 64999, "as_org": "AS", "asn_db": {"type": "GeoLite2-ASN"}}'
FROM ipintel.ip_inventory i WHERE i.ip << '81.2.70.0/24';
SELECT ipintel.merge_batch(:run, 901);

-- A fill that does not complete the snapshot (GreyNoise is still awaited): completing one moves
-- it out of the partial incomplete-snapshot index, which no HOT update can do.
UPDATE ipintel.enrichment_policy SET enabled = source IN ('maxmind', 'greynoise');
SELECT is(ipintel.take_snapshots(), 200::bigint, 'the 200 sessions got their first fields');
SELECT is((SELECT n_tup_hot_upd FROM pg_catalog.pg_stat_xact_user_tables
           WHERE relid = 'ipintel.session_summaries_2019_03'::regclass),
          200::bigint, 'every one of those updates was HOT');

SELECT * FROM finish();
ROLLBACK;
