-- record_failures(): one open failure per source and IP, counting attempts until resolved.
BEGIN;
SELECT plan(6);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.20');
INSERT INTO ipintel.enrichment_runs (source) VALUES ('cymru'), ('cymru'), ('cymru');
CREATE TEMPORARY TABLE runs AS SELECT array_agg(run_id ORDER BY run_id) AS id FROM ipintel.enrichment_runs;

INSERT INTO ipintel_staging.enrichment_failures (run_id, batch_id, source, ip, error, retryable)
SELECT id[1], -10, 'cymru', '203.0.114.20', 'connection refused', true FROM runs;
SELECT is(ipintel.record_failures(-10), 1::bigint, 'first failure recorded');

INSERT INTO ipintel_staging.enrichment_failures (run_id, batch_id, source, ip, error, retryable)
SELECT id[2], -11, 'cymru', '203.0.114.20', 'read timeout', true FROM runs;
SELECT is(ipintel.record_failures(-11), 1::bigint, 'a repeated failure is recorded too');
SELECT results_eq($$SELECT count(*)::int, max(attempts)::int, max(error), max(run_id) FROM ipintel.enrichment_failures$$,
                  $$SELECT 1, 2, 'read timeout'::text, id[2] FROM runs$$,
                  'still one open row: attempts 2, latest error and run');
SELECT is((SELECT count(*)::int FROM ipintel_staging.enrichment_failures), 0, 'staging emptied');

UPDATE ipintel.enrichment_failures SET resolved_at = now();
INSERT INTO ipintel_staging.enrichment_failures (run_id, batch_id, source, ip, error, retryable)
SELECT id[3], -12, 'cymru', '203.0.114.20', 'connection reset', true FROM runs;
SELECT lives_ok($$SELECT ipintel.record_failures(-12)$$, 'after a success, a new failure');
SELECT results_eq($$SELECT count(*)::int, count(*) FILTER (WHERE resolved_at IS NULL)::int FROM ipintel.enrichment_failures$$,
                  $$VALUES (2, 1)$$, 'opens a new row; the resolved one stays as history');

SELECT * FROM finish();
ROLLBACK;
