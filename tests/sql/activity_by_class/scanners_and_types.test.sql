-- activity_by_class(): sessions by ip_type and scanner verdict, as of each session.
BEGIN;
SELECT plan(2);

INSERT INTO ipintel.ip_inventory (ip, ip_type, is_scanner) VALUES
    ('203.0.114.1', 'scanner', true), ('203.0.114.2', 'routed', false), ('203.0.114.3', 'unknown', NULL);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, command_count) VALUES
    ('c1', '2026-11-01 00:00+00', '2026-11-01 00:05+00', '203.0.114.1', 1),
    ('c2', '2026-11-01 01:00+00', '2026-11-01 01:05+00', '203.0.114.1', 1),
    ('c3', '2026-11-01 02:00+00', '2026-11-01 02:05+00', '203.0.114.2', 5),
    ('c4', '2026-11-01 03:00+00', '2026-11-01 03:05+00', '203.0.114.3', 0);
-- a session whose snapshot says the IP was not a scanner at the time
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_is_scanner,
                                       snapshot_is_scanner_source, snapshot_ip_type, snapshot_ip_type_source,
                                       snapshot_at, snapshot_document) VALUES
    ('c5', '2026-11-01 04:00+00', '2026-11-01 04:05+00', '203.0.114.1', false, 'greynoise', 'routed', 'cymru',
     '2026-11-01 05:00+00', ipintel_tests.document('{}'));

SELECT results_eq(
    $$SELECT ip_type, scanner, sessions, ips, commands FROM ipintel.activity_by_class('2026-11-01', '2026-11-02')$$,
    $$VALUES ('routed', 'not a scanner', 2::bigint, 2::bigint, 5::bigint), ('scanner', 'scanner', 2, 1, 2),
             ('unknown', 'unknown', 1, 1, 0)$$,
    'scanners against non-scanners and unknown, by class; the snapshot''s verdict counts');
SELECT is_empty($$SELECT * FROM ipintel.activity_by_class('2026-11-02', '2026-11-03')$$, 'an empty window');

SELECT * FROM finish();
ROLLBACK;
