-- merge_batch(): the one SQL call per fetched batch. It records the answers, calls the merge
-- function the registry names for the run's source (if any), resolves the facts, resolves the
-- failures of the IPs answered, records the staged failures, empties the batch and adds to the
-- run's counters.
BEGIN;
SELECT plan(11);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.1', '2026-11-01', '2026-11-01', 1),
    ('203.0.114.2', '2026-11-01', '2026-11-01', 1),
    ('203.0.114.3', '2026-11-01', '2026-11-01', 1);
SELECT ipintel.start_run('greynoise', '{"service": "test"}') AS run_id \gset
SELECT is(status, 'running', 'start_run records a running pass') FROM ipintel.enrichment_runs WHERE run_id = :run_id;

-- 203.0.114.1 failed in an earlier run; now it is answered.
INSERT INTO ipintel.enrichment_failures (run_id, source, ip, error) VALUES (:run_id, 'greynoise', '203.0.114.1', 'HTTP 503');
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) VALUES
    (:run_id, 900, 'greynoise', '203.0.114.1', now(), '{"noise": true, "riot": false}'),
    (:run_id, 900, 'greynoise', '203.0.114.2', now(), '{"noise": false, "riot": false}');
INSERT INTO ipintel_staging.enrichment_failures (run_id, batch_id, source, ip, error, retryable) VALUES
    (:run_id, 900, 'greynoise', '203.0.114.3', 'HTTP 400 not a routable IPv4', false);

SELECT results_eq($$SELECT * FROM ipintel.merge_batch($$ || :run_id || $$, 900)$$,
                  $$VALUES (2::bigint, 2::bigint, 1::bigint)$$, 'two fetched, two merged, one failure recorded');
SELECT results_eq($$SELECT host(ip), is_scanner FROM ipintel.ip_inventory WHERE enrichment ? 'greynoise' ORDER BY ip$$,
                  $$VALUES ('203.0.114.1', true), ('203.0.114.2', false)$$, 'the answers are merged (GreyNoise has no merge step of its own)');
SELECT isnt(resolved_at, NULL, 'the earlier failure of an IP answered now is resolved')
FROM ipintel.enrichment_failures WHERE ip = '203.0.114.1';
SELECT results_eq($$SELECT host(ip), retryable FROM ipintel.enrichment_failures WHERE resolved_at IS NULL$$,
                  $$VALUES ('203.0.114.3', false)$$, 'the staged failure is recorded');
SELECT is_empty($$SELECT 1 FROM ipintel_staging.enrichment_results WHERE batch_id = 900
                  UNION ALL SELECT 1 FROM ipintel_staging.enrichment_failures WHERE batch_id = 900$$,
                'the batch is gone from staging');
SELECT results_eq($$SELECT fetched, merged, failed FROM ipintel.enrichment_runs WHERE run_id = $$ || :run_id,
                  $$VALUES (2::bigint, 2::bigint, 1::bigint)$$, 'the run''s counters add up');

-- A batch of failures only calls no merge function.
INSERT INTO ipintel_staging.enrichment_failures (run_id, batch_id, source, ip, error, retryable) VALUES
    (:run_id, 901, 'greynoise', '203.0.114.2', 'HTTP 503', true);
SELECT results_eq($$SELECT * FROM ipintel.merge_batch($$ || :run_id || $$, 901)$$,
                  $$VALUES (0::bigint, 0::bigint, 1::bigint)$$, 'failures only: nothing merged, one recorded');

SELECT ipintel.finish_run(:run_id, 'finished_with_failures', NULL);
SELECT results_eq($$SELECT status, finished_at IS NOT NULL, failed FROM ipintel.enrichment_runs WHERE run_id = $$ || :run_id,
                  $$VALUES ('finished_with_failures', true, 2::bigint)$$, 'finish_run ends the run');

-- The registry, not a name built from text, decides which function runs.
UPDATE ipintel.enrichment_policy SET merge_function = 'ipintel.no_such_merge' WHERE source = 'greynoise';
SELECT ipintel.start_run('greynoise', '{}') AS run2 \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) VALUES
    (:run2, 902, 'greynoise', '203.0.114.2', now(), '{"noise": true}');
SELECT throws_ok($$SELECT * FROM ipintel.merge_batch($$ || :run2 || $$, 902)$$, '42883', NULL,
                 'a merge_function that does not exist fails loudly');
SELECT throws_ok($$SELECT * FROM ipintel.merge_batch(-1, 902)$$, 'P0002', NULL, 'an unknown run fails loudly');

SELECT * FROM finish();
ROLLBACK;
