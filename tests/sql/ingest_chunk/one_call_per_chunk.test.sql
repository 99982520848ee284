-- ingest_chunk(): the one SQL call per chunk of a Cowrie log. It merges the staged events,
-- records the staged rejects, creates or moves the file's row and adds to the run's counters.
BEGIN;
SELECT plan(9);

INSERT INTO ipintel.ingest_runs DEFAULT VALUES RETURNING run_id AS run_id \gset
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, protocol) VALUES
    (800, 1, 'cowrie.session.connect', '2026-11-01 10:00', 's1', '203.0.114.50', 'ssh'),
    (800, 2, 'cowrie.login.failed', '2026-11-01 10:00:01', 's1', '203.0.114.50', NULL),
    (800, 4, 'cowrie.session.closed', '2026-11-01 10:00:09', 's1', '203.0.114.50', NULL);
INSERT INTO ipintel_staging.cowrie_rejects (batch_id, line_no, reason, detail, excerpt) VALUES
    (800, 3, 'malformed_json', 'Expecting value', '{"eventid": ');

SELECT results_eq(
    $$SELECT events, sessions_new, ips_new, rejects, event_counts -> 'cowrie.login.failed'
      FROM ipintel.ingest_chunk($$ || :run_id || $$, 800, NULL, 'fp-1', 4096, '/logs/cowrie.json', 400, 4, false, 1, 0)$$,
    $$VALUES (3::bigint, 1::bigint, 1::bigint, 1::bigint, '1'::jsonb)$$,
    'three events merged into one new session from one new IP, one line rejected');
SELECT results_eq($$SELECT path, bytes_ingested, lines_ingested, finished FROM ipintel.ingest_files$$,
                  $$VALUES ('/logs/cowrie.json', 400::bigint, 4::bigint, false)$$, 'a new file row at its offset');
SELECT results_eq($$SELECT line_no, reason, path FROM ipintel.ingest_rejects$$,
                  $$VALUES (3::bigint, 'malformed_json', '/logs/cowrie.json')$$, 'the reject names file and line');
SELECT results_eq($$SELECT files_read, lines_read, events_loaded, sessions_new, rejects FROM ipintel.ingest_runs$$,
                  $$VALUES (1::bigint, 4::bigint, 3::bigint, 1::bigint, 1::bigint)$$, 'the run''s counters');
SELECT is_empty($$SELECT 1 FROM ipintel_staging.cowrie_events WHERE batch_id = 800
                  UNION ALL SELECT 1 FROM ipintel_staging.cowrie_rejects WHERE batch_id = 800$$, 'staging is empty');

-- The next chunk of the same (gzip) file: its offset moves; a truncated-gzip reject replaces the last one.
SELECT file_id AS file_id FROM ipintel.ingest_files \gset
INSERT INTO ipintel.ingest_rejects (run_id, file_id, path, line_no, reason, detail, excerpt)
VALUES (:run_id, :file_id, '/logs/cowrie.json', 9, 'truncated_gzip', 'ended early', '');
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip) VALUES
    (801, 5, 'cowrie.command.input', '2026-11-01 10:00:05', 's1', '203.0.114.50');
SELECT results_eq(
    $$SELECT file_id, events, sessions_new, sessions_updated, rejects
      FROM ipintel.ingest_chunk($$ || :run_id || $$, 801, $$ || :file_id || $$, 'fp-1', 4096, '/logs/cowrie.json.1', 520, 5, true, 1, 0)$$,
    $$VALUES ($$ || :file_id || $$::bigint, 1::bigint, 0::bigint, 1::bigint, 0::bigint)$$,
    'the session continues; same file');
SELECT results_eq($$SELECT path, bytes_ingested, lines_ingested, finished FROM ipintel.ingest_files$$,
                  $$VALUES ('/logs/cowrie.json.1', 520::bigint, 5::bigint, true)$$, 'offset, lines and name move on');
SELECT is_empty($$SELECT 1 FROM ipintel.ingest_rejects WHERE reason = 'truncated_gzip'$$,
                'a truncated-gzip reject is gone once the file reads on');
SELECT results_eq($$SELECT command_count, event_count FROM ipintel.session_summaries$$,
                  $$VALUES (1::bigint, 4::bigint)$$, 'counts add up across chunks');

SELECT * FROM finish();
ROLLBACK;
