-- ensure_session_partitions(): a partition per UTC month, this month's and the next made ahead
-- (by the build, then by every merge), a session whose month has none kept in the default
-- partition and moved out when its month's partition is made; merges make the months they write.
BEGIN;
SELECT plan(17);

CREATE FUNCTION pg_temp.partition_of(p_month text) RETURNS text LANGUAGE sql AS $$
    SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'ipintel.session_summaries'::regclass AND c.relname = 'session_summaries_' || p_month $$;
CREATE FUNCTION pg_temp.holder(p_session text) RETURNS text LANGUAGE sql AS $$
    SELECT s.tableoid::regclass::text FROM ipintel.session_summaries s WHERE s.session_id = p_session $$;

SELECT is(pg_temp.partition_of(to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')),
          'session_summaries_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'), 'this month has its partition');
SELECT is(pg_temp.partition_of(to_char((now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM')),
          'session_summaries_' || to_char((now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM'),
          'the next month has its partition before it is needed');
SELECT is((SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.oid = 'ipintel.session_summaries_default'::regclass),
          'DEFAULT', 'a default partition takes what no month partition does');

-- A session of a month without a partition (written directly, as only a DBA can) is kept.
INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.40');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('old-1', '2019-03-31 23:59:59+00', '2019-04-01 00:00:10+00', '203.0.114.40'),
       ('old-2', '2019-03-01 00:00:00+00', '2019-03-01 00:00:05+00', '203.0.114.40'),
       ('old-3', '2019-04-01 00:00:00+00', '2019-04-01 00:00:05+00', '203.0.114.40');
SELECT is(pg_temp.holder('old-1'), 'ipintel.session_summaries_default', 'an out-of-range session lands in the default partition');

-- Months are UTC months whatever the caller's time zone (in New York, 23:59:59 UTC on the 31st is March still).
SET LOCAL timezone = 'America/New_York';
SELECT is(ipintel.ensure_session_partitions(ARRAY['2019-03-31 23:59:59+00'::timestamptz, '2019-03-02 12:00+00']), 1,
          'one partition made for two times of one month');
RESET timezone;
SELECT is(pg_temp.partition_of('2019_03'), 'session_summaries_2019_03', 'named session_summaries_YYYY_MM');
SELECT is((SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.oid = 'ipintel.session_summaries_2019_03'::regclass),
          $$FOR VALUES FROM ('2019-03-01 00:00:00+00') TO ('2019-04-01 00:00:00+00')$$, 'bounded by UTC months');
SELECT results_eq($$SELECT pg_temp.holder('old-1'), pg_temp.holder('old-2'), pg_temp.holder('old-3')$$,
                  $$VALUES ('ipintel.session_summaries_2019_03', 'ipintel.session_summaries_2019_03', 'ipintel.session_summaries_default')$$,
                  'the month''s sessions moved out of the default partition, the next month''s stayed');
SELECT is((SELECT count(*)::int FROM ipintel.session_summaries WHERE session_id LIKE 'old-%'), 3, 'no session lost or doubled');
SELECT is(ipintel.ensure_session_partitions(ARRAY['2019-03-15+00'::timestamptz]), 0, 'a month that has its partition: nothing to do');
SELECT isnt(obj_description('ipintel.session_summaries_2019_03'::regclass, 'pg_class'), NULL, 'the partition is commented');
SELECT results_eq(
    $$SELECT a.grantee::regrole::text, a.privilege_type FROM pg_class c CROSS JOIN aclexplode(c.relacl) a
      WHERE c.oid = 'ipintel.session_summaries_2019_03'::regclass AND a.grantee <> c.relowner ORDER BY 1$$,
    $$VALUES ('ipintel_loader', 'SELECT'), ('ipintel_reader', 'SELECT')$$,
    'granted as session_summaries is');
SELECT is((SELECT relowner::regrole::text FROM pg_class WHERE oid = 'ipintel.session_summaries_2019_03'::regclass),
          'ipintel_owner', 'owned by the owner of the schema, whoever called');

-- A merge makes the partition of the months it writes: a log of July 2018 ingested today.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor, protocol)
VALUES (-1, 1, 'cowrie.session.connect', '2018-07-03 10:00:00+00', 'jul-1', '203.0.114.41', 'hp1', 'ssh');
SELECT is((SELECT sessions_new FROM ipintel.merge_cowrie_events(-1)), 1::bigint, 'the old session is merged');
SELECT is(pg_temp.holder('jul-1'), 'ipintel.session_summaries_2018_07', 'into its month''s partition, made by the merge');

-- The rest of a session that started the month before, ingested later: the row moves to the earlier month.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-2, 1, 'cowrie.session.connect', '2018-06-30 23:59:58+00', 'jul-1', '203.0.114.41', 'hp1');
SELECT results_eq($$SELECT sessions_new, sessions_updated FROM ipintel.merge_cowrie_events(-2)$$,
                  $$VALUES (0::bigint, 1::bigint)$$, 'the earlier events update the known session');
SELECT results_eq($$SELECT pg_temp.holder('jul-1'), (SELECT count(*)::int FROM ipintel.session_summaries WHERE session_id = 'jul-1')$$,
                  $$VALUES ('ipintel.session_summaries_2018_06', 1)$$,
                  'one row, moved to the partition of its new first event');

SELECT * FROM finish();
ROLLBACK;
