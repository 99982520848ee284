-- ip_asn_history's exclusion constraint (revision 0010): keyed on host(ip) with btree_gist's
-- text opclass, never btree_gist's inet opclass; lookups by ip go through a btree.
BEGIN;
SELECT plan(14);

SELECT is(
    (SELECT array_agg(opc.opcname::text ORDER BY k.n) FROM pg_constraint c
     JOIN pg_index i ON i.indexrelid = c.conindid
     CROSS JOIN LATERAL unnest(i.indclass::oid[]) WITH ORDINALITY AS k(opclass, n)
     JOIN pg_opclass opc ON opc.oid = k.opclass
     WHERE c.conname = 'ip_asn_history_ranges_do_not_overlap'),
    ARRAY['gist_text_ops', 'range_ops'], 'the exclusion index is keyed on text (host(ip)) and the range');
SELECT is(
    (SELECT count(*)::int FROM pg_index i
     JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     CROSS JOIN LATERAL unnest(i.indclass::oid[]) AS k(opclass)
     JOIN pg_opclass opc ON opc.oid = k.opclass
     WHERE n.nspname LIKE 'ipintel%' AND opc.opcname IN ('gist_inet_ops', 'gist_cidr_ops', 'inet_ops')
       AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'gist')),
    0, 'no GiST index on inet anywhere in ipintel');
SELECT index_is_type('ipintel', 'ip_asn_history', 'ip_asn_history_ip_idx', 'btree');

INSERT INTO ipintel.asn_inventory (asn) VALUES (64496), (64497);
INSERT INTO ipintel.ip_inventory (ip) VALUES
    ('192.0.2.7'), ('::192.0.2.7'), ('2001:db8::10'), ('2001:db8::11'), ('2001:db8::8000:10');
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
VALUES ('192.0.2.7', 64496, tstzrange('2026-01-01', '2026-06-01'), 'cymru'),
       ('2001:db8::10', 64496, tstzrange('2026-01-01', NULL), 'cymru');

SELECT throws_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                   VALUES ('192.0.2.7', 64497, tstzrange('2026-05-31', NULL), 'maxmind')$$, '23P01', NULL,
    'an IPv4 address: overlapping ranges refused');
SELECT throws_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                   VALUES ('2001:db8::10', 64497, tstzrange('2025-01-01', '2026-01-02'), 'maxmind')$$, '23P01', NULL,
    'an IPv6 address: overlapping ranges refused');
SELECT throws_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                   VALUES ('2001:0db8:0000::0010', 64497, tstzrange('2026-03-01', '2026-04-01'), 'maxmind')$$, '23P01', NULL,
    'the same IPv6 address written differently is the same address');
SELECT lives_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                  VALUES ('192.0.2.7', 64497, tstzrange('2026-06-01', NULL), 'maxmind')$$,
    'ranges that meet do not overlap');
SELECT lives_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                  VALUES ('::192.0.2.7', 64497, tstzrange('2026-01-01', NULL), 'maxmind')$$,
    'IPv4 and the IPv6 address with the same 32 bits are different IPs');
SELECT lives_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                  VALUES ('2001:db8::11', 64497, tstzrange('2026-01-01', NULL), 'maxmind')$$,
    'IPv6 addresses differing only in the lowest bit are different IPs');
SELECT lives_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                  VALUES ('2001:db8::8000:10', 64497, tstzrange('2026-01-01', NULL), 'maxmind')$$,
    'IPv6 addresses differing only in low bits are different IPs');

SELECT throws_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                   VALUES ('192.0.2.7/24', 64497, tstzrange('2027-01-01', NULL), 'maxmind')$$, '23514',
    'new row for relation "ip_asn_history" violates check constraint "ip_asn_history_ip_is_host_address"',
    'a network is not a host address (host() would hide its mask)');

SELECT is((SELECT count(*)::int FROM ipintel.ip_asn_history), 6, 'six ranges were accepted');

SET LOCAL enable_seqscan = off;
SELECT results_eq(
    $$SELECT ip FROM ipintel.ip_asn_history WHERE ip = '2001:db8::10'$$,
    $$VALUES ('2001:db8::10'::inet)$$, 'lookup by ip');
SELECT results_eq(
    $$SELECT ip FROM ipintel.ip_asn_history WHERE ip <<= '2001:db8::/112' ORDER BY ip$$,
    $$VALUES ('2001:db8::10'::inet), ('2001:db8::11'::inet)$$, 'network containment through the btree');

SELECT * FROM finish();
ROLLBACK;
