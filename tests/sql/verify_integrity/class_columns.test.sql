-- ip_inventory's class columns (ip_type, ip_provider, ip_class_basis) have no per-row check on the
-- merge path (revision 0030, as the *_source columns since 0026): verify_integrity finds what a
-- foreign key or a check would have refused, and nothing in what ip_classes writes.
BEGIN;
SELECT plan(7);

SELECT ipintel_tests.load_ranges('aws', '2026-11-01', ARRAY[['3.0.0.0/9', 'EC2', 'us-east-1']]);
SELECT ipintel_tests.load_asns('hosting_asns', '2026-11-01', ARRAY[['16276', 'OVHcloud', 'https://www.peeringdb.com/asn/16276']]);
INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (16276, 'OVH, FR'), (7922, 'COMCAST-7922, US');
INSERT INTO ipintel.ip_inventory (ip, current_asn, current_asn_source)
VALUES ('3.1.2.3', NULL, NULL), ('51.68.1.1', 16276, 'cymru'), ('73.1.2.3', 7922, 'cymru'), ('5.6.7.9', NULL, NULL);
-- As a merge or a range load writes them: classified by ip_classes (as of a day the lists cover).
UPDATE ipintel.ip_inventory i
SET ip_type = c.ip_type, ip_type_source = c.ip_type_source, ip_provider = c.ip_provider, ip_class_basis = c.ip_class_basis
FROM ipintel.ip_classes(ARRAY(SELECT ip FROM ipintel.ip_inventory ORDER BY ip),
                        array_fill('2026-11-05'::date, ARRAY[4]),
                        ARRAY(SELECT current_asn FROM ipintel.ip_inventory ORDER BY ip),
                        ARRAY(SELECT current_asn_source FROM ipintel.ip_inventory ORDER BY ip)) c
WHERE i.ip = c.ip;
SELECT results_eq($$SELECT ip_type, ip_provider FROM ipintel.ip_inventory ORDER BY ip$$,
                  $$VALUES ('cloud', 'aws'), ('unknown', NULL), ('hosting', 'OVHcloud'), ('residential', 'COMCAST-7922, US')$$,
                  'the four IPs are classified as ip_classes decides (cloud, unknown, hosting, residential)');
SELECT is((SELECT sum(violations)::int FROM ipintel.verify_integrity()), 0, 'what ip_classes writes breaks no rule');

-- A class ip_types does not have: no key refuses it; verify names it.
UPDATE ipintel.ip_inventory SET ip_type = 'spaceship' WHERE ip = '5.6.7.9';
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_integrity()
                    WHERE rule = 'every ip_inventory ip_type is a class of ip_types'$$,
                  $$VALUES (1::bigint, ARRAY['5.6.7.9'])$$, 'an ip_type missing from ip_types is found');
UPDATE ipintel.ip_inventory SET ip_type = 'unknown' WHERE ip = '5.6.7.9';

-- A basis naming a list snapshot never loaded, and one with a rule nobody knows.
UPDATE ipintel.ip_inventory SET ip_class_basis = jsonb_set(ip_class_basis, '{snapshot}', '"2026-10-01"') WHERE ip = '3.1.2.3';
UPDATE ipintel.ip_inventory SET ip_class_basis = '{"rule": "hunch"}' WHERE ip = '5.6.7.9';
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_integrity()
                    WHERE rule LIKE 'every ip_inventory ip_class_basis names a rule%'$$,
                  $$VALUES (2::bigint, ARRAY['3.1.2.3', '5.6.7.9'])$$,
                  'a basis naming an unloaded snapshot or an unknown rule is found');
UPDATE ipintel.ip_inventory SET ip_class_basis = jsonb_set(ip_class_basis, '{snapshot}', '"2026-11-01"') WHERE ip = '3.1.2.3';
UPDATE ipintel.ip_inventory SET ip_class_basis = '{"rule": "unknown"}' WHERE ip = '5.6.7.9';
-- A list basis whose list gives another class.
UPDATE ipintel.ip_inventory SET ip_type = 'cdn' WHERE ip = '3.1.2.3';
SELECT results_eq($$SELECT violations FROM ipintel.verify_integrity()
                    WHERE rule LIKE 'every ip_inventory ip_class_basis names a rule%'$$,
                  $$VALUES (1::bigint)$$, 'a list basis of another class than ip_type is found');
UPDATE ipintel.ip_inventory SET ip_type = 'cloud' WHERE ip = '3.1.2.3';

-- A provider the basis does not name (a range of AWS said to be Google's; a provider on unknown).
UPDATE ipintel.ip_inventory SET ip_provider = 'gcp' WHERE ip = '3.1.2.3';
UPDATE ipintel.ip_inventory SET ip_provider = 'someone' WHERE ip = '5.6.7.9';
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_integrity()
                    WHERE rule LIKE 'every ip_inventory ip_provider is the one its ip_class_basis names%'$$,
                  $$VALUES (2::bigint, ARRAY['3.1.2.3', '5.6.7.9'])$$, 'a provider its basis does not name is found');
UPDATE ipintel.ip_inventory SET ip_provider = 'aws' WHERE ip = '3.1.2.3';
UPDATE ipintel.ip_inventory SET ip_provider = NULL WHERE ip = '5.6.7.9';
SELECT is((SELECT sum(violations)::int FROM ipintel.verify_integrity()), 0, 'sound again once put right');

SELECT * FROM finish();
ROLLBACK;
