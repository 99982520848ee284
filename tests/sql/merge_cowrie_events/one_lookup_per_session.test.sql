-- merge_cowrie_events looks each staged session up in session_summaries once (revision 0054):
-- the lookup that keeps a continued session's peer also keeps its key, so the update reads that
-- session by key and the insert of the new ones looks nothing up. Before, each staged session
-- was looked up three times, each time in every partition. Counted with the scans of this
-- transaction (pg_stat_xact_all_tables) of session_summaries' partitions.
BEGIN;
SELECT plan(4);

-- A session already merged (in the November partition), then continued in the next batch with
-- 20 new sessions beside it.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor, protocol)
VALUES (-1, 1, 'cowrie.session.connect', '2026-11-10 10:00:00+00', 'cont01', '203.0.114.40', 'hp1', 'ssh');
SELECT ipintel.merge_cowrie_events(-1);

INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
SELECT -2, 1, 'cowrie.login.failed', '2026-11-10 10:00:05+00', 'cont01', '203.0.114.40', 'hp1'
UNION ALL
SELECT -2, 1 + n, 'cowrie.session.connect', '2026-11-10 10:00:00+00'::timestamptz + n * interval '1 minute',
       'new' || n, ('203.0.114.' || (50 + n))::inet, 'hp1'
FROM generate_series(1, 20) n;

CREATE TEMP TABLE scans_before AS
SELECT t.relid, coalesce(t.seq_scan, 0) + coalesce(t.idx_scan, 0) AS scans
FROM pg_stat_xact_all_tables t
WHERE t.relid IN (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = 'ipintel.session_summaries'::regclass);

SELECT results_eq($$SELECT sessions_new, sessions_updated FROM ipintel.merge_cowrie_events(-2)$$,
                  $$VALUES (20::bigint, 1::bigint)$$, '20 new sessions and the continued one');

-- Scans of the partitions during that merge, against one lookup of 21 sessions in each partition
-- (the default one included) plus the continued session's update by key.
SELECT cmp_ok(
    (SELECT sum(coalesce(t.seq_scan, 0) + coalesce(t.idx_scan, 0) - coalesce(b.scans, 0))::int
     FROM pg_stat_xact_all_tables t LEFT JOIN scans_before b USING (relid)
     WHERE t.relid IN (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = 'ipintel.session_summaries'::regclass)),
    '<=',
    (SELECT 21 * count(*)::int + 1 FROM pg_inherits i WHERE i.inhparent = 'ipintel.session_summaries'::regclass),
    'each staged session is looked up once in each partition, and the continued one updated by key');

SELECT results_eq(
    $$SELECT login_attempts, event_count, host(source_ip) FROM ipintel.session_summaries WHERE session_id = 'cont01'$$,
    $$VALUES (1::bigint, 2::bigint, '203.0.114.40')$$, 'the continued session is updated, not inserted again');
SELECT is((SELECT count(*)::int FROM ipintel.session_summaries WHERE session_id LIKE 'new%'), 20, 'the new ones are inserted');

SELECT * FROM finish();
ROLLBACK;
