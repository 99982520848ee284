-- activity_by_asn() / activity_by_country(): per ASN and per country, the sessions of a half-open
-- window attributed as of each session (the snapshot once known), with every measure.
BEGIN;
SELECT plan(5);

INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64500, 'ALPHA-NET'), (64501, 'BETA-NET');
INSERT INTO ipintel.ip_inventory (ip, current_asn, geo_country) VALUES
    ('203.0.114.1', 64500, 'DE'), ('203.0.114.2', 64500, 'DE'), ('203.0.114.3', NULL, 'XX');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, login_attempts,
                                       login_successes, command_count, download_count) VALUES
    ('a1', '2026-11-01 00:00+00', '2026-11-01 00:05+00', '203.0.114.1', 2, 1, 4, 1),
    ('a2', '2026-11-02 00:00+00', '2026-11-02 00:05+00', '203.0.114.2', 1, 1, 2, 0),
    ('a3', '2026-11-02 06:00+00', '2026-11-02 06:05+00', '203.0.114.2', 0, 0, 0, 0),
    ('u1', '2026-11-03 00:00+00', '2026-11-03 00:05+00', '203.0.114.3', 1, 0, 0, 0),
    ('late', '2026-11-08 00:00+00', '2026-11-08 00:05+00', '203.0.114.1', 9, 9, 9, 9);
-- attributed by its snapshot to the ASN and country of its time, not the IP's current ones
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_asn,
                                       snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_at,
                                       snapshot_document, command_count) VALUES
    ('snap', '2026-11-04 00:00+00', '2026-11-04 00:05+00', '203.0.114.1', 64501, 'cymru:history', 'NL', 'maxmind',
     '2026-11-04 01:00+00', ipintel_tests.document('{}'), 3);

SELECT results_eq(
    $$SELECT asn, as_name, sessions, ips, logins, commands, downloads, first_session, last_session
      FROM ipintel.activity_by_asn('2026-11-01 00:00+00', '2026-11-08 00:00+00')$$,
    $$VALUES (64500::bigint, 'ALPHA-NET', 3::bigint, 2::bigint, 2::bigint, 6::bigint, 1::bigint,
              '2026-11-01 00:00+00'::timestamptz, '2026-11-02 06:00+00'::timestamptz),
             (64501, 'BETA-NET', 1, 1, 0, 3, 0, '2026-11-04 00:00+00', '2026-11-04 00:00+00'),
             (NULL, NULL, 1, 1, 0, 0, 0, '2026-11-03 00:00+00', '2026-11-03 00:00+00')$$,
    'per ASN: sessions, distinct IPs, successful logins, commands, downloads; the snapshot''s ASN; unknown last on ties');
SELECT is_empty($$SELECT * FROM ipintel.activity_by_asn('2026-12-01', '2027-01-01')$$, 'an empty window');
SELECT results_eq(
    $$SELECT country, sessions, ips, asns, commands FROM ipintel.activity_by_country('2026-11-01 00:00+00', '2026-11-08 00:00+00')$$,
    $$VALUES ('DE', 3::bigint, 2::bigint, 1::bigint, 6::bigint), ('NL', 1, 1, 1, 3), ('XX', 1, 1, 0, 0)$$,
    'per country, the snapshot''s country; asns counts the known ones');
SELECT results_eq(
    $$SELECT sessions FROM ipintel.activity_by_asn('2026-11-08 00:00+00', '2026-11-09 00:00+00')$$,
    $$VALUES (1::bigint)$$, 'p_since is inclusive');
SELECT is(
    (SELECT count(*) FROM ipintel.activity_by_asn('2026-11-01 00:00+00', '2026-11-08 00:00+00')),
    (SELECT count(DISTINCT asn) + count(*) FILTER (WHERE asn IS NULL) FROM ipintel.session_attribution
     WHERE first_event_at >= '2026-11-01 00:00+00' AND first_event_at < '2026-11-08 00:00+00'),
    'one row per attributed ASN (p_until exclusive)');

SELECT * FROM finish();
ROLLBACK;
