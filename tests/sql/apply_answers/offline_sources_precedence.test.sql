-- resolved_facts() with the offline sources: ASN by asn_rank (cymru 1, maxmind 2, ipinfo 3,
-- dbip 4), country by country_rank (maxmind 1, ipinfo 2, dbip 3, cymru 4: Team Cymru's is a
-- registration country, after every geolocation). Answers go through merge_batch.
BEGIN;
SELECT plan(7);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
SELECT ip::inet, '2026-11-01', '2026-11-01', 1
FROM unnest(ARRAY['203.0.114.91', '203.0.114.92', '203.0.114.93', '203.0.114.94']) AS ip;

-- MaxMind without its ASN file (the City file only): countries, no ASN observation.
SELECT ipintel_tests.answer('maxmind', $${
    "203.0.114.91": {"found": true, "country": "NL", "asn": null, "asn_db": null},
    "203.0.114.92": {"found": false, "country": null, "asn": null, "asn_db": null}
}$$::jsonb, '2026-11-02', 1);
SELECT ipintel_tests.answer('ipinfo', $${
    "203.0.114.91": {"found": true, "asn": 64591, "as_name": "IPINFO-AS", "country_code": "DE", "country": "Germany"},
    "203.0.114.92": {"found": true, "asn": null, "country_code": "BE", "country": "Belgium"}
}$$::jsonb, '2026-11-02', 1);
SELECT ipintel_tests.answer('dbip', $${
    "203.0.114.91": {"found": true, "country": "FR", "asn": 64691, "as_name": "DBIP-AS"},
    "203.0.114.92": {"found": true, "country": "FR", "asn": 64692, "as_name": "DBIP-AS2"},
    "203.0.114.93": {"found": true, "country": "IT", "asn": 64693, "as_name": "DBIP-AS3"},
    "203.0.114.94": {"found": true, "country": "ES", "asn": 64694, "as_name": "DBIP-AS4"}
}$$::jsonb, '2026-11-02', 1);

SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source, ip_type, ip_type_source
                    FROM ipintel.ip_inventory WHERE ip = '203.0.114.91'$$,
                  $$VALUES (64591::bigint, 'ipinfo', 'NL', 'maxmind', 'routed', 'ipinfo')$$,
                  'no MaxMind ASN file: IPinfo''s ASN (before DB-IP''s); MaxMind''s country beats IPinfo''s');
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source
                    FROM ipintel.ip_inventory WHERE ip = '203.0.114.92'$$,
                  $$VALUES (64692::bigint, 'dbip', 'BE', 'ipinfo')$$,
                  'IPinfo''s record has no AS: DB-IP''s ASN; MaxMind does not know it: IPinfo''s country beats DB-IP''s');
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source
                    FROM ipintel.ip_inventory WHERE ip = '203.0.114.93'$$,
                  $$VALUES (64693::bigint, 'dbip', 'IT', 'dbip')$$, 'DB-IP alone: its ASN and country');

-- Team Cymru: live BGP wins the ASN; its registration country loses to every geolocation.
SELECT ipintel_tests.answer('cymru', $${
    "203.0.114.93": {"found": true, "asn": 64793, "registered_country": "US", "as_name": "CYMRU-AS"},
    "203.0.114.94": {"found": true, "asn": null, "registered_country": "US"}
}$$::jsonb, '2026-11-02');
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source
                    FROM ipintel.ip_inventory WHERE ip = '203.0.114.93'$$,
                  $$VALUES (64793::bigint, 'cymru', 'IT', 'dbip')$$,
                  'Cymru''s ASN beats DB-IP''s; DB-IP''s country beats Cymru''s registration country');
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source, ip_type, ip_type_source
                    FROM ipintel.ip_inventory WHERE ip = '203.0.114.94'$$,
                  $$VALUES (NULL::bigint, 'cymru', 'ES', 'dbip', 'unrouted', 'cymru')$$,
                  'Cymru''s "allocated, not announced" is an observation that ranks before DB-IP''s ASN');

-- MaxMind's ASN file installed later: it ranks before IPinfo's.
SELECT ipintel_tests.answer('maxmind', $${
    "203.0.114.91": {"found": true, "country": "NL", "asn": 64891, "as_org": "MM-AS", "asn_db": {"type": "GeoLite2-ASN"}}
}$$::jsonb, '2026-11-09', 2);
SELECT results_eq($$SELECT current_asn, current_asn_source FROM ipintel.ip_inventory WHERE ip = '203.0.114.91'$$,
                  $$VALUES (64891::bigint, 'maxmind')$$, 'MaxMind''s ASN file beats IPinfo''s');
SELECT results_eq($$SELECT asn, source FROM ipintel.ip_asn_history WHERE ip = '203.0.114.91' ORDER BY lower(valid)$$,
                  $$VALUES (64591::bigint, 'ipinfo'), (64891, 'maxmind')$$,
                  'the ASN history records IPinfo''s observation, then MaxMind''s');

SELECT * FROM finish();
ROLLBACK;
