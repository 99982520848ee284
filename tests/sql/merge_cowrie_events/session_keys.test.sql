-- merge_cowrie_events finds a session known by its id alone through session_keys (revision 0060):
-- one probe there, then the session's one monthly partition, instead of a probe of every month's
-- partition for every staged session (or a scan of all of them). The keys follow every insert,
-- delete and move of a session. Counted with the scans of this transaction (pg_stat_xact_all_tables).
BEGIN;
SELECT plan(10);

-- Two years of months, as a database kept that long has.
SELECT ipintel.ensure_session_partitions(ARRAY(SELECT '2026-11-15'::timestamptz - g * interval '1 month'
                                               FROM generate_series(0, 24) g)) > 0 AS made;

-- A session merged in November, then continued in the next batch beside 20 new sessions.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor, protocol)
VALUES (-1, 1, 'cowrie.session.connect', '2026-11-10 10:00:00+00', 'cont01', '203.0.114.40', 'hp1', 'ssh');
SELECT ipintel.merge_cowrie_events(-1);
SELECT results_eq($$SELECT first_event_at FROM ipintel.session_keys WHERE session_id = 'cont01'$$,
                  $$VALUES ('2026-11-10 10:00:00+00'::timestamptz)$$, 'a merged session''s key is listed');

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
CREATE TEMP VIEW scans_since AS
SELECT t.relid::regclass AS partition, coalesce(t.seq_scan, 0) + coalesce(t.idx_scan, 0) - coalesce(b.scans, 0) AS scans
FROM pg_stat_xact_all_tables t LEFT JOIN scans_before b USING (relid)
WHERE t.relid IN (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = 'ipintel.session_summaries'::regclass);

SELECT results_eq($$SELECT sessions_new, sessions_updated FROM ipintel.merge_cowrie_events(-2)$$,
                  $$VALUES (20::bigint, 1::bigint)$$, '20 new sessions and the continued one');
SELECT is((SELECT sum(s.scans)::int FROM scans_since s WHERE s.partition <> 'ipintel.session_summaries_2026_11'::regclass),
          0, 'no other month''s partition is read (there are 27)');
SELECT cmp_ok((SELECT sum(s.scans)::int FROM scans_since s), '<=', 2,
              'November''s is read twice at most: the continued session found, then updated, by its key');
SELECT is((SELECT count(*)::int FROM ipintel.session_keys WHERE session_id LIKE 'new%'), 20,
          'the new sessions'' keys are listed');

-- Earlier events of the continued session arrive (an older file read late): it moves to October,
-- and its key with it; found again by its key in the next batch.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-3, 1, 'cowrie.login.failed', '2026-10-31 23:59:00+00', 'cont01', '203.0.114.40', 'hp1');
SELECT results_eq($$SELECT sessions_new, sessions_updated FROM ipintel.merge_cowrie_events(-3)$$,
                  $$VALUES (0::bigint, 1::bigint)$$, 'the earlier events continue the session');
SELECT results_eq(
    $$SELECT k.first_event_at, s.tableoid::regclass::text FROM ipintel.session_keys k
      JOIN ipintel.session_summaries s USING (session_id) WHERE k.session_id = 'cont01'$$,
    $$VALUES ('2026-10-31 23:59:00+00'::timestamptz, 'ipintel.session_summaries_2026_10')$$,
    'the session moved to October, and its key followed');
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-4, 1, 'cowrie.command.input', '2026-11-10 10:01:00+00', 'cont01', '203.0.114.40', 'hp1');
SELECT results_eq($$SELECT sessions_new, sessions_updated FROM ipintel.merge_cowrie_events(-4)$$,
                  $$VALUES (0::bigint, 1::bigint)$$, 'and is found there by the next batch, not inserted again');

-- A session removed behind the triggers' back (a month's partition detached or dropped; here one
-- row deleted from its partition, which the triggers on session_summaries do not see): its key
-- finds nothing, so the session is new again, and its key is repointed.
DELETE FROM ipintel.session_summaries_2026_11 WHERE session_id = 'new1';
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-5, 1, 'cowrie.session.connect', '2026-12-01 08:00:00+00', 'new1', '203.0.114.51', 'hp1');
SELECT results_eq($$SELECT sessions_new, sessions_updated FROM ipintel.merge_cowrie_events(-5)$$,
                  $$VALUES (1::bigint, 0::bigint)$$, 'a session whose key is stale is merged as new');

-- Sessions written by other means keep their keys too (a DBA's INSERT and DELETE).
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('dba01', '2025-03-03 03:00+00', '2025-03-03 03:05+00', '203.0.114.40');
DELETE FROM ipintel.session_summaries WHERE session_id = 'new2';
SELECT results_eq($$SELECT rule, violations FROM ipintel.verify_sessions() WHERE rule LIKE 'session_keys%'$$,
                  $$VALUES ('session_keys holds the key (session_id, first_event_at) of every session and of no other', 0::bigint)$$,
                  'verify_sessions: every session has its key, and no key is left over');

SELECT * FROM finish();
ROLLBACK;
