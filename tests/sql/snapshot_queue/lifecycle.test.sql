-- snapshot_queue holds exactly the keys (source_ip, created_at) of the sessions whose snapshot is
-- incomplete (revisions 0064, 0084), with bounds on their first_event_at and the fields all of
-- them have (known), through every way a session comes, moves, completes, is redone or goes:
-- ingest inserts it (trigger), a later file moves its first_event_at earlier
-- (merge_cowrie_events), take_snapshots completes its key (removed) or fills it in part (kept,
-- knowing the fields filled), ensure_session_partitions moves it out of the default partition,
-- redo_snapshots makes it incomplete again, a delete removes its key once no incomplete session
-- of it is left. After each step verify_sessions' rules agree. (In one transaction every
-- session's created_at is the same now(): a key per IP.)
BEGIN;
SELECT plan(16);

UPDATE ipintel.enrichment_policy SET enabled = source IN ('maxmind', 'greynoise');
CREATE TEMP VIEW queue_rule AS
SELECT sum(v.violations) AS violations FROM ipintel.verify_sessions() v WHERE v.rule LIKE '%snapshot_queue%';

-- Ingest: three sessions of two IPs in November, none answered yet.
SELECT ipintel.ensure_session_partitions(ARRAY['2026-10-15'::timestamptz, '2026-11-15']) >= 0 AS made;
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-1, 1, 'cowrie.session.connect', '2026-11-10 10:00:00+00', 'q-a', '203.0.114.60', 'hp1'),
       (-1, 2, 'cowrie.session.connect', '2026-11-10 10:05:00+00', 'q-b', '203.0.114.60', 'hp1'),
       (-1, 3, 'cowrie.session.connect', '2026-11-10 10:06:00+00', 'q-c', '203.0.114.61', 'hp1');
SELECT ipintel.merge_cowrie_events(-1);
SELECT results_eq(
    $$SELECT q.source_ip, q.created_at = now(), q.first_at, q.last_at, q.known
      FROM ipintel.snapshot_queue q WHERE q.source_ip << '203.0.114.0/24' ORDER BY 1$$,
    $$VALUES ('203.0.114.60'::inet, true, '2026-11-10 10:00:00+00'::timestamptz, '2026-11-10 10:05:00+00'::timestamptz,
              0::smallint),
             ('203.0.114.61', true, '2026-11-10 10:06:00+00', '2026-11-10 10:06:00+00', 0::smallint)$$,
    'ingest queues the key of each IP and ingest time, bounding its sessions'' first_event_at, knowing no field');

-- An older file read late: q-a's first event is in October; its key widens to take it in.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-2, 1, 'cowrie.login.failed', '2026-10-31 23:00:00+00', 'q-a', '203.0.114.60', 'hp1');
SELECT ipintel.merge_cowrie_events(-2);
SELECT is((SELECT first_at FROM ipintel.snapshot_queue WHERE source_ip = '203.0.114.60'),
          '2026-10-31 23:00:00+00'::timestamptz, 'a session moved earlier widens its key');
SELECT is((SELECT violations FROM queue_rule), 0::numeric, 'verify agrees');

-- MaxMind answers both IPs, GreyNoise only .60: .60's sessions complete and its key leaves the
-- queue; .61's is filled in part (GreyNoise awaited) and stays, knowing what was filled.
SELECT ipintel_tests.answer('maxmind', '{
    "203.0.114.60": {"country": "NL", "asn": 64500, "as_org": "AS-A", "asn_db": {"type": "GeoLite2-ASN"}},
    "203.0.114.61": {"country": "DE", "asn": 64501, "as_org": "AS-B", "asn_db": {"type": "GeoLite2-ASN"}}}', now(), 1);
SELECT ipintel_tests.answer('greynoise', '{"203.0.114.60": {"observed": true, "noise": true, "riot": false}}', now());
SELECT is(ipintel.take_snapshots(), 3::bigint, 'take_snapshots fills the three sessions');
SELECT results_eq($$SELECT source_ip FROM ipintel.snapshot_queue WHERE source_ip << '203.0.114.0/24' ORDER BY 1$$,
                  $$VALUES ('203.0.114.61'::inet)$$, 'the completed key left the queue, the one still waiting stays');
SELECT is((SELECT snapshot_at IS NOT NULL AND snapshot_complete_at IS NULL FROM ipintel.session_summaries
           WHERE session_id = 'q-c'), true, 'q-c has its first fields, not all');
SELECT is((SELECT q.known FROM ipintel.snapshot_queue q WHERE q.source_ip = '203.0.114.61'),
          (SELECT ipintel.snapshot_field_bits(s.snapshot_asn_source IS NOT NULL, s.snapshot_country_source IS NOT NULL,
                                              s.snapshot_is_scanner_source IS NOT NULL,
                                              s.snapshot_ip_type_source IS NOT NULL,
                                              s.snapshot_is_known_attacker_source IS NOT NULL)
           FROM ipintel.session_summaries s WHERE s.session_id = 'q-c'),
          'the key knows exactly the fields its session was given');
SELECT cmp_ok((SELECT q.known FROM ipintel.snapshot_queue q WHERE q.source_ip = '203.0.114.61'), '>', 0::smallint,
              'and those are some');
SELECT is(ipintel.take_snapshots(), 0::bigint, 'a second run has nothing to write');

-- A session of a month with no partition yet goes to the default one (same ingest time as q-c:
-- the same key, widened, knowing nothing now); making its month moves it (deleted there, unseen
-- by the parent's triggers, inserted again): its key stays, once.
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('q-d', '2027-03-05 08:00+00', '2027-03-05 08:01+00', '203.0.114.61');
SELECT ipintel.ensure_session_partitions(ARRAY['2027-03-05'::timestamptz]);
SELECT results_eq($$SELECT q.first_at, q.last_at, q.known FROM ipintel.snapshot_queue q
                    WHERE q.source_ip = '203.0.114.61'$$,
                  $$VALUES ('2026-11-10 10:06:00+00'::timestamptz, '2027-03-05 08:00+00'::timestamptz, 0::smallint)$$,
                  'a new session widens its key, which keeps only what both sessions have');
SELECT is((SELECT violations FROM queue_rule), 0::numeric,
          'a session moved out of the default partition stays covered by its key; verify agrees');

-- A redo makes the completed snapshots of its window incomplete: their keys back in the queue,
-- then completed again by the take_snapshots it runs.
UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
SELECT results_eq(
    $$SELECT sessions_reset, sessions_taken FROM ipintel.redo_snapshots('2026-10-01', '2026-12-01', 'test: redo')$$,
    $$VALUES (3::bigint, 4::bigint)$$,
    'the redo resets the window''s three sessions and takes them, and q-d (its take_snapshots takes every queued one)');
SELECT is((SELECT count(*)::int FROM ipintel.snapshot_queue WHERE source_ip << '203.0.114.0/24'), 0,
          'completed again by the redo, no key is queued');

-- A deleted incomplete session takes its key with it when it was the key's last.
UPDATE ipintel.enrichment_policy SET enabled = source IN ('maxmind', 'greynoise');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('q-e', '2026-11-11 08:00+00', '2026-11-11 08:01+00', '203.0.114.61');
SELECT is((SELECT count(*)::int FROM ipintel.snapshot_queue WHERE source_ip = '203.0.114.61'), 1, 'q-e is queued');
DELETE FROM ipintel.session_summaries WHERE session_id = 'q-e';
SELECT is((SELECT count(*)::int FROM ipintel.snapshot_queue WHERE source_ip = '203.0.114.61'), 0,
          'deleted, its key leaves the queue');
DELETE FROM ipintel.session_summaries WHERE session_id = 'q-d';
SELECT is((SELECT violations FROM queue_rule), 0::numeric, 'verify agrees');

SELECT * FROM finish();
ROLLBACK;
