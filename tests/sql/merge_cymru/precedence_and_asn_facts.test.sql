-- merge_cymru(), Cymru's own merge step (called by merge_batch): the AS facts of the batch (name,
-- registration country, RIR, allocation) land in asn_inventory, Cymru's name winning over
-- MaxMind's (as_name_rank). Around it merge_batch makes Cymru's origin (live BGP, asn_rank 1)
-- current_asn whatever MaxMind said, and the counts and history follow.
BEGIN;
SELECT plan(12);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.61', '2026-11-01', '2026-11-02', 3),
    ('203.0.114.62', '2026-11-01', '2026-11-01', 1);

-- MaxMind answered first: 203.0.114.61 is in AS 64600 by its ASN file.
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS mm_run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result) VALUES
    (:mm_run, 709, 'maxmind', '203.0.114.61', '2026-11-02', 100,
     '{"found": true, "country": "NL", "asn": 64600, "as_org": "MM-NAME", "asn_db": {"type": "GeoLite2-ASN"}}');
SELECT results_eq($$SELECT * FROM ipintel.merge_batch($$ || :mm_run || $$, 709)$$,
                  $$VALUES (1::bigint, 1::bigint, 0::bigint)$$, 'MaxMind''s answer merged');
SELECT results_eq($$SELECT asn, as_name, sources FROM ipintel.asn_inventory$$,
                  $$VALUES (64600::bigint, 'MM-NAME', '{"maxmind": {"as_name": "MM-NAME"}}'::jsonb)$$,
                  'MaxMind''s AS name, under its key, while no better-ranked source gave one');

SELECT ipintel.start_run('cymru', '{}'::jsonb) AS cy_run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) VALUES
    (:cy_run, 710, 'cymru', '203.0.114.61', '2026-11-03', '{"found": true, "asn": 64601, "registered_country": "NL",
        "registry": "ripencc", "allocated": "2004-02-03", "as_name": "EXAMPLE-NL, NL"}'),
    (:cy_run, 710, 'cymru', '203.0.114.62', '2026-11-03', '{"found": true, "asn": 64600, "registered_country": "US",
        "registry": "arin", "allocated": null, "as_name": "CYMRU-NAME, US"}');

SELECT results_eq($$SELECT * FROM ipintel.merge_batch($$ || :cy_run || $$, 710)$$,
                  $$VALUES (2::bigint, 2::bigint, 0::bigint)$$, 'both answers merged');
SELECT results_eq($$SELECT host(ip), current_asn, current_asn_source FROM ipintel.ip_inventory ORDER BY ip$$,
                  $$VALUES ('203.0.114.61', 64601::bigint, 'cymru'), ('203.0.114.62', 64600::bigint, 'cymru')$$,
                  'Cymru''s origin is current_asn, replacing MaxMind''s');
SELECT results_eq($$SELECT asn, as_name, as_country, rir, allocated FROM ipintel.asn_inventory ORDER BY asn$$,
                  $$VALUES (64600::bigint, 'CYMRU-NAME, US', 'US', 'arin', NULL::date),
                           (64601, 'EXAMPLE-NL, NL', 'NL', 'ripencc', '2004-02-03')$$,
                  'AS facts from Cymru: its name wins, no allocation date stays NULL');
SELECT is((SELECT sources ->> 'maxmind' FROM ipintel.asn_inventory WHERE asn = 64600), '{"as_name": "MM-NAME"}',
          'MaxMind''s AS facts are kept beside Cymru''s');
SELECT results_eq($$SELECT asn, ip_count, session_count FROM ipintel.asn_inventory ORDER BY asn$$,
                  $$VALUES (64600::bigint, 1::bigint, 1::bigint), (64601, 1, 3)$$,
                  'counts follow the IPs that moved');
SELECT results_eq($$SELECT host(ip), asn, source, lower(valid), upper(valid) FROM ipintel.ip_asn_history ORDER BY ip, lower(valid)$$,
                  $$VALUES ('203.0.114.61', 64600::bigint, 'maxmind', '2026-11-02'::timestamptz, '2026-11-03'::timestamptz),
                           ('203.0.114.61', 64601, 'cymru', '2026-11-03', NULL),
                           ('203.0.114.62', 64600, 'cymru', '2026-11-03', NULL)$$,
                  'history: MaxMind''s range closed where Cymru observed another origin');
SELECT is(enrichment #>> '{cymru,registry}', 'ripencc', 'the document is kept under the source''s key')
FROM ipintel.ip_inventory WHERE ip = '203.0.114.61';
SELECT is((SELECT count(*) FROM ipintel.enrichment_state WHERE source = 'cymru'), 2::bigint,
          'freshness is recorded in enrichment_state');

-- A newer MaxMind build with another AS name and ASN: Cymru's origin and name still win.
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result) VALUES
    (:mm_run, 711, 'maxmind', '203.0.114.61', '2026-11-10', 101,
     '{"found": true, "country": "NL", "asn": 64600, "as_org": "MM-NAME-2", "asn_db": {"type": "GeoLite2-ASN"}}');
SELECT FROM ipintel.merge_batch(:mm_run, 711);
SELECT results_eq($$SELECT current_asn, current_asn_source FROM ipintel.ip_inventory WHERE ip = '203.0.114.61'$$,
                  $$VALUES (64601::bigint, 'cymru')$$, 'a later MaxMind answer does not replace Cymru''s origin');
SELECT results_eq($$SELECT as_name, sources #>> '{maxmind,as_name}' FROM ipintel.asn_inventory WHERE asn = 64600$$,
                  $$VALUES ('CYMRU-NAME, US', 'MM-NAME-2')$$, 'nor Cymru''s AS name, though MaxMind''s facts are updated');

SELECT * FROM finish();
ROLLBACK;
