-- apply_answers(): when the first-ranked source stops observing an IP's ASN (Team Cymru: "no
-- match"), the next source's ASN becomes current as of that answer. The earlier ranges are kept:
-- history is never rewritten backwards to the time the fallback was first observed.
BEGIN;
SELECT plan(3);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
VALUES ('81.2.69.7', '2026-11-01', '2026-11-01', 1);
SELECT ipintel_tests.answer('maxmind',
                            '{"81.2.69.7": {"found": true, "asn": 64600, "as_org": "MM", "asn_db": {"type": "GeoLite2-ASN"}}}',
                            '2026-11-02');
SELECT ipintel_tests.answer('cymru', '{"81.2.69.7": {"found": true, "asn": 64601, "as_name": "CY"}}', '2026-11-03');
SELECT ipintel_tests.answer('cymru', '{"81.2.69.7": {"found": false}}', '2026-11-20');

SELECT results_eq(
    $$SELECT asn, source, lower(valid), upper(valid) FROM ipintel.ip_asn_history
      WHERE ip = '81.2.69.7' ORDER BY lower(valid)$$,
    $$VALUES (64600::bigint, 'maxmind'::text, '2026-11-02'::timestamptz, '2026-11-03'::timestamptz),
             (64601, 'cymru', '2026-11-03', '2026-11-20'),
             (64600, 'maxmind', '2026-11-20', NULL)$$,
    'each range kept; the fallback to MaxMind opens when Cymru stops observing');
SELECT results_eq($$SELECT current_asn, current_asn_source FROM ipintel.ip_inventory WHERE ip = '81.2.69.7'$$,
                  $$VALUES (64600::bigint, 'maxmind'::text)$$, 'current_asn is the fallback');
SELECT results_eq($$SELECT ip_type, ip_type_source FROM ipintel.ip_inventory WHERE ip = '81.2.69.7'$$,
                  $$VALUES ('routed'::text, 'maxmind'::text)$$, 'no match says nothing: routed by the fallback ASN');

SELECT * FROM finish();
ROLLBACK;
