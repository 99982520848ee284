-- asn_trends() / country_trends(): the week before p_until against the four weeks before it.
BEGIN;
SELECT plan(3);

INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64500, 'OLD-NET'), (64501, 'NEW-NET'), (64502, 'GONE-NET');
INSERT INTO ipintel.ip_inventory (ip, current_asn, geo_country) VALUES
    ('203.0.114.1', 64500, 'DE'), ('203.0.114.2', 64501, 'BR'), ('203.0.114.3', 64502, 'FR');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('old-before-1', '2026-11-05 00:00+00', '2026-11-05 00:05+00', '203.0.114.1'),
    ('old-before-2', '2026-11-20 00:00+00', '2026-11-20 00:05+00', '203.0.114.1'),
    ('old-now', '2026-12-05 00:00+00', '2026-12-05 00:05+00', '203.0.114.1'),
    ('new-now-1', '2026-12-01 00:00+00', '2026-12-01 00:05+00', '203.0.114.2'),
    ('new-now-2', '2026-12-07 23:00+00', '2026-12-07 23:05+00', '203.0.114.2'),
    ('gone', '2026-11-10 00:00+00', '2026-11-10 00:05+00', '203.0.114.3'),
    ('too-old', '2026-10-01 00:00+00', '2026-10-01 00:05+00', '203.0.114.2');

SELECT results_eq(
    $$SELECT asn, as_name, this_week, four_weeks_before, weekly_average_before, is_new
      FROM ipintel.asn_trends('2026-12-08 00:00+00')$$,
    $$VALUES (64501::bigint, 'NEW-NET', 2::bigint, 0::bigint, 0.00::numeric, true),
             (64500, 'OLD-NET', 1, 2, 0.50, false)$$,
    'new this week first (nothing in the 4 weeks before; older sessions do not count); quiet ASNs are left out');
SELECT results_eq(
    $$SELECT country, this_week, four_weeks_before, is_new FROM ipintel.country_trends('2026-12-08 00:00+00')$$,
    $$VALUES ('BR', 2::bigint, 0::bigint, true), ('DE', 1, 2, false)$$,
    'the same per country');
SELECT is_empty($$SELECT * FROM ipintel.asn_trends('2026-11-01 00:00+00')$$, 'a quiet week: nothing');

SELECT * FROM finish();
ROLLBACK;
