-- classify_inventory(): ip_inventory's class kept by SQL, a batch at a time in ip order: after a
-- range list is loaded, after it shrinks, and by every merge (apply_answers uses the same
-- ip_classes); only the rows whose class changes are written.
BEGIN;
SELECT plan(9);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('3.5.140.9'), ('185.220.101.34'), ('5.6.7.8'), ('2600:1f14::10'), ('10.0.0.1');
SELECT results_eq($$SELECT last_ip, classified, changed FROM ipintel.classify_inventory(NULL, NULL)$$,
    $$VALUES ('2600:1f14::10'::inet, 5::bigint, 5::bigint)$$, 'nothing listed yet: every row gets its basis (unknown, bogon)');
SELECT results_eq($$SELECT ip_type, ip_class_basis FROM ipintel.ip_inventory WHERE ip = '10.0.0.1'$$,
    $$VALUES ('bogon', '{"rule": "bogon"}'::jsonb)$$, 'a bogon says so');

-- Lists of today (classify_inventory classifies as of today, UTC).
SELECT ipintel_tests.load_ranges('aws', (now() AT TIME ZONE 'UTC')::date - 1,
                                 ARRAY[['3.5.140.0/22', 'EC2', 'ap-northeast-2'], ['2600:1f14::/35', 'EC2', 'us-west-2']]);
SELECT ipintel_tests.load_ranges('tor_exit_addresses', (now() AT TIME ZONE 'UTC')::date, ARRAY[['185.220.101.34/32', '', '']]);

-- Two IPs a batch, in ip order, until last_ip is NULL.
CREATE TEMPORARY TABLE batches AS
WITH RECURSIVE b(n, last_ip, classified, changed) AS (
    SELECT 1, c.last_ip, c.classified, c.changed FROM ipintel.classify_inventory(NULL, 2) c
    UNION ALL
    SELECT b.n + 1, c.last_ip, c.classified, c.changed
    FROM b CROSS JOIN LATERAL ipintel.classify_inventory(b.last_ip, 2) c WHERE b.last_ip IS NOT NULL
)
SELECT * FROM b;
SELECT results_eq($$SELECT last_ip, classified, changed FROM batches ORDER BY n$$,
    $$VALUES ('5.6.7.8'::inet, 2::bigint, 1::bigint), ('185.220.101.34', 2, 1), ('2600:1f14::10', 1, 1), (NULL, 0, 0)$$,
    'batches of two in ip order (IPv4 first); only the rows whose class changed are written');
SELECT results_eq($$SELECT host(ip), ip_type, ip_provider, ip_type_source, ip_class_basis ->> 'list' FROM ipintel.ip_inventory ORDER BY ip$$,
    $$VALUES ('3.5.140.9', 'cloud', 'aws', NULL, 'aws'), ('5.6.7.8', 'unknown', NULL, NULL, NULL),
             ('10.0.0.1', 'bogon', NULL, NULL, NULL), ('185.220.101.34', 'tor', 'tor', NULL, 'tor_exit_addresses'),
             ('2600:1f14::10', 'cloud', 'aws', NULL, 'aws')$$,
    'the inventory says what the lists of today say');
SELECT results_eq($$SELECT changed FROM ipintel.classify_inventory(NULL, NULL)$$, $$VALUES (0::bigint)$$,
                  'classified again: nothing is written');

-- A merge classifies the IPs it answers for with the same function: the Tor exit stays tor
-- although MaxMind calls it an anonymous proxy; the other gets its ASN and is routed.
SELECT ipintel_tests.answer('maxmind', $${
    "185.220.101.34": {"found": true, "country": "DE", "asn": 60729, "is_anonymous_proxy": true, "asn_db": {"type": "GeoLite2-ASN"}},
    "5.6.7.8": {"found": true, "country": "NL", "asn": 64500, "as_org": "EXAMPLE", "asn_db": {"type": "GeoLite2-ASN"}}
}$$::jsonb, now(), 100);
SELECT results_eq($$SELECT host(ip), ip_type, ip_type_source, ip_class_basis FROM ipintel.ip_inventory
                    WHERE ip IN ('185.220.101.34', '5.6.7.8') ORDER BY ip$$,
    $$VALUES ('5.6.7.8', 'routed', 'maxmind', '{"rule": "routed", "asn": 64500}'::jsonb),
             ('185.220.101.34', 'tor', NULL, '{"rule": "range", "list": "tor_exit_addresses", "prefix": "185.220.101.34/32"}'::jsonb
                                            || jsonb_build_object('snapshot', (now() AT TIME ZONE 'UTC')::date))$$,
    'a merge classifies with the lists: tor before anonymizer; routed by the ASN''s source');

-- The Tor list of tomorrow shrinks: once it is the latest, the exit is no longer tor.
SELECT ipintel_tests.load_ranges('tor_exit_addresses', (now() AT TIME ZONE 'UTC')::date + 1, ARRAY[['185.220.101.35/32', '', '']]);
SELECT results_eq($$SELECT changed FROM ipintel.classify_inventory(NULL, NULL)$$, $$VALUES (0::bigint)$$,
                  'a snapshot of tomorrow does not classify today');
UPDATE ipintel.range_snapshots SET taken_on = taken_on - 1 WHERE list = 'tor_exit_addresses';
UPDATE ipintel.listed_ranges SET valid = daterange(lower(valid) - 1, upper(valid) - 1) WHERE list = 'tor_exit_addresses';
SELECT results_eq($$SELECT changed FROM ipintel.classify_inventory(NULL, NULL)$$, $$VALUES (1::bigint)$$,
                  'once today''s list no longer has the exit, its row changes');
SELECT results_eq($$SELECT ip_type, ip_type_source FROM ipintel.ip_inventory WHERE ip = '185.220.101.34'$$,
    $$VALUES ('anonymizer', 'maxmind')$$, 'and it is what the sources say (MaxMind: anonymizer)');

SELECT * FROM finish();
ROLLBACK;
