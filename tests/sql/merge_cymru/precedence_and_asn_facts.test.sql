-- merge_cymru(): Team Cymru's answer (live BGP) becomes current_asn, whatever MaxMind said; the
-- AS facts (name, registration country, RIR, allocation) land in asn_inventory; counts follow.
BEGIN;
SELECT plan(7);

INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64600, 'MM-NAME');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count, current_asn, enrichment) VALUES
    ('203.0.114.61', '2026-11-01', '2026-11-02', 3, 64600, '{"maxmind": {"asn": 64600}}'),
    ('203.0.114.62', '2026-11-01', '2026-11-01', 1, NULL, '{}');
SELECT ipintel.refresh_asn_counts(ARRAY[64600::bigint]);
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) VALUES
    (1, 710, 'cymru', '203.0.114.61', '2026-11-03', '{"found": true, "asn": 64601, "registered_country": "NL",
        "registry": "ripencc", "allocated": "2004-02-03", "as_name": "EXAMPLE-NL, NL"}'),
    (1, 710, 'cymru', '203.0.114.62', '2026-11-03', '{"found": true, "asn": 64600, "registered_country": "US",
        "registry": "arin", "allocated": null, "as_name": "CYMRU-NAME, US"}');

SELECT is(ipintel.merge_cymru(1, 710), 2::bigint, 'both answers merged');
SELECT results_eq($$SELECT host(ip), current_asn FROM ipintel.ip_inventory ORDER BY ip$$,
                  $$VALUES ('203.0.114.61', 64601::bigint), ('203.0.114.62', 64600::bigint)$$,
                  'Cymru''s origin is current_asn, replacing MaxMind''s');
SELECT results_eq($$SELECT asn, as_name, as_country, rir, allocated FROM ipintel.asn_inventory ORDER BY asn$$,
                  $$VALUES (64600::bigint, 'CYMRU-NAME, US', 'US', 'arin', NULL::date),
                           (64601, 'EXAMPLE-NL, NL', 'NL', 'ripencc', '2004-02-03')$$,
                  'AS facts from Cymru: its name wins, no allocation date stays NULL');
SELECT results_eq($$SELECT asn, ip_count, session_count FROM ipintel.asn_inventory ORDER BY asn$$,
                  $$VALUES (64600::bigint, 1::bigint, 1::bigint), (64601, 1, 3)$$,
                  'counts follow the IPs that moved');
SELECT results_eq($$SELECT host(ip), asn, source FROM ipintel.ip_asn_history ORDER BY ip$$,
                  $$VALUES ('203.0.114.61', 64601::bigint, 'cymru'), ('203.0.114.62', 64600, 'cymru')$$,
                  'one range per observed IP');
SELECT is(enrichment #>> '{cymru,registry}', 'ripencc', 'the document is kept under the source''s key')
FROM ipintel.ip_inventory WHERE ip = '203.0.114.61';
SELECT is((SELECT count(*) FROM ipintel.enrichment_state WHERE source = 'cymru'), 2::bigint,
          'freshness is recorded in enrichment_state');

SELECT * FROM finish();
ROLLBACK;
