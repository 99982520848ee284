-- verify_sessions(): what the partitioned table cannot declare (session_id alone is its key) is
-- checked: a session_id found in two months is reported with an example.
BEGIN;
SELECT plan(3);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.50');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('twice', now(), now(), '203.0.114.50'), ('once', now(), now(), '203.0.114.50');
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions()$$,
                  $$VALUES (0::bigint, '{}'::text[])$$, 'one row per session_id: no violation');

-- Only a writer that bypasses merge_cowrie_events can do this; the key (session_id, first_event_at) lets it.
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('twice', now() - interval '40 days', now() - interval '40 days', '203.0.114.50');
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_sessions()$$,
                  $$VALUES (1::bigint, '{twice}'::text[])$$, 'a session_id in two rows is found and named');
SELECT is((SELECT count(*)::int FROM ipintel.verify_sessions()), 1, 'one rule');

SELECT * FROM finish();
ROLLBACK;
