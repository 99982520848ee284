-- campaigns() / campaign_ips(): a HASSH or client version seen from two or more ASNs.
BEGIN;
SELECT plan(4);

INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64500, 'A-NET'), (64501, 'B-NET'), (64502, 'C-NET');
INSERT INTO ipintel.ip_inventory (ip, current_asn, geo_country) VALUES
    ('203.0.114.1', 64500, 'DE'), ('203.0.114.2', 64501, 'BR'), ('203.0.114.3', 64502, 'BR'),
    ('203.0.114.4', 64500, 'DE'), ('203.0.114.5', NULL, 'XX');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, hassh, client_version) VALUES
    ('k1', '2026-11-01 00:00+00', '2026-11-01 00:05+00', '203.0.114.1', 'h-spread', 'SSH-2.0-Go'),
    ('k2', '2026-11-02 00:00+00', '2026-11-02 00:05+00', '203.0.114.2', 'h-spread', 'SSH-2.0-Go'),
    ('k3', '2026-11-03 00:00+00', '2026-11-03 00:05+00', '203.0.114.3', 'h-spread', 'SSH-2.0-libssh'),
    ('k4', '2026-11-03 00:00+00', '2026-11-03 00:05+00', '203.0.114.3', 'h-spread', NULL),
    ('k5', '2026-11-04 00:00+00', '2026-11-04 00:05+00', '203.0.114.4', 'h-one-asn', 'SSH-2.0-libssh'),
    ('k6', '2026-11-04 00:00+00', '2026-11-04 00:05+00', '203.0.114.5', 'h-one-asn', NULL),
    ('k7', '2026-12-04 00:00+00', '2026-12-04 00:05+00', '203.0.114.4', 'h-later', NULL),
    ('k8', '2026-12-04 00:00+00', '2026-12-04 00:05+00', '203.0.114.2', 'h-later', NULL);

SELECT results_eq(
    $$SELECT fingerprint_kind, fingerprint, asns, ips, countries, sessions, top_asns
      FROM ipintel.campaigns('2026-11-01', '2026-12-01')$$,
    $$VALUES ('hassh', 'h-spread', 3::bigint, 3::bigint, 2::bigint, 4::bigint, ARRAY[64502, 64500, 64501]::bigint[]),
             ('client_version', 'SSH-2.0-Go', 2, 2, 2, 2, ARRAY[64500, 64501]::bigint[]),
             ('client_version', 'SSH-2.0-libssh', 2, 2, 2, 2, ARRAY[64500, 64502]::bigint[])$$,
    'fingerprints spread over two or more known ASNs, widest first; an unknown ASN does not count as one');
SELECT is_empty($$SELECT * FROM ipintel.campaigns('2026-11-01', '2026-11-02')$$, 'one ASN in the window: no campaign');
SELECT results_eq(
    $$SELECT ip, asn, as_name, country, sessions FROM ipintel.campaign_ips('hassh', 'h-spread', '2026-11-01', '2026-12-01')$$,
    $$VALUES ('203.0.114.1'::inet, 64500::bigint, 'A-NET', 'DE', 1::bigint), ('203.0.114.2', 64501, 'B-NET', 'BR', 1),
             ('203.0.114.3', 64502, 'C-NET', 'BR', 2)$$,
    'the IPs behind a fingerprint, in order of appearance');
SELECT results_eq(
    $$SELECT fingerprint FROM ipintel.campaigns('2026-12-01', '2027-01-01')$$, $$VALUES ('h-later')$$,
    'the window decides');

SELECT * FROM finish();
ROLLBACK;
