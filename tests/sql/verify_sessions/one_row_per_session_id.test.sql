-- verify_sessions(): what the partitioned table cannot declare (session_id alone is its key) is
-- checked: a session_id found in two months is reported with an example; and session_keys, the
-- table ingest finds a session by its id in (revision 0060), holds exactly the sessions' keys;
-- and snapshot_queue, where take_snapshots finds the incomplete sessions (revisions 0064, 0084),
-- holds exactly their keys, each knowing no field one of its sessions lacks.
BEGIN;
SELECT plan(9);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.50');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('twice', now(), now(), '203.0.114.50'), ('once', now(), now(), '203.0.114.50');
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions()$$,
                  $$VALUES (0::bigint, '{}'::text[]), (0::bigint, '{}'::text[]), (0::bigint, '{}'::text[]),
                           (0::bigint, '{}'::text[]), (0::bigint, '{}'::text[])$$,
                  'one row per session_id, each with its key: no violation');

-- Only a writer that bypasses merge_cowrie_events can do this; the key (session_id, first_event_at)
-- lets it. The id's one key now names the second row: the first is not found by ingest's way in.
-- (The snapshot queue's key, an IP and ingest time, widens to cover both.)
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('twice', now() - interval '40 days', now() - interval '40 days', '203.0.114.50');
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions()$$,
                  $$VALUES (1::bigint, '{twice}'::text[]), (1::bigint, '{twice}'::text[]), (0::bigint, '{}'::text[]),
                           (0::bigint, '{}'::text[]), (0::bigint, '{}'::text[])$$,
                  'a session_id in two rows is found and named, and so is the row its key misses');
SELECT is((SELECT count(*)::int FROM ipintel.verify_sessions()), 5, 'five rules');

-- A key with no session (written by hand) is named too.
DELETE FROM ipintel.session_summaries WHERE session_id = 'twice';
INSERT INTO ipintel.session_keys (session_id, first_event_at) VALUES ('ghost', now());
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions() WHERE rule LIKE 'session_keys%'$$,
                  $$VALUES (1::bigint, '{ghost}'::text[])$$, 'a key without its session is found and named');


-- The queue against the incomplete sessions, both ways, and what its keys know.
DELETE FROM ipintel.session_keys WHERE session_id = 'ghost';
SELECT results_eq($$SELECT sum(violations) FROM ipintel.verify_sessions() WHERE rule LIKE '%snapshot_queue%'$$,
                  $$VALUES (0::numeric)$$, 'the inserted incomplete session''s key is queued by the trigger');
DELETE FROM ipintel.snapshot_queue WHERE source_ip = '203.0.114.50';
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions() WHERE rule LIKE 'snapshot_queue holds the key%'$$,
                  $$VALUES (1::bigint, '{once}'::text[])$$, 'an incomplete session without its key in the queue is found and named');
INSERT INTO ipintel.snapshot_queue (source_ip, created_at, first_at, last_at)
SELECT source_ip, created_at, first_event_at, first_event_at FROM ipintel.session_summaries WHERE session_id = 'once';
INSERT INTO ipintel.snapshot_queue (source_ip, created_at, first_at, last_at) VALUES ('203.0.114.51', now(), now(), now());
SELECT results_eq($$SELECT violations, examples[1] LIKE '203.0.114.51@%' FROM ipintel.verify_sessions()
                    WHERE rule LIKE 'snapshot_queue holds no key%'$$,
                  $$VALUES (1::bigint, true)$$, 'a queued key with no incomplete session is found and named');
DELETE FROM ipintel.snapshot_queue WHERE source_ip = '203.0.114.51';
UPDATE ipintel.snapshot_queue SET known = 2 WHERE source_ip = '203.0.114.50';
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions() WHERE rule LIKE 'every incomplete session has%'$$,
                  $$VALUES (1::bigint, '{once}'::text[])$$,
                  'a key that says its sessions have a field one of them lacks is found, and the session named');
DELETE FROM ipintel.session_summaries WHERE session_id = 'once';
SELECT is((SELECT count(*)::int FROM ipintel.snapshot_queue WHERE source_ip = '203.0.114.50'), 0,
          'a deleted session takes its key, its last, out of the queue (trigger)');

SELECT * FROM finish();
ROLLBACK;
