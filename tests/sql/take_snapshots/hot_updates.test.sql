-- take_snapshots() writes its snapshots in place (revision 0038): no index of session_summaries
-- covers a column it writes, in its columns, expressions or predicate (revision 0064: the
-- incomplete sessions are listed in snapshot_queue, not in a partial index), and the monthly
-- partitions leave room on their pages (fillfactor 40), so every fill, the one that completes a
-- snapshot too, is a HOT update (no new index entry).
BEGIN;
SELECT plan(8);

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
            OR pg_catalog.pg_get_expr(x.indpred, x.indrelid) LIKE '%snapshot%')),
    0, 'nor an expression or predicate');

-- Months of their own, made as ingest makes them.
SELECT ipintel.ensure_session_partitions(ARRAY['2019-03-10 00:00Z'::timestamptz, '2019-04-10 00:00Z']);
SELECT is((SELECT c.reloptions FROM pg_catalog.pg_class c WHERE c.oid = 'ipintel.session_summaries_2019_03'::regclass),
          ARRAY['fillfactor=40'], 'a new monthly partition is filled to 40%');

UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
SELECT ('81.2.' || n || '.' || g)::inet, '2019-03-10', '2019-04-10', 1 FROM generate_series(0, 199) g, generate_series(70, 71) n;
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
SELECT 'hot-' || g, '2019-03-10 10:00Z', '2019-03-10 10:01Z', ('81.2.70.' || g)::inet
FROM generate_series(0, 199) g;
-- and sessions of other IPs in April, for the completing fill: a row's first update (within this
-- one test transaction the versions a first update leaves are not dead yet, so a page would fill
-- up with a second one). With what a Cowrie session has: a bare row leaves too little room at 40%
-- for the snapshot it grows by.
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, sensor, protocol, src_port,
                                       dst_ip, dst_port, duration_seconds, client_version, hassh, login_attempts,
                                       event_count)
SELECT md5('hot-april-' || g), '2019-04-10 10:00Z', '2019-04-10 10:01Z', ('81.2.71.' || g)::inet, 'honeypot-eu-1', 'ssh',
       40000 + g, '10.0.0.5', 22, 12.5, 'SSH-2.0-Go', md5(g::text), 3, 14
FROM generate_series(0, 199) g;
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
SELECT :run, 901, 'maxmind', i.ip, now(), '{"found": true, "country": "GB", "asn": 64999, "as_org": "AS", "asn_db": {"type": "GeoLite2-ASN"}}'
FROM ipintel.ip_inventory i WHERE i.ip << '81.2.70.0/23';
SELECT ipintel.merge_batch(:run, 901);

-- A fill that does not complete the snapshot (GreyNoise is still awaited).
UPDATE ipintel.enrichment_policy SET enabled = source IN ('maxmind', 'greynoise');
SELECT is(ipintel.take_snapshots(ARRAY(SELECT ('81.2.70.' || g)::inet FROM generate_series(0, 199) g)), 200::bigint,
          'the 200 sessions of March got their first fields');
SELECT is((SELECT n_tup_hot_upd FROM pg_catalog.pg_stat_xact_user_tables
           WHERE relid = 'ipintel.session_summaries_2019_03'::regclass),
          200::bigint, 'every one of those updates was HOT');

-- GreyNoise no longer awaited: the fill that completes the snapshots, of April's sessions. Before
-- revision 0064 it took each row out of the partial index of incomplete sessions, which no HOT
-- update can do.
UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
SELECT is(ipintel.take_snapshots(ARRAY(SELECT ('81.2.71.' || g)::inet FROM generate_series(0, 199) g)), 200::bigint,
          'the 200 snapshots of April are completed');
SELECT results_eq($$SELECT n_tup_upd, n_tup_hot_upd FROM pg_catalog.pg_stat_xact_user_tables
                    WHERE relid = 'ipintel.session_summaries_2019_04'::regclass$$,
                  $$VALUES (200::bigint, 200::bigint)$$, 'the completing updates were HOT too: 200 of 200');
SELECT is((SELECT count(*)::int FROM ipintel.snapshot_queue
           WHERE source_ip IN (SELECT ('81.2.71.' || g)::inet FROM generate_series(0, 199) g)), 0,
          'and the keys of the completed sessions left the queue');

SELECT * FROM finish();
ROLLBACK;
