-- greynoise_facts(): what a GreyNoise answer says (noise -> is_scanner, riot -> is_riot, the
-- classification riot or scanner). GreyNoise has no merge step of its own: merge_batch records
-- its answers and apply_answers resolves is_scanner, is_riot and ip_type from them. A 404 (not
-- observed) is a real negative answer; an answer without a verdict says nothing.
BEGIN;
SELECT plan(8);

SELECT results_eq($$SELECT * FROM ipintel.greynoise_facts('{"observed": true, "noise": true, "riot": false}')$$,
                  $$VALUES (NULL::bigint, false, NULL::text, true, false, 'scanner', NULL::boolean, NULL::text[])$$,
                  'noise: a scanner, and no ASN or country');
SELECT results_eq($$SELECT is_scanner, is_riot, ip_type FROM ipintel.greynoise_facts('{"noise": true, "riot": true}')$$,
                  $$VALUES (true, true, 'riot')$$, 'riot before scanner: a known benign service');
SELECT results_eq($$SELECT is_scanner, is_riot, ip_type FROM ipintel.greynoise_facts('{"observed": false, "noise": false, "riot": false}')$$,
                  $$VALUES (false, false, NULL::text)$$, 'not observed: a real no, but no classification');
SELECT results_eq($$SELECT is_scanner, is_riot, ip_type FROM ipintel.greynoise_facts('{}')$$,
                  $$VALUES (NULL::boolean, NULL::boolean, NULL::text)$$, 'no verdict: says nothing');

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.31'), ('203.0.114.32'), ('203.0.114.33'), ('203.0.114.34');
SELECT ipintel.start_run('greynoise', '{}'::jsonb) AS run_id \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) VALUES
    (:run_id, 700, 'greynoise', '203.0.114.31', now(), '{"observed": true, "noise": true, "riot": false, "classification": "malicious"}'),
    (:run_id, 700, 'greynoise', '203.0.114.32', now(), '{"observed": true, "noise": false, "riot": true, "name": "Google"}'),
    (:run_id, 700, 'greynoise', '203.0.114.33', now(), '{"observed": false, "noise": false, "riot": false}');

SELECT results_eq($$SELECT * FROM ipintel.merge_batch($$ || :run_id || $$, 700)$$,
                  $$VALUES (3::bigint, 3::bigint, 0::bigint)$$, 'three IPs merged, without a merge step of their own');
SELECT results_eq($$SELECT host(ip), is_scanner, is_scanner_source, is_riot, ip_type, ip_type_source
                    FROM ipintel.ip_inventory ORDER BY ip$$,
                  $$VALUES ('203.0.114.31', true, 'greynoise', false, 'scanner', 'greynoise'),
                           ('203.0.114.32', false, 'greynoise', true, 'riot', 'greynoise'),
                           ('203.0.114.33', false, 'greynoise', false, 'unknown', NULL),
                           ('203.0.114.34', NULL, NULL, NULL, 'unknown', NULL)$$,
                  'scanner, benign service, not observed (a real "no"), never asked (NULL)');
SELECT is((SELECT enrichment #>> '{greynoise,classification}' FROM ipintel.ip_inventory WHERE ip = '203.0.114.31'),
          'malicious', 'the document is kept under its source''s key');
SELECT results_eq($$SELECT host(ip), asn_observed, is_scanner, is_riot, ip_type FROM ipintel.enrichment_state ORDER BY ip$$,
                  $$VALUES ('203.0.114.31', false, true, false, 'scanner'),
                           ('203.0.114.32', false, false, true, 'riot'),
                           ('203.0.114.33', false, false, false, NULL)$$,
                  'the facts of each answer are recorded in enrichment_state; none is an ASN observation');

SELECT * FROM finish();
ROLLBACK;
