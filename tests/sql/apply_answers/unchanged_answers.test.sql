-- A refresh that learns nothing: an answer that repeats the stored document records its fetch
-- time in enrichment_state and resolves nothing (its facts cannot change), so ip_inventory is not
-- written. An answer that differs is resolved; an IP never classified is classified even when its
-- answer repeats.
BEGIN;
SELECT plan(7);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.20'), ('203.0.114.21');
SELECT ipintel_tests.answer('greynoise',
    '{"203.0.114.20": {"observed": true, "noise": true, "riot": false, "classification": "malicious"},
      "203.0.114.21": {"observed": true, "noise": false, "riot": false, "classification": "unknown"}}',
    '2026-11-01');
SELECT results_eq($$SELECT host(ip), is_scanner, ip_type FROM ipintel.ip_inventory ORDER BY ip$$,
                  $$VALUES ('203.0.114.20', true, 'scanner'), ('203.0.114.21', false, 'unknown')$$,
                  'first answers resolved');
-- Every test runs in one transaction (xmin and now() never move): a written row has a new ctid.
CREATE TEMP TABLE before AS SELECT ip, ctid::text AS version, is_scanner FROM ipintel.ip_inventory;

-- The registry now ranks GreyNoise for no is_scanner: resolved_facts says so at once.
UPDATE ipintel.enrichment_policy SET is_scanner_rank = NULL WHERE source = 'greynoise';
SELECT is((SELECT is_scanner FROM ipintel.resolved_facts('203.0.114.20')), NULL::boolean,
          'resolved_facts follows the registry at once');

-- The same two answers a week later, and a third IP answered for the first time.
INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.22');
SELECT ipintel_tests.answer('greynoise',
    '{"203.0.114.20": {"observed": true, "noise": true, "riot": false, "classification": "malicious"},
      "203.0.114.21": {"observed": true, "noise": false, "riot": false, "classification": "unknown"},
      "203.0.114.22": {"observed": true, "noise": true, "riot": false, "classification": "malicious"}}',
    '2026-11-08');
SELECT results_eq($$SELECT host(ip), fetched_at, changed_at FROM ipintel.enrichment_state
                    WHERE source = 'greynoise' ORDER BY ip$$,
                  $$VALUES ('203.0.114.20', '2026-11-08'::timestamptz, '2026-11-01'::timestamptz),
                           ('203.0.114.21', '2026-11-08', '2026-11-01'),
                           ('203.0.114.22', '2026-11-08', '2026-11-08')$$,
                  'every answer''s fetch time is recorded; changed_at only where the document is new');
SELECT is_empty($$SELECT 1 FROM ipintel.ip_inventory i JOIN before b USING (ip)
                  WHERE i.ctid::text <> b.version OR i.is_scanner IS DISTINCT FROM b.is_scanner$$,
                'repeated answers: their ip_inventory rows are not written, not even to resolve again');
SELECT results_eq($$SELECT is_scanner, is_scanner_source FROM ipintel.ip_inventory WHERE ip = '203.0.114.22'$$,
                  $$VALUES (NULL::boolean, NULL::text)$$, 'a new answer is resolved by the registry as it is now');

-- The next answer that differs resolves the IP again, by the registry as it is now.
SELECT ipintel_tests.answer('greynoise',
    '{"203.0.114.20": {"observed": true, "noise": true, "riot": false, "classification": "benign"}}', '2026-11-09');
SELECT results_eq($$SELECT is_scanner, is_scanner_source FROM ipintel.ip_inventory WHERE ip = '203.0.114.20'$$,
                  $$VALUES (NULL::boolean, NULL::text)$$, 'a changed answer is resolved again');

-- An IP whose class was never set (ip_class_basis NULL) is classified even by a repeated answer.
UPDATE ipintel.ip_inventory SET ip_class_basis = NULL, ip_type = 'unknown', ip_type_source = NULL
WHERE ip = '203.0.114.21';
SELECT ipintel_tests.answer('greynoise',
    '{"203.0.114.21": {"observed": true, "noise": false, "riot": false, "classification": "unknown"}}', '2026-11-10');
SELECT isnt((SELECT ip_class_basis FROM ipintel.ip_inventory WHERE ip = '203.0.114.21'), NULL,
            'an IP never classified is classified by a repeated answer');

SELECT * FROM finish();
ROLLBACK;
