-- report_top_asns(): sessions that started in [p_since, p_until), grouped by the ASN they are
-- attributed to (the snapshot once known), most sessions first, at most p_top rows.
BEGIN;
SELECT plan(6);

INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64500, 'ALPHA-NET'), (64501, 'BETA-NET'), (64502, NULL);
INSERT INTO ipintel.ip_inventory (ip, current_asn) VALUES
    ('203.0.114.1', 64500), ('203.0.114.2', 64500), ('203.0.114.3', 64501),
    ('203.0.114.4', NULL), ('203.0.114.5', 64502);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, login_attempts, login_successes) VALUES
    ('at-since', '2026-11-01 00:00+00', '2026-11-01 00:05+00', '203.0.114.1', 1, 1),
    ('inside', '2026-11-03 12:00+00', '2026-11-03 12:05+00', '203.0.114.1', 3, 0),
    ('last-second', '2026-11-07 23:59:59+00', '2026-11-08 00:01+00', '203.0.114.2', 2, 2),
    ('at-until', '2026-11-08 00:00+00', '2026-11-08 00:05+00', '203.0.114.2', 5, 5),
    ('before', '2026-10-31 23:59:59+00', '2026-11-01 00:05+00', '203.0.114.2', 5, 5),
    ('beta', '2026-11-02 00:00+00', '2026-11-02 00:05+00', '203.0.114.3', 0, 0),
    ('unknown-1', '2026-11-04 00:00+00', '2026-11-04 00:05+00', '203.0.114.4', 1, 1),
    ('unknown-2', '2026-11-05 00:00+00', '2026-11-05 00:05+00', '203.0.114.4', 0, 0),
    ('no-name', '2026-11-05 00:00+00', '2026-11-05 00:05+00', '203.0.114.5', 0, 0);

SELECT results_eq(
    $$SELECT * FROM ipintel.report_top_asns('2026-11-01 00:00+00', '2026-11-08 00:00+00', NULL)$$,
    $$VALUES ('64500', 'ALPHA-NET', 3::bigint, 2::bigint, 3::bigint),
             ('-', '(unknown)', 2::bigint, 1::bigint, 1::bigint),
             ('64501', 'BETA-NET', 1::bigint, 1::bigint, 0::bigint),
             ('64502', '(unknown)', 1::bigint, 1::bigint, 0::bigint)$$,
    'p_since is inclusive, p_until exclusive; most sessions first, ties by ASN; an unknown ASN is a row of its own');
SELECT results_eq(
    $$SELECT asn FROM ipintel.report_top_asns('2026-11-01 00:00+00', '2026-11-08 00:00+00', 2)$$,
    $$VALUES ('64500'), ('-')$$,
    'p_top keeps the first rows');
SELECT is_empty(
    $$SELECT * FROM ipintel.report_top_asns('2026-12-01 00:00+00', '2027-01-01 00:00+00', 10)$$,
    'a window without sessions is empty');
SELECT results_eq(
    $$SELECT sessions, logins FROM ipintel.report_top_asns('2026-10-01 00:00+00', '2026-12-01 00:00+00', 1)$$,
    $$VALUES (5::bigint, 13::bigint)$$,
    'a wider window takes the sessions at both edges');

-- A session attributed by its snapshot: counted under the ASN of its time, not today's.
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_asn, snapshot_asn_source) VALUES
    ('snapshot', '2026-11-06 00:00+00', '2026-11-06 00:05+00', '203.0.114.1', 64501, 'cymru');
SELECT results_eq(
    $$SELECT asn, sessions, ips FROM ipintel.report_top_asns('2026-11-06 00:00+00', '2026-11-07 00:00+00', 10)$$,
    $$VALUES ('64501', 1::bigint, 1::bigint)$$,
    'the snapshot''s ASN counts, not the IP''s current one');

SELECT function_returns('ipintel', 'report_top_asns', ARRAY['timestamp with time zone', 'timestamp with time zone', 'bigint'],
                        'setof record', 'a set-returning function of (since, until, top)');

SELECT * FROM finish();
ROLLBACK;
