-- is_bogon() and the generated columns of ip_inventory that read only the address (ip_family,
-- is_bogon), for the edge cases analysts filter on.
BEGIN;
SELECT plan(16);

INSERT INTO ipintel.ip_inventory (ip) VALUES
    ('8.8.8.8'), ('2a00:1450:4001::1'), ('2001:db8::7'), ('10.1.2.3'), ('100.64.0.1'), ('198.51.100.20'),
    ('203.0.114.9');

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

SELECT * FROM finish();
ROLLBACK;
