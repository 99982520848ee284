-- snapshot_queue lists exactly the sessions whose snapshot is incomplete (revision 0064), through
-- every way a session comes, moves, completes, is redone or goes: ingest inserts it (trigger),
-- a later file moves its first_event_at earlier (merge_cowrie_events), take_snapshots completes
-- it (removed) or fills it in part (kept), ensure_session_partitions moves it out of the default
-- partition, redo_snapshots makes it incomplete again, a delete removes it. After each step
-- verify_sessions' rule agrees.
BEGIN;
SELECT plan(11);

UPDATE ipintel.enrichment_policy SET enabled = source IN ('maxmind', 'greynoise');
CREATE TEMP VIEW queue_rule AS
SELECT v.violations FROM ipintel.verify_sessions() v WHERE v.rule LIKE 'snapshot_queue%';

-- Ingest: three sessions of two IPs in November, none answered yet.
SELECT ipintel.ensure_session_partitions(ARRAY['2026-10-15'::timestamptz, '2026-11-15']) >= 0 AS made;
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-1, 1, 'cowrie.session.connect', '2026-11-10 10:00:00+00', 'q-a', '203.0.114.60', 'hp1'),
       (-1, 2, 'cowrie.session.connect', '2026-11-10 10:05:00+00', 'q-b', '203.0.114.60', 'hp1'),
       (-1, 3, 'cowrie.session.connect', '2026-11-10 10:06:00+00', 'q-c', '203.0.114.61', 'hp1');
SELECT ipintel.merge_cowrie_events(-1);
SELECT results_eq(
    $$SELECT q.session_id, q.first_event_at, q.source_ip, q.created_at = s.created_at
      FROM ipintel.snapshot_queue q JOIN ipintel.session_summaries s USING (session_id)
      WHERE q.session_id LIKE 'q-%' ORDER BY 1$$,
    $$VALUES ('q-a', '2026-11-10 10:00:00+00'::timestamptz, '203.0.114.60'::inet, true),
             ('q-b', '2026-11-10 10:05:00+00', '203.0.114.60', true),
             ('q-c', '2026-11-10 10:06:00+00', '203.0.114.61', true)$$,
    'ingest queues each new session with its key, IP and ingest time');

-- An older file read late: q-a's first event is in October; its queue row follows.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-2, 1, 'cowrie.login.failed', '2026-10-31 23:00:00+00', 'q-a', '203.0.114.60', 'hp1');
SELECT ipintel.merge_cowrie_events(-2);
SELECT is((SELECT first_event_at FROM ipintel.snapshot_queue WHERE session_id = 'q-a'),
          '2026-10-31 23:00:00+00'::timestamptz, 'a session moved earlier moves in the queue too');
SELECT is((SELECT violations FROM queue_rule), 0::bigint, 'verify agrees');

-- MaxMind answers both IPs, GreyNoise only .60: .60's sessions complete and leave the queue;
-- .61's is filled in part (GreyNoise awaited) and stays.
SELECT ipintel_tests.answer('maxmind', '{
    "203.0.114.60": {"country": "NL", "asn": 64500, "as_org": "AS-A", "asn_db": {"type": "GeoLite2-ASN"}},
    "203.0.114.61": {"country": "DE", "asn": 64501, "as_org": "AS-B", "asn_db": {"type": "GeoLite2-ASN"}}}', now(), 1);
SELECT ipintel_tests.answer('greynoise', '{"203.0.114.60": {"observed": true, "noise": true, "riot": false}}', now());
SELECT is(ipintel.take_snapshots(), 3::bigint, 'take_snapshots fills the three sessions');
SELECT results_eq($$SELECT session_id FROM ipintel.snapshot_queue WHERE session_id LIKE 'q-%' ORDER BY 1$$,
                  $$VALUES ('q-c')$$, 'the completed ones left the queue, the one still waiting stays');
SELECT is((SELECT snapshot_at IS NOT NULL AND snapshot_complete_at IS NULL FROM ipintel.session_summaries
           WHERE session_id = 'q-c'), true, 'q-c has its first fields, not all');
SELECT is(ipintel.take_snapshots(), 0::bigint, 'a second run has nothing to write');

-- A session of a month with no partition yet goes to the default one; making its month moves it
-- (deleted there, unseen by the parent's triggers, inserted again): it stays queued, once.
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('q-d', '2027-03-05 08:00+00', '2027-03-05 08:01+00', '203.0.114.61');
SELECT ipintel.ensure_session_partitions(ARRAY['2027-03-05'::timestamptz]);
SELECT results_eq($$SELECT q.session_id, s.tableoid::regclass::text FROM ipintel.snapshot_queue q
                    JOIN ipintel.session_summaries s USING (session_id, first_event_at) WHERE q.session_id = 'q-d'$$,
                  $$VALUES ('q-d', 'ipintel.session_summaries_2027_03')$$,
                  'a session moved out of the default partition stays queued');

-- A redo makes the completed snapshots of its window incomplete: back in the queue, then
-- completed again by the take_snapshots it runs.
UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
SELECT results_eq(
    $$SELECT sessions_reset, sessions_taken FROM ipintel.redo_snapshots('2026-10-01', '2026-12-01', 'test: redo')$$,
    $$VALUES (3::bigint, 4::bigint)$$,
    'the redo resets the window''s three sessions and takes them, and q-d (its take_snapshots takes every queued one)');
SELECT is((SELECT count(*)::int FROM ipintel.snapshot_queue WHERE session_id LIKE 'q-%'), 0,
          'completed again by the redo, none is queued');

DELETE FROM ipintel.session_summaries WHERE session_id = 'q-d';
SELECT is((SELECT violations FROM queue_rule), 0::bigint, 'a deleted session leaves the queue; verify agrees');

SELECT * FROM finish();
ROLLBACK;
