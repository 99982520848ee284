-- ip_asn_history's ranges never overlap (revisions 0010, 0026): an exclusion constraint over the
-- closed ranges keyed on inet_key(ip) with btree_gist's uuid opclass (never btree_gist's inet
-- opclass), statement triggers for open ranges, and verify_integrity over everything; lookups by
-- ip go through a btree.
BEGIN;
SELECT plan(25);

SELECT is(
    (SELECT array_agg(opc.opcname::text ORDER BY k.n) FROM pg_constraint c
     JOIN pg_index i ON i.indexrelid = c.conindid
     CROSS JOIN LATERAL unnest(i.indclass::oid[]) WITH ORDINALITY AS k(opclass, n)
     JOIN pg_opclass opc ON opc.oid = k.opclass
     WHERE c.conname = 'ip_asn_history_closed_ranges_do_not_overlap'),
    ARRAY['gist_uuid_ops', 'range_ops'], 'the exclusion index is keyed on a uuid (inet_key(ip)) and the range');
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

-- inet_key: the address bytes, exact, IPv4 as the IPv4-mapped form.
SELECT is(ipintel.inet_key('192.0.2.7'), '00000000-0000-0000-0000-ffffc0000207'::uuid, 'inet_key of an IPv4 address');
SELECT is(ipintel.inet_key('2001:db8::8000:10'), '20010db8-0000-0000-0000-000080000010'::uuid,
          'inet_key of an IPv6 address');

-- Closed ranges against closed ranges: the exclusion constraint.
SELECT throws_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                   VALUES ('192.0.2.7', 64497, tstzrange('2026-02-01', '2026-03-01'), 'maxmind')$$, '23P01',
    'conflicting key value violates exclusion constraint "ip_asn_history_closed_ranges_do_not_overlap"',
    'two closed ranges that overlap are refused by the constraint');
-- An open range inside the closed ones, through UPDATE (the statement trigger on update).
SELECT throws_ok($$UPDATE ipintel.ip_asn_history SET valid = tstzrange('2026-05-01', NULL)
                   WHERE ip = '192.0.2.7' AND upper_inf(valid)$$, '23P01',
    'ip_asn_history: two ranges of 192.0.2.7 overlap', 'an update that makes an open range overlap is refused');
-- Closing the open range where it began is an empty range; before it, it overlaps nothing.
SELECT lives_ok($$UPDATE ipintel.ip_asn_history SET valid = tstzrange('2026-06-01', '2026-07-01')
                  WHERE ip = '192.0.2.7' AND upper_inf(valid)$$, 'closing an open range');
SELECT throws_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                   VALUES ('2001:db8::11', 64496, tstzrange('2026-06-01', NULL), 'cymru')$$, '23505', NULL,
    'a second open range of one IP is refused (the open-range index)');
-- A statement that writes many rows, one of them overlapping: all of it is refused.
INSERT INTO ipintel.ip_inventory (ip) VALUES ('192.0.2.8');
SELECT throws_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                   SELECT ip, 64496, tstzrange('2026-06-15', NULL), 'cymru'
                   FROM (VALUES ('192.0.2.8'::inet), ('192.0.2.7')) v(ip)$$, '23P01', NULL,
    'a set-based insert with one overlapping open range is refused whole');
SELECT is((SELECT count(*)::int FROM ipintel.ip_asn_history), 6, 'nothing of the refused statements was kept');

-- verify_integrity checks every pair again: with the guards off (as a restore without them would
-- be), an overlap is found and named.
SELECT is((SELECT sum(violations) FROM ipintel.verify_integrity()), 0::numeric, 'verify_integrity: no overlap, no dangling reference');
ALTER TABLE ipintel.ip_asn_history DISABLE TRIGGER ip_asn_history_ranges_do_not_overlap_insert;
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
VALUES ('2001:db8::10', 64497, tstzrange('2025-06-01', '2026-02-01'), 'maxmind');
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_integrity()
                    WHERE rule = 'no two ranges of one IP in ip_asn_history overlap'$$,
                  $$VALUES (1::bigint, ARRAY['2001:db8::10'])$$, 'verify_integrity names the IP whose ranges overlap');
-- Nor is there a per-row check of the history's references: verify_integrity finds a dangling one.
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
VALUES ('192.0.2.99', 4200000000, tstzrange('2026-01-01', NULL), 'shodan');
SELECT results_eq($$SELECT rule, violations FROM ipintel.verify_integrity() WHERE violations > 0 ORDER BY rule$$,
                  $$VALUES ('every ip_asn_history ASN is in asn_inventory', 1::bigint),
                           ('every ip_asn_history IP is in ip_inventory', 1::bigint),
                           ('every ip_asn_history source is a registered source', 1::bigint),
                           ('no two ranges of one IP in ip_asn_history overlap', 1::bigint)$$,
                  'verify_integrity finds a range whose IP, ASN and source exist nowhere');

SELECT * FROM finish();
ROLLBACK;
