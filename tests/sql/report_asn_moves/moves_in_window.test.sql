-- report_asn_moves(): origin ASN changes with moved_at in [p_since, p_until), newest first,
-- at most p_top rows; 'unrouted' where the IP had no origin AS.
BEGIN;
SELECT plan(4);

INSERT INTO ipintel.asn_inventory (asn) VALUES (64500), (64501);
INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.1'), ('203.0.114.2'), ('203.0.114.3'), ('2001:db8::1');
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source) VALUES
    -- moves exactly at p_since, then again before p_until
    ('203.0.114.1', 64500, tstzrange('2026-10-01 00:00+00', '2026-11-01 00:00+00'), 'cymru'),
    ('203.0.114.1', 64501, tstzrange('2026-11-01 00:00+00', '2026-11-05 00:00+00'), 'cymru'),
    ('203.0.114.1', NULL, tstzrange('2026-11-05 00:00+00', NULL), 'cymru'),
    -- moves before the window
    ('203.0.114.2', 64500, tstzrange('2026-09-01 00:00+00', '2026-10-15 00:00+00'), 'maxmind'),
    ('203.0.114.2', 64501, tstzrange('2026-10-15 00:00+00', NULL), 'maxmind'),
    -- moves exactly at p_until
    ('203.0.114.3', 64500, tstzrange('2026-10-01 00:00+00', '2026-11-08 00:00+00'), 'cymru'),
    ('203.0.114.3', 64501, tstzrange('2026-11-08 00:00+00', NULL), 'cymru'),
    -- becomes routed inside the window
    ('2001:db8::1', NULL, tstzrange('2026-10-01 00:00+00', '2026-11-03 06:30+00'), 'cymru'),
    ('2001:db8::1', 64500, tstzrange('2026-11-03 06:30+00', NULL), 'cymru');

SELECT results_eq(
    $$SELECT * FROM ipintel.report_asn_moves('2026-11-01 00:00+00', '2026-11-08 00:00+00', NULL)$$,
    $$VALUES ('203.0.114.1', '64501', 'unrouted', '2026-11-05 00:00+00'::timestamptz, 'cymru'),
             ('2001:db8::1', 'unrouted', '64500', '2026-11-03 06:30+00'::timestamptz, 'cymru'),
             ('203.0.114.1', '64500', '64501', '2026-11-01 00:00+00'::timestamptz, 'cymru')$$,
    'moves in the window only (p_since inclusive, p_until exclusive), newest first, unrouted named');
SELECT results_eq(
    $$SELECT ip, moved_at FROM ipintel.report_asn_moves('2026-11-01 00:00+00', '2026-11-08 00:00+00', 1)$$,
    $$VALUES ('203.0.114.1', '2026-11-05 00:00+00'::timestamptz)$$,
    'p_top keeps the newest');
SELECT results_eq(
    $$SELECT ip, from_asn, to_asn FROM ipintel.report_asn_moves('2026-11-08 00:00+00', '2026-11-09 00:00+00', 10)$$,
    $$VALUES ('203.0.114.3', '64500', '64501')$$,
    'a move at p_until belongs to the next window');
SELECT is_empty(
    $$SELECT * FROM ipintel.report_asn_moves('2026-12-01 00:00+00', '2027-01-01 00:00+00', 10)$$,
    'a window without moves is empty');

SELECT * FROM finish();
ROLLBACK;
