-- Bad input is refused by named constraints whose messages say what is wrong.
BEGIN;
SELECT plan(14);

SELECT throws_ok($$INSERT INTO ipintel.ip_inventory (ip) VALUES ('10.0.0.0/8')$$, '23514',
    'new row for relation "ip_inventory" violates check constraint "ip_inventory_ip_is_host_address"',
    'a network is not a host address');
SELECT throws_ok($$INSERT INTO ipintel.ip_inventory (ip) VALUES ('::ffff:1.2.3.4')$$, '23514',
    'new row for relation "ip_inventory" violates check constraint "ip_inventory_ip_is_not_ipv4_mapped"',
    'IPv4-mapped IPv6 must be normalised first');
SELECT lives_ok($$INSERT INTO ipintel.ip_inventory (ip) VALUES (ipintel.normalize_ip('::ffff:1.2.3.4'))$$,
    'normalize_ip turns mapped IPv6 into IPv4');
SELECT throws_ok($$INSERT INTO ipintel.asn_inventory (asn, as_country) VALUES (64496, 'usa')$$, '23514',
    'new row for relation "asn_inventory" violates check constraint "asn_inventory_as_country_is_iso_alpha2"',
    'a country is two upper-case letters');
SELECT throws_ok($$INSERT INTO ipintel.ip_inventory (ip, geo_country) VALUES ('9.9.9.9', 'de')$$, '23514',
    'new row for relation "ip_inventory" violates check constraint "ip_inventory_geo_country_is_iso_alpha2"',
    'a lower-case geo_country is refused');
-- A resolved fact's source has no per-row check (the merges take it from the registry); verify
-- finds one that is not registered.
INSERT INTO ipintel.ip_inventory (ip, geo_country, geo_country_source) VALUES ('9.9.9.8', 'DE', 'shodan');
SELECT results_eq($$SELECT violations, examples FROM ipintel.verify_integrity()
                    WHERE rule = 'every ip_inventory *_source is a registered source'$$,
                  $$VALUES (1::bigint, ARRAY['9.9.9.8'])$$,
    'a resolved fact that names no source of the registry is found by verify_integrity');
DELETE FROM ipintel.ip_inventory WHERE ip = '9.9.9.8';
SELECT throws_ok($$INSERT INTO ipintel.enrichment_runs (source) VALUES ('shodan')$$, '23503',
    'insert or update on table "enrichment_runs" violates foreign key constraint "enrichment_runs_source_fkey"',
    'a run of a source missing from the registry is refused');
SELECT throws_ok($$INSERT INTO ipintel.asn_inventory (asn) VALUES (4294967296)$$, '23514',
    'new row for relation "asn_inventory" violates check constraint "asn_inventory_asn_is_32_bit"',
    'ASNs are 32-bit');

INSERT INTO ipintel.asn_inventory (asn) VALUES (64496), (64497);
INSERT INTO ipintel.ip_inventory (ip) VALUES ('192.0.3.1');
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
VALUES ('192.0.3.1', 64496, tstzrange('2026-01-01', '2026-06-01'), 'cymru');
SELECT throws_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                   VALUES ('192.0.3.1', 64497, tstzrange('2026-05-01', NULL), 'cymru')$$, '23P01',
    'ip_asn_history: two ranges of 192.0.3.1 overlap',
    'one IP''s ASN ranges never overlap (an open range: the statement trigger)');
SELECT throws_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                   VALUES ('192.0.3.1', 64497, tstzrange('2026-05-01', '2026-05-02'), 'cymru')$$, '23P01',
    'conflicting key value violates exclusion constraint "ip_asn_history_closed_ranges_do_not_overlap"',
    'one IP''s ASN ranges never overlap (closed ranges: the exclusion constraint)');
SELECT lives_ok($$INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
                  VALUES ('192.0.3.1', 64497, tstzrange('2026-06-01', NULL), 'cymru')$$,
    'ranges that meet do not overlap');

-- The error names the partition of the session's month (session_summaries_YYYY_MM).
SELECT throws_like($$INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
                     VALUES ('s1', now(), now(), '192.0.3.99')$$,
    'insert or update on table "session_summaries_%" violates foreign key constraint "session_summaries_source_ip_fkey"',
    'a session needs its IP in ip_inventory');
SELECT throws_ok($$UPDATE ipintel.ip_inventory SET current_asn = 1 WHERE ip = '192.0.3.1'$$, '23503',
    'insert or update on table "ip_inventory" violates foreign key constraint "ip_inventory_current_asn_fkey"',
    'current_asn must exist in asn_inventory');
SELECT throws_ok($$INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_country)
                   VALUES ('s2', now(), now(), '192.0.3.1', 'Germany')$$, '23514', NULL,
    'snapshot_country is two upper-case letters');

SELECT * FROM finish();
ROLLBACK;
