-- merge_greynoise(): a staged GreyNoise batch becomes enrichment->greynoise; is_scanner,
-- is_riot and ip_type follow from it (generated columns). A 404 is a real negative answer.
BEGIN;
SELECT plan(4);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.31'), ('203.0.114.32'), ('203.0.114.33'), ('203.0.114.34');
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) VALUES
    (1, 700, 'greynoise', '203.0.114.31', now(), '{"observed": true, "noise": true, "riot": false, "classification": "malicious"}'),
    (1, 700, 'greynoise', '203.0.114.32', now(), '{"observed": true, "noise": false, "riot": true, "name": "Google"}'),
    (1, 700, 'greynoise', '203.0.114.33', now(), '{"observed": false, "noise": false, "riot": false}');

SELECT is(ipintel.merge_greynoise(1, 700), 3::bigint, 'three IPs merged');
SELECT results_eq($$SELECT host(ip), is_scanner, is_riot, ip_type FROM ipintel.ip_inventory ORDER BY ip$$,
                  $$VALUES ('203.0.114.31', true, false, 'scanner'), ('203.0.114.32', false, true, 'riot'),
                           ('203.0.114.33', false, false, 'unknown'), ('203.0.114.34', NULL, NULL, 'unknown')$$,
                  'scanner, benign service, not observed (a real "no"), never asked (NULL)');
SELECT is((SELECT enrichment #>> '{greynoise,classification}' FROM ipintel.ip_inventory WHERE ip = '203.0.114.31'),
          'malicious', 'the document is kept under its source''s key');
SELECT is((SELECT count(*) FROM ipintel_staging.enrichment_results WHERE batch_id = 700), 3::bigint,
          'the merge function leaves staging to merge_batch');

SELECT * FROM finish();
ROLLBACK;
