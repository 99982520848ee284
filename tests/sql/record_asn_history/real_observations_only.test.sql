-- ASN history records what a source observed, never "this source does not know": MaxMind's
-- "not in my ASN file" and Team Cymru's "no match" leave no range, so Cymru's first answer for
-- such an IP is its first range, not a move (asn_moves stays empty). Each range names the
-- source that observed it.
BEGIN;
SELECT plan(11);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.1', '2026-11-01', '2026-11-01', 1),   -- in MaxMind's ASN file
    ('203.0.114.2', '2026-11-01', '2026-11-01', 1),   -- not in it; Cymru: NA (allocated, unrouted)
    ('203.0.114.3', '2026-11-01', '2026-11-01', 1),   -- not in it; Cymru: AS 64502
    ('203.0.114.4', '2026-11-01', '2026-11-01', 1);   -- not in it; Cymru: no match
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS mm_run \gset
SELECT ipintel.start_run('cymru', '{}'::jsonb) AS cy_run \gset

INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
SELECT :mm_run, 1, 'maxmind', ip::inet, '2026-11-02 00:00', r::jsonb FROM (VALUES
    ('203.0.114.1', '{"asn": 64501, "as_org": "KNOWN", "country": "NL", "asn_db": {"type": "GeoLite2-ASN"}}'),
    ('203.0.114.2', '{"asn": null, "as_org": null, "country": "RO", "asn_db": {"type": "GeoLite2-ASN"}}'),
    ('203.0.114.3', '{"asn": null, "as_org": null, "country": "US", "asn_db": {"type": "GeoLite2-ASN"}}'),
    ('203.0.114.4', '{"asn": null, "as_org": null, "country": null, "asn_db": {"type": "GeoLite2-ASN"}}')) AS v(ip, r);
SELECT results_eq($$SELECT merged FROM ipintel.merge_batch($$ || :mm_run || $$, 1)$$, $$VALUES (4::bigint)$$,
                  'MaxMind merges all four answers');
SELECT results_eq($$SELECT host(ip), asn, source FROM ipintel.ip_asn_history ORDER BY ip$$,
                  $$VALUES ('203.0.114.1', 64501::bigint, 'maxmind')$$,
                  'only the IP the ASN file knows gets a range');

INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
SELECT :cy_run, 2, 'cymru', ip::inet, '2026-11-03 00:00', r::jsonb FROM (VALUES
    ('203.0.114.2', '{"found": true, "asn": null, "prefix": null, "registered_country": "RO"}'),
    ('203.0.114.3', '{"found": true, "asn": 64502, "prefix": "203.0.114.0/24", "registered_country": "US", "as_name": "NEW"}'),
    ('203.0.114.4', '{"found": false, "asn": null, "origins": []}')) AS v(ip, r);
SELECT results_eq($$SELECT merged FROM ipintel.merge_batch($$ || :cy_run || $$, 2)$$, $$VALUES (3::bigint)$$,
                  'Cymru merges its three answers');
SELECT results_eq($$SELECT host(ip), asn, source, lower(valid) FROM ipintel.ip_asn_history ORDER BY ip$$,
                  $$VALUES ('203.0.114.1', 64501::bigint, 'maxmind', '2026-11-02 00:00'::timestamptz),
                           ('203.0.114.2', NULL, 'cymru', '2026-11-03 00:00'),
                           ('203.0.114.3', 64502, 'cymru', '2026-11-03 00:00')$$,
                  'NA is a real observation (unrouted); "no match" is none');
SELECT is_empty($$SELECT 1 FROM ipintel.asn_moves$$, 'no move on the first run: nothing moved from an unknown');
SELECT is(current_asn, 64502::bigint, 'Cymru''s origin is current_asn') FROM ipintel.ip_inventory WHERE ip = '203.0.114.3';

-- A real move later: Cymru sees 203.0.114.3 announced by another AS.
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result) VALUES
    (:cy_run, 3, 'cymru', '203.0.114.3', '2026-11-20 00:00', '{"found": true, "asn": 64503, "registered_country": "US", "as_name": "OTHER"}');
SELECT results_eq($$SELECT merged FROM ipintel.merge_batch($$ || :cy_run || $$, 3)$$, $$VALUES (1::bigint)$$,
                  'a later Cymru answer merges');
SELECT results_eq($$SELECT host(ip), from_asn, to_asn, moved_at, source FROM ipintel.asn_moves$$,
                  $$VALUES ('203.0.114.3', 64502::bigint, 64503::bigint, '2026-11-20 00:00'::timestamptz, 'cymru')$$,
                  'a real change of origin is one move');

-- Called directly: parallel arrays, one observing source per IP.
INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.5'), ('203.0.114.6');
SELECT is(ipintel.record_asn_history(ARRAY['cymru', 'maxmind'], ARRAY['203.0.114.5', '203.0.114.6']::inet[],
                                     ARRAY[64502, 64501]::bigint[], ARRAY['2026-11-21', '2026-11-22']::timestamptz[]),
          ARRAY[64501, 64502]::bigint[], 'returns the ASNs whose counts may change');
SELECT results_eq($$SELECT host(ip), asn, source, lower(valid) FROM ipintel.ip_asn_history
                    WHERE ip IN ('203.0.114.5', '203.0.114.6') ORDER BY ip$$,
                  $$VALUES ('203.0.114.5', 64502::bigint, 'cymru', '2026-11-21'::timestamptz),
                           ('203.0.114.6', 64501, 'maxmind', '2026-11-22')$$,
                  'each first range names the source that observed it');
SELECT is(ipintel.record_asn_history(ARRAY['cymru'], ARRAY['203.0.114.3']::inet[], ARRAY[64503]::bigint[],
                                     ARRAY['2026-11-25']::timestamptz[]),
          '{}'::bigint[], 'the current ASN observed again: nothing to record');

SELECT * FROM finish();
ROLLBACK;
