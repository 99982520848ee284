-- report_top_countries(): sessions that started in [p_since, p_until) per country (the
-- snapshot once known, else geo_country; XX when no source knows it), at most p_top rows.
BEGIN;
SELECT plan(4);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.1'), ('203.0.114.2'), ('203.0.114.3'), ('203.0.114.4');
-- What MaxMind said, merged as a pass merges it.
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS mm_run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) VALUES
    (:mm_run, 1, 'maxmind', '203.0.114.1', now(), '{"found": true, "country": "NL"}'),
    (:mm_run, 1, 'maxmind', '203.0.114.2', now(), '{"found": true, "country": "NL"}'),
    (:mm_run, 1, 'maxmind', '203.0.114.3', now(), '{"found": true, "country": "BR"}'),
    (:mm_run, 1, 'maxmind', '203.0.114.4', now(), '{"found": false, "country": null}');
SELECT FROM ipintel.merge_batch(:mm_run, 1);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, login_attempts, login_successes) VALUES
    ('nl-at-since', '2026-11-01 00:00+00', '2026-11-01 00:05+00', '203.0.114.1', 2, 2),
    ('nl-other-ip', '2026-11-02 00:00+00', '2026-11-02 00:05+00', '203.0.114.2', 1, 0),
    ('nl-at-until', '2026-11-08 00:00+00', '2026-11-08 00:05+00', '203.0.114.1', 1, 1),
    ('br', '2026-11-03 00:00+00', '2026-11-03 00:05+00', '203.0.114.3', 1, 1),
    ('xx', '2026-11-04 00:00+00', '2026-11-04 00:05+00', '203.0.114.4', 0, 0),
    ('xx-before', '2026-10-31 23:00+00', '2026-10-31 23:05+00', '203.0.114.4', 0, 0);

SELECT results_eq(
    $$SELECT * FROM ipintel.report_top_countries('2026-11-01 00:00+00', '2026-11-08 00:00+00', NULL)$$,
    $$VALUES ('NL', 2::bigint, 2::bigint, 2::bigint),
             ('BR', 1::bigint, 1::bigint, 1::bigint),
             ('XX', 1::bigint, 1::bigint, 0::bigint)$$,
    'p_since is inclusive, p_until exclusive; most sessions first, ties by country; XX when unknown');
SELECT results_eq(
    $$SELECT country FROM ipintel.report_top_countries('2026-11-01 00:00+00', '2026-11-08 00:00+00', 2)$$,
    $$VALUES ('NL'), ('BR')$$,
    'p_top keeps the first rows');

INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_country, snapshot_country_source) VALUES
    ('snapshot', '2026-11-20 00:00+00', '2026-11-20 00:05+00', '203.0.114.3', 'PT', 'maxmind');
SELECT results_eq(
    $$SELECT country, sessions FROM ipintel.report_top_countries('2026-11-20 00:00+00', '2026-11-21 00:00+00', 10)$$,
    $$VALUES ('PT', 1::bigint)$$,
    'the snapshot''s country counts, not the IP''s current one');
SELECT is_empty(
    $$SELECT * FROM ipintel.report_top_countries('2026-12-01 00:00+00', '2027-01-01 00:00+00', 10)$$,
    'a window without sessions is empty');

SELECT * FROM finish();
ROLLBACK;
