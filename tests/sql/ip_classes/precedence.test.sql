-- ip_classes(): one set-based call classifies IPs as of a day. Of the classes an IP qualifies
-- for, the lowest ip_types.precedence wins (bogon, tor, cloud/cdn, hosting, riot, scanner,
-- anonymizer, residential, unrouted, routed, unknown); between ranges of one level the most
-- specific, then the list's rank. Every class carries its basis (list, snapshot, prefix...).
BEGIN;
SELECT plan(18);

SELECT ipintel_tests.load_ranges('aws', '2026-11-01', ARRAY[
    ['3.0.0.0/9', '', 'us-east-1'], ['3.5.140.0/22', 'EC2', 'ap-northeast-2'], ['3.5.140.0/22', '', 'ap-northeast-2'],
    ['2600:1f14::/35', 'EC2', 'us-west-2'], ['104.16.5.0/24', 'CLOUDFRONT', 'GLOBAL']]);
SELECT ipintel_tests.load_ranges('gcp', '2026-11-01', ARRAY[['3.5.140.0/22', 'Google Cloud', 'us-west2']]);
SELECT ipintel_tests.load_ranges('cloudflare_ipv4', '2026-11-01', ARRAY[['104.16.0.0/13', '', '']]);
SELECT ipintel_tests.load_ranges('tor_bulk_exit_list', '2026-11-01', ARRAY[['3.5.140.7/32', '', ''], ['2a0b:f4c2::1/128', '', '']]);
SELECT ipintel_tests.load_asns('hosting_asns', '2026-11-01', ARRAY[['16276', 'OVHcloud', 'https://www.peeringdb.com/asn/16276']]);
INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (7922, 'COMCAST-7922, US'), (64500, 'ACME-HOSTING-DE, DE'),
                                                        (16276, 'OVH, FR');
-- What the sources say: GreyNoise riot for an OVH address and a scanner on a Comcast line.
INSERT INTO ipintel.ip_inventory (ip) VALUES ('51.68.1.1'), ('73.1.2.3'), ('73.1.2.4');
SELECT ipintel_tests.answer('greynoise', '{"51.68.1.1": {"noise": false, "riot": true}, "73.1.2.4": {"noise": true, "riot": false}}',
                            '2026-11-02');

CREATE TEMPORARY TABLE asked (ip inet, asn bigint, asn_source text);
INSERT INTO asked VALUES
    ('3.5.140.9', NULL, NULL),          -- in AWS /9 and /22 (EC2 and AMAZON), and Google's /22
    ('3.5.140.7', 16509, 'maxmind'),    -- also a Tor exit
    ('3.1.2.3', NULL, NULL),            -- AWS /9 only
    ('104.16.5.5', NULL, NULL),         -- Cloudflare /13 (cdn) and AWS /24 (cloud): same level
    ('104.17.0.1', NULL, NULL),         -- Cloudflare only
    ('2600:1f14::10', NULL, NULL),      -- IPv6 AWS
    ('2a0b:f4c2::1', NULL, NULL),       -- IPv6 Tor exit
    ('51.68.1.1', 16276, 'cymru'),      -- OVH (hosting list) and GreyNoise riot
    ('73.1.2.3', 7922, 'cymru'),        -- Comcast: residential by name
    ('73.1.2.4', 7922, 'cymru'),        -- Comcast and a scanner
    ('198.51.100.7', NULL, NULL),       -- documentation range: bogon
    ('5.6.7.8', 64500, 'maxmind'),      -- an AS named as hosting: not residential, routed
    ('5.6.7.9', NULL, NULL);            -- nothing known

CREATE TEMPORARY VIEW classes AS
SELECT host(c.ip) AS ip, c.ip_type, c.ip_provider, c.ip_type_source, c.ip_class_basis
FROM ipintel.ip_classes((SELECT array_agg(ip) FROM asked), array_fill('2026-11-05'::date, ARRAY[(SELECT count(*)::int FROM asked)]),
                        (SELECT array_agg(asn) FROM asked), (SELECT array_agg(asn_source) FROM asked)) c;

SELECT is((SELECT count(*) FROM classes), (SELECT count(*) FROM asked), 'one row per IP asked');
SELECT results_eq($$SELECT ip_type, ip_provider, ip_class_basis FROM classes WHERE ip = '3.5.140.9'$$,
    $$VALUES ('cloud', 'aws', '{"rule": "range", "list": "aws", "snapshot": "2026-11-01", "prefix": "3.5.140.0/22",
                                "service": "EC2", "region": "ap-northeast-2"}'::jsonb)$$,
    'nested ranges: the /22 wins over the /9; the entry naming a service over AWS''s own; AWS (rank 3) over Google (rank 4) for the same /22');
SELECT results_eq($$SELECT ip_type, ip_provider, ip_class_basis ->> 'list', ip_class_basis ->> 'prefix' FROM classes WHERE ip = '3.5.140.7'$$,
    $$VALUES ('tor', 'tor', 'tor_bulk_exit_list', '3.5.140.7/32')$$, 'a Tor exit on an AWS address is tor (precedence)');
SELECT results_eq($$SELECT ip_type, ip_class_basis ->> 'prefix', ip_class_basis ->> 'region' FROM classes WHERE ip = '3.1.2.3'$$,
    $$VALUES ('cloud', '3.0.0.0/9', 'us-east-1')$$, 'outside the nested range: the enclosing one');
SELECT results_eq($$SELECT ip, ip_type, ip_provider, ip_class_basis ->> 'prefix' FROM classes WHERE ip LIKE '104.1%' ORDER BY ip$$,
    $$VALUES ('104.16.5.5', 'cloud', 'aws', '104.16.5.0/24'), ('104.17.0.1', 'cdn', 'cloudflare', '104.16.0.0/13')$$,
    'overlapping cloud and CDN ranges (one level): the most specific wins');
SELECT results_eq($$SELECT ip, ip_type, ip_provider FROM classes WHERE ip LIKE '2%' ORDER BY ip$$,
    $$VALUES ('2600:1f14::10', 'cloud', 'aws'), ('2a0b:f4c2::1', 'tor', 'tor')$$, 'IPv6 ranges and exits');
SELECT results_eq($$SELECT ip_type, ip_provider, ip_type_source, ip_class_basis FROM classes WHERE ip = '51.68.1.1'$$,
    $$VALUES ('hosting', 'OVHcloud', 'cymru', '{"rule": "hosting_asn", "list": "hosting_asns", "snapshot": "2026-11-01",
              "asn": 16276, "name": "OVHcloud", "source": "https://www.peeringdb.com/asn/16276"}'::jsonb)$$,
    'an IP in two lists (the hosting-ASN list and GreyNoise RIOT): hosting wins, named by the list, its source the ASN''s');
SELECT results_eq($$SELECT ip_type, ip_provider, ip_type_source, ip_class_basis FROM classes WHERE ip = '73.1.2.3'$$,
    $$VALUES ('residential', 'COMCAST-7922, US', 'cymru',
              '{"rule": "residential", "asn": 7922, "as_name": "COMCAST-7922, US"}'::jsonb)$$,
    'residential by the AS name, saying so');
SELECT results_eq($$SELECT ip_type, ip_type_source, ip_class_basis FROM classes WHERE ip = '73.1.2.4'$$,
    $$VALUES ('scanner', 'greynoise', '{"rule": "source", "source": "greynoise"}'::jsonb)$$,
    'a scanner on a residential line is a scanner (precedence)');
SELECT results_eq($$SELECT ip, ip_type, ip_type_source, ip_class_basis ->> 'rule' FROM classes
                    WHERE ip IN ('198.51.100.7', '5.6.7.8', '5.6.7.9') ORDER BY ip$$,
    $$VALUES ('198.51.100.7', 'bogon', NULL, 'bogon'), ('5.6.7.8', 'routed', 'maxmind', 'routed'),
             ('5.6.7.9', 'unknown', NULL, 'unknown')$$,
    'bogon; an AS whose name says hosting is not residential: routed, by the ASN''s source; nothing known: unknown');

-- As of a day: the snapshot of each list on or before it, within the list's max_age.
SELECT ipintel_tests.load_ranges('tor_bulk_exit_list', '2026-11-10', ARRAY[['2a0b:f4c2::1/128', '', '']]);
SELECT results_eq($$SELECT c.day, c.ip_type, c.ip_class_basis ->> 'snapshot'
                    FROM ipintel.ip_classes(ARRAY['3.5.140.7', '3.5.140.7', '3.5.140.7', '3.5.140.7']::inet[],
                                            '{2026-10-31,2026-11-08,2026-11-10,2026-12-02}'::date[],
                                            '{NULL,NULL,NULL,NULL}'::bigint[], '{NULL,NULL,NULL,NULL}'::text[]) c
                    ORDER BY c.day$$,
    $$VALUES ('2026-10-31'::date, 'unknown', NULL), ('2026-11-08', 'tor', '2026-11-01'), ('2026-11-10', 'cloud', '2026-11-01'),
             ('2026-12-02', 'unknown', NULL)$$,
    'before any snapshot: no class from lists; the exit listed on 11-01 is tor (within the Tor lists'' 7 days) until the 11-10 list without it, then the AWS range; after the aws list''s max_age (30 days): nothing');
SELECT results_eq($$SELECT ip_class_basis ->> 'snapshot' FROM ipintel.ip_classes(ARRAY['2a0b:f4c2::1']::inet[], '{2026-11-16}'::date[],
                                                                          '{NULL}'::bigint[], '{NULL}'::text[])$$,
    $$VALUES ('2026-11-10')$$, 'the latest snapshot within max_age classifies');
SELECT results_eq($$SELECT ip_type FROM ipintel.ip_classes(ARRAY['2a0b:f4c2::1']::inet[], '{2026-11-18}'::date[],
                                                           '{NULL}'::bigint[], '{NULL}'::text[])$$,
    $$VALUES ('unknown')$$, 'a Tor list older than its max_age (7 days) says nothing');

-- The heuristic itself.
SELECT is(ipintel.as_name_looks_residential(n), r, n) FROM (VALUES
    ('COMCAST-7922, US', true), ('DTAG Deutsche Telekom AG, DE', true), ('VODAFONE-ES, ES', true),
    ('HETZNER-AS, DE', false), ('DIGITALOCEAN-ASN, US', false)) AS v(n, r);

SELECT * FROM finish();
ROLLBACK;
