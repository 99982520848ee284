-- asn_sessions() / asn_ips() / asn_ips_by_day(): an ASN's IPs over time, from ip_asn_history
-- and from the sessions attributed to it.
BEGIN;
SELECT plan(6);

INSERT INTO ipintel.asn_inventory (asn) VALUES (64500), (64501);
INSERT INTO ipintel.ip_inventory (ip, current_asn) VALUES
    ('203.0.114.1', 64501), ('203.0.114.2', 64500), ('203.0.114.3', 64500);
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source) VALUES
    ('203.0.114.1', 64500, tstzrange('2026-10-01 00:00+00', '2026-11-15 00:00+00'), 'cymru'),
    ('203.0.114.1', 64501, tstzrange('2026-11-15 00:00+00', NULL), 'cymru'),
    ('203.0.114.2', 64500, tstzrange('2026-11-01 00:00+00', NULL), 'cymru');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_asn,
                                       snapshot_asn_source, snapshot_at, snapshot_document) VALUES
    ('s1', '2026-11-10 00:00+00', '2026-11-10 00:05+00', '203.0.114.1', 64500, 'cymru:history', '2026-11-10 01:00+00', ipintel_tests.document('{}')),
    ('s2', '2026-11-16 00:00+00', '2026-11-16 00:05+00', '203.0.114.1', 64501, 'cymru:current', '2026-11-16 01:00+00', ipintel_tests.document('{}')),
    ('s3', '2026-11-10 06:00+00', '2026-11-10 06:05+00', '203.0.114.2', NULL, NULL, NULL, NULL),
    ('s4', '2026-11-12 00:00+00', '2026-11-12 00:05+00', '203.0.114.2', NULL, NULL, NULL, NULL),
    ('s5', '2026-11-12 00:00+00', '2026-11-12 00:05+00', '203.0.114.3', NULL, NULL, NULL, NULL);

SELECT set_eq($$SELECT session_id FROM ipintel.asn_sessions(64500)$$, ARRAY['s1', 's3', 's4', 's5'],
              'by snapshot once known (s1, not s2), else by current ASN');
SELECT results_eq(
    $$SELECT ip, in_asn_from, in_asn_until, current_asn, sessions FROM ipintel.asn_ips(64500)$$,
    $$VALUES ('203.0.114.1'::inet, '2026-10-01 00:00+00'::timestamptz, '2026-11-15 00:00+00'::timestamptz, 64501::bigint, 1::bigint),
             ('203.0.114.2', '2026-11-01 00:00+00', NULL, 64500, 2),
             ('203.0.114.3', NULL, NULL, 64500, 1)$$,
    'each IP: when it was in the ASN (until it left), its current ASN, its sessions there; in order of appearance');
SELECT results_eq(
    $$SELECT day, sessions, ips, new_ips FROM ipintel.asn_ips_by_day(64500, '2026-11-01', '2026-12-01')$$,
    $$VALUES ('2026-11-10'::date, 2::bigint, 2::bigint, 2::bigint), ('2026-11-12', 2, 2, 1)$$,
    'per day: sessions, IPs and the IPs new to the ASN that day');
SELECT results_eq(
    $$SELECT day, new_ips FROM ipintel.asn_ips_by_day(64500, '2026-11-11', '2026-12-01')$$,
    $$VALUES ('2026-11-12'::date, 1::bigint)$$,
    'an IP seen before the window is not new in it');

-- No index covers snapshot_asn (0038): asn_sessions finds the ASN's days in attribution_asn_daily,
-- and in the roll-up queue until roll_up_attribution has run. Rolled up, the queue is empty.
SELECT is(ipintel.roll_up_attribution(), 2::bigint, 'the two snapshots'' days rolled up');
SELECT set_eq($$SELECT session_id FROM ipintel.asn_sessions(64500)$$, ARRAY['s1', 's3', 's4', 's5'],
              'rolled up (the queue is empty): the same sessions, s1 found through attribution_asn_daily');

SELECT * FROM finish();
ROLLBACK;
