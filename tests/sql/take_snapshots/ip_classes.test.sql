-- take_snapshots() with range lists: a session's snapshot_ip_type and snapshot_ip_provider are
-- as of its own day (the lists' snapshots of that day, the snapshot's ASN), whatever the lists
-- say today; their source names the list's snapshot; a known class is never rewritten but by a
-- redo; verify_snapshots accepts the new forms.
BEGIN;
SELECT plan(7);

-- A Tor exit listed on 11-01 and gone from the list of 11-10; the same address in an AWS range.
SELECT ipintel_tests.load_ranges('tor_exit_addresses', '2026-11-01', ARRAY[['3.5.140.7/32', '', '']]);
SELECT ipintel_tests.load_ranges('tor_exit_addresses', '2026-11-10', ARRAY[['185.220.101.1/32', '', '']]);
SELECT ipintel_tests.load_ranges('aws', '2026-11-01', ARRAY[['3.5.140.0/22', 'EC2', 'ap-northeast-2']]);
SELECT ipintel_tests.load_routes('2026-11-01', '{{81.2.69.0/24,64501}}');
SELECT ipintel_tests.load_asns('hosting_asns', '2026-11-01', ARRAY[['64501', 'Example Hosting', 'https://www.peeringdb.com/asn/64501']]);

UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
VALUES ('3.5.140.7', '2026-11-03', '2026-11-12', 2), ('81.2.69.7', '2026-11-03', '2026-11-03', 1);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('while-tor', '2026-11-03 10:00Z', '2026-11-03 10:01Z', '3.5.140.7'),
    ('after-tor', '2026-11-12 10:00Z', '2026-11-12 10:01Z', '3.5.140.7'),
    ('hosted', '2026-11-03 11:00Z', '2026-11-03 11:01Z', '81.2.69.7');
SELECT ipintel_tests.answer('maxmind', $${
    "3.5.140.7": {"found": true, "country": "KR", "asn": 16509, "as_org": "AMAZON-02", "asn_db": {"type": "GeoLite2-ASN"}},
    "81.2.69.7": {"found": true, "country": "GB", "asn": null, "asn_db": {"type": "GeoLite2-ASN"}}
}$$::jsonb, now(), 100);

SELECT is(ipintel.take_snapshots(), 3::bigint, 'three sessions snapshotted');
SELECT results_eq($$SELECT session_id, snapshot_ip_type, snapshot_ip_provider, snapshot_ip_type_source
                    FROM ipintel.session_summaries ORDER BY session_id$$,
    $$VALUES ('after-tor'::text, 'cloud'::text, 'aws'::text, 'list:aws:2026-11-01'::text),
             ('hosted', 'hosting', 'Example Hosting', 'list:hosting_asns:2026-11-01'),
             ('while-tor', 'tor', 'tor', 'list:tor_exit_addresses:2026-11-01')$$,
    'each session classified as of its day: tor while listed, cloud after; hosting by the AS routing history gives it that day');
SELECT results_eq($$SELECT verify.violations FROM ipintel.verify_snapshots() verify WHERE rule LIKE 'snapshot_ip_type_source%'$$,
    $$VALUES (0::bigint)$$, 'verify_snapshots accepts list:<list>:<day>');

-- A known class is never rewritten, provider included; a redo takes it again.
SELECT throws_ok($$UPDATE ipintel.session_summaries SET snapshot_ip_provider = 'other' WHERE session_id = 'while-tor'$$,
                 '23000', NULL, 'the provider of a known class is not rewritten');
DELETE FROM ipintel.listed_ranges WHERE list = 'tor_exit_addresses';
SELECT ipintel.take_snapshots();
SELECT is((SELECT snapshot_ip_type FROM ipintel.session_summaries WHERE session_id = 'while-tor'), 'tor',
          'a complete snapshot keeps its class whatever the lists say later');
SELECT results_eq($$SELECT sessions_reset FROM ipintel.redo_snapshots('2026-11-03', '2026-11-04', 'tor list withdrawn')$$,
    $$VALUES (2::bigint)$$, 'a redo resets the snapshots of its window');
SELECT results_eq($$SELECT snapshot_ip_type, snapshot_ip_provider FROM ipintel.session_summaries WHERE session_id = 'while-tor'$$,
    $$VALUES ('cloud'::text, 'aws'::text)$$, 'and takes the class again from the lists as they are now');

SELECT * FROM finish();
ROLLBACK;
