-- apply_answers() classifies (ip_classes) only the IPs whose facts or ASN change in the batch: a
-- re-fetch of an unchanged answer keeps the class the IP has (a new range list or AS name
-- reaches it through classify_inventory), a changed answer classifies it again, and an IP never
-- classified is classified on its first answer. Answers go through the real path (merge_batch).
BEGIN;
SELECT plan(5);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
VALUES ('45.33.32.200', '2026-11-01', '2026-11-01', 1);

SELECT is(ipintel_tests.answer('greynoise', $${
    "45.33.32.200": {"observed": true, "noise": true, "riot": false, "classification": "malicious"}
}$$::jsonb, '2026-11-02'), 1::bigint, 'a first answer merged');
SELECT results_eq($$SELECT ip_type, ip_class_basis IS NOT NULL FROM ipintel.ip_inventory WHERE ip = '45.33.32.200'$$,
                  $$VALUES ('scanner', true)$$, 'classified on its first answer: a scanner');

-- As if the class had been decided otherwise since (e.g. by an earlier list): a class ip_classes
-- would not give today.
UPDATE ipintel.ip_inventory SET ip_type = 'residential' WHERE ip = '45.33.32.200';

SELECT ipintel_tests.answer('greynoise', $${
    "45.33.32.200": {"observed": true, "noise": true, "riot": false, "classification": "malicious"}
}$$::jsonb, '2026-11-09');
SELECT results_eq($$SELECT ip_type FROM ipintel.ip_inventory WHERE ip = '45.33.32.200'$$,
                  $$VALUES ('residential')$$, 'the same answer again: not classified again, the class stays');

SELECT ipintel_tests.answer('greynoise', $${
    "45.33.32.200": {"observed": true, "noise": false, "riot": true, "name": "Example CDN"}
}$$::jsonb, '2026-11-10');
SELECT results_eq($$SELECT ip_type, is_riot FROM ipintel.ip_inventory WHERE ip = '45.33.32.200'$$,
                  $$VALUES ('riot', true)$$, 'a changed answer: classified again');
SELECT results_eq($$SELECT count(*)::int FROM ipintel.enrichment_state WHERE ip = '45.33.32.200' AND source = 'greynoise'
                    AND fetched_at = '2026-11-10'$$,
                  $$VALUES (1)$$, 'the freshness of every answer is recorded all the same');

SELECT * FROM finish();
ROLLBACK;
