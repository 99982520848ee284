-- session_attribution: each field is the snapshot's once known, else the IP's current value,
-- field by field; as_name is the attributed ASN's.
BEGIN;
SELECT plan(3);

INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64500, 'NOW-NET'), (64501, 'THEN-NET');
INSERT INTO ipintel.ip_inventory (ip, current_asn, geo_country, ip_type, is_scanner) VALUES
    ('203.0.114.1', 64500, 'DE', 'scanner', true);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_asn,
                                       snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_ip_type,
                                       snapshot_ip_type_source, snapshot_is_scanner, snapshot_is_scanner_source,
                                       snapshot_at, snapshot_document, snapshot_complete_at) VALUES
    ('known', '2026-11-01 00:00+00', '2026-11-01 00:05+00', '203.0.114.1', 64501, 'cymru:history', 'NL', 'maxmind',
     'routed', 'cymru', false, 'greynoise', '2026-11-01 01:00+00', ipintel_tests.document('{}'), '2026-11-01 01:00+00'),
    ('half', '2026-11-02 00:00+00', '2026-11-02 00:05+00', '203.0.114.1', NULL, 'none', 'NL', 'maxmind', NULL, NULL,
     NULL, NULL, '2026-11-02 01:00+00', ipintel_tests.document('{}'), NULL),
    ('none', '2026-11-03 00:00+00', '2026-11-03 00:05+00', '203.0.114.1', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL);

SELECT results_eq(
    $$SELECT session_id, asn, as_name, country, ip_type, is_scanner, from_snapshot FROM ipintel.session_attribution ORDER BY 1$$,
    $$VALUES ('half', NULL::bigint, NULL::text, 'NL', 'scanner', true, false),
             ('known', 64501, 'THEN-NET', 'NL', 'routed', false, true),
             ('none', 64500, 'NOW-NET', 'DE', 'scanner', true, false)$$,
    'known snapshot fields win (a known NULL ASN too), unknown ones fall back to ip_inventory');
SELECT is((SELECT count(*) FROM ipintel.session_attribution), (SELECT count(*) FROM ipintel.session_summaries),
          'one row per session');
SELECT columns_are('ipintel', 'session_attribution',
                   ARRAY['session_id', 'sensor', 'first_event_at', 'last_event_at', 'protocol', 'source_ip', 'asn',
                         'as_name', 'country', 'ip_type', 'is_scanner', 'from_snapshot', 'login_attempts',
                         'login_successes', 'command_count', 'download_count'],
                   'the columns analysts query, unchanged');

SELECT * FROM finish();
ROLLBACK;
