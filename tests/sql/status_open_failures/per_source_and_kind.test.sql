-- status_open_failures(): open failures grouped by source and whether they are retried,
-- retryable first; resolved ones are history and not shown.
BEGIN;
SELECT plan(2);

SELECT is_empty($$SELECT * FROM ipintel.status_open_failures()$$, 'no failure: no row');

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.1'), ('203.0.114.2'), ('203.0.114.3'), ('203.0.114.4');
INSERT INTO ipintel.enrichment_runs (source) VALUES ('cymru'), ('greynoise');
CREATE TEMPORARY TABLE runs AS SELECT array_agg(run_id ORDER BY run_id) AS id FROM ipintel.enrichment_runs;
INSERT INTO ipintel.enrichment_failures (run_id, source, ip, error, retryable, retry_after, attempts, recorded_at, resolved_at)
SELECT id[1], 'cymru', ip::inet, error, retryable, retry_after::timestamptz, attempts, recorded_at::timestamptz,
       resolved_at::timestamptz
FROM runs, (VALUES
    ('203.0.114.1', 'read timeout', true, '2026-11-02 10:00+00', 3, '2026-11-01 09:00+00', NULL),
    ('203.0.114.2', 'connection reset', true, '2026-11-02 08:00+00', 1, '2026-11-01 10:00+00', NULL),
    ('203.0.114.3', 'not an IP Cymru knows', false, NULL, 1, '2026-11-01 11:00+00', NULL),
    ('203.0.114.4', 'resolved since', true, NULL, 9, '2026-11-01 12:00+00', '2026-11-01 13:00+00'))
    AS f(ip, error, retryable, retry_after, attempts, recorded_at, resolved_at);
INSERT INTO ipintel.enrichment_failures (run_id, source, ip, error, retryable)
SELECT id[2], 'greynoise', '203.0.114.1', 'HTTP 400', false FROM runs;

SELECT results_eq(
    $$SELECT * FROM ipintel.status_open_failures()$$,
    $$VALUES ('cymru', true, 2::bigint, 3::bigint, '2026-11-02 08:00+00'::timestamptz, 'connection reset'),
             ('cymru', false, 1::bigint, 1::bigint, NULL::timestamptz, 'not an IP Cymru knows'),
             ('greynoise', false, 1::bigint, 1::bigint, NULL::timestamptz, 'HTTP 400')$$,
    'per source, retryable first: IPs, most attempts, earliest retry, latest error; resolved ones left out');

SELECT * FROM finish();
ROLLBACK;
