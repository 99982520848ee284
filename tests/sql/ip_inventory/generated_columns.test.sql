-- Generated columns of ip_inventory for the edge cases analysts filter on.
BEGIN;
SELECT plan(29);

INSERT INTO ipintel.ip_inventory (ip, enrichment) VALUES
    ('8.8.8.8', '{"maxmind": {"country": "US"}}'),
    ('89.38.234.1', '{"cymru": {"asn": null, "registered_country": "RO"}}'),
    ('2a00:1450:4001::1', '{"maxmind": {"country": "DE"}, "cymru": {"asn": 15169, "registered_country": "US"}}'),
    ('2001:db8::7', '{}'),
    ('10.1.2.3', '{"maxmind": {"country": null}}'),
    ('100.64.0.1', '{}'),
    ('198.51.100.20', '{}'),
    ('45.33.32.156', '{"greynoise": {"noise": true, "riot": false}}'),
    ('142.250.1.1', '{"greynoise": {"noise": false, "riot": true}}'),
    ('185.220.101.1', '{"maxmind": {"country": "DE", "is_anonymous_proxy": true}}'),
    ('203.0.114.9', '{"greynoise": {"observed": false, "noise": false, "riot": false}}'),
    ('5.6.7.8', '{}');

SELECT is(geo_country, 'US', 'MaxMind country wins') FROM ipintel.ip_inventory WHERE ip = '8.8.8.8';
SELECT is(geo_country, 'RO', 'no MaxMind: Cymru registration country') FROM ipintel.ip_inventory WHERE ip = '89.38.234.1';
SELECT is(geo_country, 'DE', 'MaxMind before Cymru for IPv6') FROM ipintel.ip_inventory WHERE ip = '2a00:1450:4001::1';
SELECT is(geo_country, 'XX', 'no source: XX') FROM ipintel.ip_inventory WHERE ip = '5.6.7.8';
SELECT is(geo_country, 'XX', 'MaxMind found no country: XX') FROM ipintel.ip_inventory WHERE ip = '10.1.2.3';

SELECT is(ip_family, 6::smallint, 'IPv6 family') FROM ipintel.ip_inventory WHERE ip = '2a00:1450:4001::1';
SELECT is(ip_family, 4::smallint, 'IPv4 family') FROM ipintel.ip_inventory WHERE ip = '8.8.8.8';

SELECT ok(is_bogon, 'RFC 1918 is a bogon') FROM ipintel.ip_inventory WHERE ip = '10.1.2.3';
SELECT ok(is_bogon, 'RFC 6598 shared space is a bogon') FROM ipintel.ip_inventory WHERE ip = '100.64.0.1';
SELECT ok(is_bogon, 'TEST-NET-2 is a bogon') FROM ipintel.ip_inventory WHERE ip = '198.51.100.20';
SELECT ok(is_bogon, 'IPv6 documentation prefix is a bogon') FROM ipintel.ip_inventory WHERE ip = '2001:db8::7';
SELECT ok(NOT is_bogon, 'global IPv6 is not a bogon') FROM ipintel.ip_inventory WHERE ip = '2a00:1450:4001::1';
SELECT ok(NOT is_bogon, '203.0.114.9 (next to TEST-NET-3) is not a bogon') FROM ipintel.ip_inventory WHERE ip = '203.0.114.9';
SELECT is(ipintel.is_bogon(ip), expected, 'is_bogon(' || ip || ')')
FROM (VALUES ('255.255.255.255'::inet, true), ('224.0.0.251', true), ('169.254.10.1', true),
             ('::1', true), ('fe80::1', true), ('fd00::1', true), ('2002:c000:0204::1', true),
             ('1.1.1.1', false)) AS t(ip, expected);

SELECT is(ip_type, 'bogon', 'bogon first, whatever the sources say') FROM ipintel.ip_inventory WHERE ip = '10.1.2.3';
SELECT is(ip_type, 'scanner', 'GreyNoise noise: scanner') FROM ipintel.ip_inventory WHERE ip = '45.33.32.156';
SELECT is(ip_type, 'riot', 'GreyNoise RIOT: benign service') FROM ipintel.ip_inventory WHERE ip = '142.250.1.1';
SELECT is(ip_type, 'anonymizer', 'MaxMind anonymous proxy') FROM ipintel.ip_inventory WHERE ip = '185.220.101.1';
SELECT is(ip_type, 'unrouted', 'Cymru NA: allocated, not routed') FROM ipintel.ip_inventory WHERE ip = '89.38.234.1';
SELECT is(ip_type, 'unknown', 'nothing fetched yet: unknown') FROM ipintel.ip_inventory WHERE ip = '5.6.7.8';

SELECT is(is_scanner, NULL, 'GreyNoise never asked: is_scanner unknown') FROM ipintel.ip_inventory WHERE ip = '8.8.8.8';
SELECT is(is_scanner, false, 'GreyNoise 404 (not observed): not a scanner') FROM ipintel.ip_inventory WHERE ip = '203.0.114.9';

SELECT * FROM finish();
ROLLBACK;
