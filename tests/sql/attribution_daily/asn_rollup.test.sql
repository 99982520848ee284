-- attribution_asn_daily: roll_up_attribution writes one row per UTC day and snapshot ASN, the
-- groups of attribution_daily merged (sums added, sketches united); top_asns ranks from it,
-- the unknown ASN (NULL) included; verify_attribution's rule 3 finds a row that differs.
BEGIN;
SELECT plan(7);

UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'dshield';
SELECT ipintel_tests.skipped_pass(s) FROM unnest(ARRAY['ipinfo', 'dbip']) s;
SELECT ipintel.roll_up_attribution();

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.7'), ('203.0.114.8'), ('203.0.114.10');
SELECT ipintel_tests.answer('maxmind',
    '{"203.0.114.7": {"country": "NL", "asn": 64500, "as_org": "A", "asn_db": {"type": "GeoLite2-ASN"}},
      "203.0.114.8": {"country": "DE", "asn": 64500, "as_org": "A", "asn_db": {"type": "GeoLite2-ASN"}},
      "203.0.114.10": {"country": "FR"}}',
    '2026-10-01', 1);
-- AS64500 on 2026-11-01: two sensors, two countries, two IPs (four groups of attribution_daily).
INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, source_ip,
                                       login_attempts, login_successes, command_count, download_count)
VALUES ('a1', 's1', '2026-11-01 10:00+00', '2026-11-01 10:01+00', '203.0.114.7', 3, 1, 4, 1),
       ('a2', 's2', '2026-11-01 11:00+00', '2026-11-01 11:01+00', '203.0.114.7', 2, 0, 1, 0),
       ('a3', 's1', '2026-11-01 12:00+00', '2026-11-01 12:01+00', '203.0.114.8', 1, 1, 2, 0),
       ('a4', 's2', '2026-11-01 13:00+00', '2026-11-01 13:01+00', '203.0.114.8', 1, 0, 0, 2),
       ('a5', 's1', '2026-11-02 09:00+00', '2026-11-02 09:01+00', '203.0.114.7', 4, 0, 0, 0),
       ('n1', 's1', '2026-11-02 10:00+00', '2026-11-02 10:01+00', '203.0.114.10', 1, 0, 0, 0),
       ('n2', 's2', '2026-11-02 11:00+00', '2026-11-02 11:01+00', '203.0.114.10', 1, 0, 0, 0);
SELECT ipintel.take_snapshots();
SELECT ipintel.roll_up_attribution();

SELECT is((SELECT count(*) FROM ipintel.attribution_daily WHERE day = '2026-11-01' AND asn = 64500), 4::bigint,
          'attribution_daily: four groups of AS64500 on 2026-11-01 (sensor x country)');
SELECT results_eq(
    $$SELECT day, asn, sessions, login_attempts, login_successes, commands, downloads,
             public.hll_cardinality(distinct_ips)::bigint
      FROM ipintel.attribution_asn_daily WHERE day IN ('2026-11-01', '2026-11-02') ORDER BY day, asn NULLS LAST$$,
    $$VALUES ('2026-11-01'::date, 64500::bigint, 4::bigint, 7::bigint, 2::bigint, 7::bigint, 3::bigint, 2::bigint),
             ('2026-11-02'::date, 64500::bigint, 1::bigint, 4::bigint, 0::bigint, 0::bigint, 0::bigint, 1::bigint),
             ('2026-11-02'::date, NULL::bigint, 2::bigint, 2::bigint, 0::bigint, 0::bigint, 0::bigint, 1::bigint)$$,
    'attribution_asn_daily: one row per day and ASN (NULL: unknown), sums added, distinct IPs united');
SELECT results_eq(
    $$SELECT a.day, a.asn, a.sessions, a.distinct_ips::text FROM ipintel.attribution_asn_daily a
      WHERE a.day IN ('2026-11-01', '2026-11-02') ORDER BY 1, 2$$,
    $$SELECT m.day, m.asn, m.sessions, m.distinct_ips::text
      FROM ipintel.attribution_asn_of_days('{2026-11-01,2026-11-02}') m ORDER BY 1, 2$$,
    'it equals attribution_daily merged per day and ASN, sketches included');
SELECT results_eq(
    $$SELECT asn, sessions, ips, logins, commands, downloads FROM ipintel.top_asns('2026-11-01', '2026-11-03', 10)$$,
    $$VALUES (64500::bigint, 5::bigint, 2::bigint, 2::bigint, 7::bigint, 3::bigint),
             (NULL::bigint, 2::bigint, 1::bigint, 0::bigint, 0::bigint, 0::bigint)$$,
    'top_asns: ranked by sessions, the unknown ASN last among equals and with its own sums and IPs');
SELECT results_eq(
    $$SELECT asn, sessions FROM ipintel.top_asns('2026-11-02', '2026-11-03', 1)$$,
    $$VALUES (NULL::bigint, 2::bigint)$$, 'top_asns: whole days, at most p_top rows');
SELECT results_eq($$SELECT violations FROM ipintel.verify_attribution() ORDER BY rule$$,
                  $$VALUES (0::bigint), (0::bigint), (0::bigint)$$, 'verify_attribution: three rules, nothing found');

UPDATE ipintel.attribution_asn_daily SET sessions = 9 WHERE day = '2026-11-01' AND asn = 64500;
SELECT results_eq(
    $$SELECT violations, examples FROM ipintel.verify_attribution() WHERE rule LIKE 'attribution_asn_daily%'$$,
    $$VALUES (1::bigint, ARRAY['2026-11-01 AS64500'])$$, 'a row of attribution_asn_daily that differs is found');

SELECT * FROM finish();
ROLLBACK;
