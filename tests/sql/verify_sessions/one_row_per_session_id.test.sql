-- verify_sessions(): what the partitioned table cannot declare (session_id alone is its key) is
-- checked: a session_id found in two months is reported with an example; and session_keys, the
-- table ingest finds a session by its id in (revision 0060), holds exactly the sessions' keys.
BEGIN;
SELECT plan(4);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.50');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('twice', now(), now(), '203.0.114.50'), ('once', now(), now(), '203.0.114.50');
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions()$$,
                  $$VALUES (0::bigint, '{}'::text[]), (0::bigint, '{}'::text[])$$,
                  'one row per session_id, each with its key: no violation');

-- Only a writer that bypasses merge_cowrie_events can do this; the key (session_id, first_event_at)
-- lets it. The id's one key now names the second row: the first is found by neither rule's way in.
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('twice', now() - interval '40 days', now() - interval '40 days', '203.0.114.50');
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions()$$,
                  $$VALUES (1::bigint, '{twice}'::text[]), (1::bigint, '{twice}'::text[])$$,
                  'a session_id in two rows is found and named, and so is the row its key misses');
SELECT is((SELECT count(*)::int FROM ipintel.verify_sessions()), 2, 'two rules');

-- A key with no session (written by hand) is named too.
DELETE FROM ipintel.session_summaries WHERE session_id = 'twice';
INSERT INTO ipintel.session_keys (session_id, first_event_at) VALUES ('ghost', now());
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions() WHERE rule LIKE 'session_keys%'$$,
                  $$VALUES (1::bigint, '{ghost}'::text[])$$, 'a key without its session is found and named');

SELECT * FROM finish();
ROLLBACK;
