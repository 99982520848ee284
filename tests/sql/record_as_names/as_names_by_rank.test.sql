-- record_as_names(), the AS-name upsert that merge_maxmind and merge_as_names (the merge step of
-- IPinfo Lite and DB-IP Lite) share: each source's AS name under its own key of
-- asn_inventory.sources, as_name by as_name_rank (cymru 1, maxmind 2, ipinfo 3, dbip 4) whatever
-- order the answers come in; an unchanged name writes no row.
BEGIN;
SELECT plan(7);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.81', '2026-11-01', '2026-11-01', 1),
    ('203.0.114.82', '2026-11-01', '2026-11-01', 1);

SELECT ipintel_tests.answer('dbip', '{"203.0.114.81": {"found": true, "country": "FR", "asn": 64581, "as_name": "DBIP-NAME"},
                                "203.0.114.82": {"found": true, "country": "FR", "asn": null, "as_name": null}}', now(), 1);
SELECT results_eq($$SELECT asn, as_name, sources FROM ipintel.asn_inventory$$,
                  $$VALUES (64581::bigint, 'DBIP-NAME', '{"dbip": {"as_name": "DBIP-NAME"}}'::jsonb)$$,
                  'DB-IP alone: its name, under its key; an answer without an AS adds no row');

SELECT ipintel_tests.answer('ipinfo', '{"203.0.114.81": {"found": true, "country_code": "FR", "asn": 64581,
                                                   "as_name": "IPINFO-NAME", "as_domain": "example.net"}}', now(), 1);
SELECT results_eq($$SELECT as_name, sources FROM ipintel.asn_inventory WHERE asn = 64581$$,
                  $$VALUES ('IPINFO-NAME', '{"dbip": {"as_name": "DBIP-NAME"}, "ipinfo": {"as_name": "IPINFO-NAME"}}'::jsonb)$$,
                  'IPinfo''s name ranks before DB-IP''s');

SELECT ipintel_tests.answer('maxmind', '{"203.0.114.81": {"found": true, "country": "FR", "asn": 64581, "as_org": "MM-NAME",
                                                    "asn_db": {"type": "GeoLite2-ASN"}}}', now(), 1);
SELECT results_eq($$SELECT as_name, sources -> 'maxmind' FROM ipintel.asn_inventory WHERE asn = 64581$$,
                  $$VALUES ('MM-NAME', '{"as_name": "MM-NAME"}'::jsonb)$$,
                  'MaxMind''s (its as_org) ranks before both');

SELECT ipintel_tests.answer('dbip', '{"203.0.114.81": {"found": true, "country": "FR", "asn": 64581, "as_name": "DBIP-NEW"}}',
                      now(), 2);
SELECT results_eq($$SELECT as_name, sources -> 'dbip' FROM ipintel.asn_inventory WHERE asn = 64581$$,
                  $$VALUES ('MM-NAME', '{"as_name": "DBIP-NEW"}'::jsonb)$$,
                  'a later DB-IP name is kept under its key and does not displace MaxMind''s');

SELECT ipintel_tests.answer('cymru', '{"203.0.114.81": {"found": true, "asn": 64581, "registered_country": "FR",
                                                  "as_name": "CYMRU-NAME, FR"}}', now());
SELECT is(as_name, 'CYMRU-NAME, FR', 'Team Cymru''s ranks first') FROM ipintel.asn_inventory WHERE asn = 64581;

-- The same IPinfo answer again: nothing to write.
SELECT ctid::text AS before FROM ipintel.asn_inventory WHERE asn = 64581 \gset
SELECT ipintel_tests.answer('ipinfo', '{"203.0.114.81": {"found": true, "country_code": "FR", "asn": 64581,
                                                   "as_name": "IPINFO-NAME", "as_domain": "example.net"}}', now(), 1);
SELECT is(ctid::text, :'before', 'an unchanged name writes no asn_inventory row')
FROM ipintel.asn_inventory WHERE asn = 64581;

-- Called directly: the key of the name in the answer is the caller's.
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
VALUES (ipintel.start_run('dbip', '{}'::jsonb), 900, 'dbip', '203.0.114.82', now(), '{"asn": 64582, "org": "KEYED"}');
SELECT ipintel.record_as_names('dbip', 900, 'org');
SELECT results_eq($$SELECT as_name, sources FROM ipintel.asn_inventory WHERE asn = 64582$$,
                  $$VALUES ('KEYED', '{"dbip": {"as_name": "KEYED"}}'::jsonb)$$,
                  'the name is read from p_name_key and filed under as_name');

SELECT * FROM finish();
ROLLBACK;
