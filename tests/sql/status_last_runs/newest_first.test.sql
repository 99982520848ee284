-- status_last_runs(): the p_limit most recent enrichment runs, newest first.
BEGIN;
SELECT plan(3);

INSERT INTO ipintel.enrichment_runs (source, status, requested, fetched, merged, failed, message, finished_at) VALUES
    ('maxmind', 'succeeded', 10, 10, 10, 0, NULL, now()),
    ('cymru', 'finished_with_failures', 9, 7, 7, 2, '2 IPs failed', now()),
    ('greynoise', 'stopped', 9, 4, 4, 0, 'daily budget spent', now());
INSERT INTO ipintel.enrichment_runs (source) VALUES ('maxmind');

SELECT results_eq(
    $$SELECT source, status, requested, fetched, merged, failed, message, finished_at IS NULL
      FROM ipintel.status_last_runs(3)$$,
    $$VALUES ('maxmind', 'running', 0::bigint, 0::bigint, 0::bigint, 0::bigint, NULL::text, true),
             ('greynoise', 'stopped', 9::bigint, 4::bigint, 4::bigint, 0::bigint, 'daily budget spent', false),
             ('cymru', 'finished_with_failures', 9::bigint, 7::bigint, 7::bigint, 2::bigint, '2 IPs failed', false)$$,
    'newest first, a running run included, p_limit rows');
SELECT results_eq(
    $$SELECT run_id FROM ipintel.status_last_runs(NULL)$$,
    $$SELECT run_id FROM ipintel.enrichment_runs ORDER BY run_id DESC$$,
    'p_limit NULL: every run');
SELECT is_empty($$SELECT * FROM ipintel.status_last_runs(0)$$, 'p_limit 0: none');

SELECT * FROM finish();
ROLLBACK;
