-- report_ip_types(): sessions that started in [p_since, p_until) by ip_type and GreyNoise's
-- verdict (unknown while GreyNoise was never asked), at most p_top rows.
BEGIN;
SELECT plan(3);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.1'), ('203.0.114.2'), ('203.0.114.3'), ('10.0.0.9');
-- What the sources said, merged as a pass merges it.
SELECT ipintel.start_run('greynoise', '{}'::jsonb) AS gn_run \gset
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS mm_run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) VALUES
    (:gn_run, 1, 'greynoise', '203.0.114.1', now(), '{"observed": true, "noise": true, "riot": false}'),
    (:gn_run, 1, 'greynoise', '203.0.114.2', now(), '{"observed": false, "noise": false, "riot": false}'),
    (:mm_run, 2, 'maxmind', '203.0.114.2', now(), '{"found": true, "asn": 64500, "as_org": "AS", "asn_db": {"type": "GeoLite2-ASN"}}');
SELECT FROM ipintel.merge_batch(:gn_run, 1);
SELECT FROM ipintel.merge_batch(:mm_run, 2);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('scanner-at-since', '2026-11-01 00:00+00', '2026-11-01 00:05+00', '203.0.114.1'),
    ('scanner', '2026-11-02 00:00+00', '2026-11-02 00:05+00', '203.0.114.1'),
    ('scanner-at-until', '2026-11-08 00:00+00', '2026-11-08 00:05+00', '203.0.114.1'),
    ('routed', '2026-11-03 00:00+00', '2026-11-03 00:05+00', '203.0.114.2'),
    ('never-asked', '2026-11-04 00:00+00', '2026-11-04 00:05+00', '203.0.114.3'),
    ('bogon', '2026-11-05 00:00+00', '2026-11-05 00:05+00', '10.0.0.9'),
    ('bogon-before', '2026-10-01 00:00+00', '2026-10-01 00:05+00', '10.0.0.9');

SELECT results_eq(
    $$SELECT * FROM ipintel.report_ip_types('2026-11-01 00:00+00', '2026-11-08 00:00+00', NULL)$$,
    $$VALUES ('scanner', 'true', 2::bigint, 1::bigint),
             ('bogon', 'unknown', 1::bigint, 1::bigint),
             ('routed', 'false', 1::bigint, 1::bigint),
             ('unknown', 'unknown', 1::bigint, 1::bigint)$$,
    'p_since is inclusive, p_until exclusive; most sessions first, ties by type; unknown when GreyNoise never answered');
SELECT results_eq(
    $$SELECT ip_type FROM ipintel.report_ip_types('2026-11-01 00:00+00', '2026-11-08 00:00+00', 1)$$,
    $$VALUES ('scanner')$$,
    'p_top keeps the first rows');
SELECT is_empty(
    $$SELECT * FROM ipintel.report_ip_types('2026-12-01 00:00+00', '2027-01-01 00:00+00', 10)$$,
    'a window without sessions is empty');

SELECT * FROM finish();
ROLLBACK;
