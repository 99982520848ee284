-- ips_in(): the IPs of some current ASNs or geolocation countries (ipintel enrich --asn / --country).
BEGIN;
SELECT plan(4);

INSERT INTO ipintel.asn_inventory (asn) VALUES (64500), (64501);
INSERT INTO ipintel.ip_inventory (ip, current_asn, geo_country) VALUES
    ('203.0.114.1', 64500, 'DE'), ('203.0.114.2', 64501, 'DE'), ('203.0.114.3', 64501, 'FR'), ('203.0.114.4', NULL, 'XX');

SELECT results_eq($$SELECT * FROM ipintel.ips_in(ARRAY[64501], '{}')$$,
                  $$VALUES ('203.0.114.2'::inet), ('203.0.114.3')$$, 'by current ASN');
SELECT results_eq($$SELECT * FROM ipintel.ips_in('{}', ARRAY['DE'])$$,
                  $$VALUES ('203.0.114.1'::inet), ('203.0.114.2')$$, 'by country');
SELECT results_eq($$SELECT * FROM ipintel.ips_in(ARRAY[64500], ARRAY['FR'])$$,
                  $$VALUES ('203.0.114.1'::inet), ('203.0.114.3')$$, 'both: the union, each IP once');
SELECT is_empty($$SELECT * FROM ipintel.ips_in(ARRAY[1], ARRAY['JP'])$$, 'nothing there: nothing');

SELECT * FROM finish();
ROLLBACK;
