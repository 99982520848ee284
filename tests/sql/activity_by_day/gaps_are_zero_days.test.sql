-- activity_by_day(): one row per UTC day from the first to the last day with sessions in the
-- window, quiet days as zeros.
BEGIN;
SELECT plan(3);

INSERT INTO ipintel.ip_inventory (ip, current_asn, geo_country) VALUES ('203.0.114.1', NULL, 'DE'), ('203.0.114.2', NULL, 'FR');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, login_successes, login_attempts) VALUES
    ('d1', '2026-11-01 23:59:59+00', '2026-11-02 00:05+00', '203.0.114.1', 1, 1),
    ('d2', '2026-11-01 10:00+00', '2026-11-01 10:05+00', '203.0.114.2', 0, 0),
    ('d3', '2026-11-04 00:00+00', '2026-11-04 00:05+00', '203.0.114.1', 0, 0);

SELECT results_eq(
    $$SELECT day, sessions, ips, countries, logins FROM ipintel.activity_by_day('2026-10-01', '2026-12-01')$$,
    $$VALUES ('2026-11-01'::date, 2::bigint, 2::bigint, 2::bigint, 1::bigint), ('2026-11-02', 0, 0, 0, 0),
             ('2026-11-03', 0, 0, 0, 0), ('2026-11-04', 1, 1, 1, 0)$$,
    'days by UTC start time; the quiet days between are zeros; none before the first or after the last');
SELECT results_eq(
    $$SELECT day FROM ipintel.activity_by_day('2026-11-02', '2026-12-01')$$,
    $$VALUES ('2026-11-04'::date)$$, 'the window cuts the days');
SELECT is_empty($$SELECT * FROM ipintel.activity_by_day('2027-01-01', '2027-02-01')$$, 'no session, no day');

SELECT * FROM finish();
ROLLBACK;
