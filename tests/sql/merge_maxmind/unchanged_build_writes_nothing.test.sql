-- merge_maxmind() (MaxMind's own step: its AS names into asn_inventory) within merge_batch:
-- freshness is state, not part of the document. A second merge of the same facts (the same build
-- read again) writes no row of the tiers and moves only enrichment_state.fetched_at; a changed
-- fact rewrites that IP's document and resolved columns and moves changed_at.
-- All in one transaction, where every row version has the same xmin: a rewritten row shows as a
-- new ctid (the old version is still there, so the new one cannot take its place).
BEGIN;
SELECT plan(12);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.51', '2026-11-01', '2026-11-01', 1),
    ('203.0.114.52', '2026-11-01', '2026-11-01', 1);

-- What the loader reads from the files (merge_batch empties staging, so each pass restages).
CREATE TEMP TABLE answers (ip inet, result jsonb);
INSERT INTO answers VALUES
    ('203.0.114.51', '{"found": true, "country": "NL", "asn": 64551, "as_org": "FIRST", "asn_db": {"type": "GeoLite2-ASN"}}'),
    ('203.0.114.52', '{"found": true, "country": "DE", "asn": 64552, "as_org": "SECOND", "asn_db": {"type": "GeoLite2-ASN"}}');

-- The loader stages the facts, and the build of the files beside them.
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run1 \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result)
SELECT :run1, 801, 'maxmind', ip, '2026-11-02 00:00', 100, result FROM answers;
SELECT results_eq($$SELECT merged FROM ipintel.merge_batch($$ || :run1 || $$, 801)$$,
                  $$VALUES (2::bigint)$$, 'the first answers are merged');
SELECT is(enrichment -> 'maxmind',
          '{"found": true, "country": "NL", "asn": 64551, "as_org": "FIRST", "asn_db": {"type": "GeoLite2-ASN"}}'::jsonb,
          'the document is the facts: no fetch time, no build')
FROM ipintel.ip_inventory WHERE ip = '203.0.114.51';
SELECT results_eq($$SELECT host(ip), fetched_at, build, changed_at FROM ipintel.enrichment_state ORDER BY ip$$,
                  $$VALUES ('203.0.114.51', '2026-11-02 00:00'::timestamptz, 100::bigint, '2026-11-02 00:00'::timestamptz),
                           ('203.0.114.52', '2026-11-02 00:00', 100, '2026-11-02 00:00')$$,
                  'enrichment_state: fetched, from build 100, facts new');
SELECT results_eq($$SELECT asn, as_name, sources FROM ipintel.asn_inventory ORDER BY asn$$,
                  $$VALUES (64551::bigint, 'FIRST', '{"maxmind": {"as_name": "FIRST"}}'::jsonb),
                           (64552, 'SECOND', '{"maxmind": {"as_name": "SECOND"}}')$$,
                  'merge_maxmind: the AS names of the ASN file, under MaxMind''s key');

CREATE TEMP TABLE versions AS
SELECT 'ip_inventory' AS tier, host(ip) AS k, ctid::text AS v FROM ipintel.ip_inventory
UNION ALL SELECT 'asn_inventory', asn::text, ctid::text FROM ipintel.asn_inventory
UNION ALL SELECT 'ip_asn_history', host(ip), ctid::text FROM ipintel.ip_asn_history;

-- The same build read again a week later (ipintel enrich --force): the same facts.
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run2 \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result)
SELECT :run2, 802, 'maxmind', ip, '2026-11-09 00:00', 100, result FROM answers;
SELECT results_eq($$SELECT merged FROM ipintel.merge_batch($$ || :run2 || $$, 802)$$,
                  $$VALUES (2::bigint)$$, 'the same answers are merged again');
SELECT set_eq($$SELECT 'ip_inventory' AS tier, host(ip) AS k, ctid::text AS v FROM ipintel.ip_inventory
                UNION ALL SELECT 'asn_inventory', asn::text, ctid::text FROM ipintel.asn_inventory
                UNION ALL SELECT 'ip_asn_history', host(ip), ctid::text FROM ipintel.ip_asn_history$$,
              $$SELECT * FROM versions$$,
              'no row of ip_inventory, asn_inventory or ip_asn_history is written');
SELECT results_eq($$SELECT host(ip), fetched_at, changed_at FROM ipintel.enrichment_state ORDER BY ip$$,
                  $$VALUES ('203.0.114.51', '2026-11-09 00:00'::timestamptz, '2026-11-02 00:00'::timestamptz),
                           ('203.0.114.52', '2026-11-09 00:00', '2026-11-02 00:00')$$,
                  'only the fetch time moves; the facts date from the first answer');

-- A newer build moves 203.0.114.52 to another country; 203.0.114.51 stays as it was.
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run3 \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result)
SELECT :run3, 803, 'maxmind', ip, '2026-11-16 00:00', 101,
       CASE WHEN ip = '203.0.114.52' THEN jsonb_set(result, '{country}', '"AT"') ELSE result END
FROM answers;
SELECT results_eq($$SELECT merged FROM ipintel.merge_batch($$ || :run3 || $$, 803)$$,
                  $$VALUES (2::bigint)$$, 'both answers of the newer build are merged');
SELECT results_eq($$SELECT host(i.ip), i.ctid::text = v.v FROM ipintel.ip_inventory i
                    JOIN versions v ON v.tier = 'ip_inventory' AND v.k = host(i.ip) ORDER BY i.ip$$,
                  $$VALUES ('203.0.114.51', true), ('203.0.114.52', false)$$,
                  'only the IP whose facts changed is rewritten');
SELECT results_eq($$SELECT host(ip), geo_country, geo_country_source, enrichment #>> '{maxmind,country}'
                    FROM ipintel.ip_inventory ORDER BY ip$$,
                  $$VALUES ('203.0.114.51', 'NL', 'maxmind', 'NL'), ('203.0.114.52', 'AT', 'maxmind', 'AT')$$,
                  'the new fact is in the document and its resolved column');
SELECT results_eq($$SELECT host(ip), fetched_at, build, changed_at FROM ipintel.enrichment_state ORDER BY ip$$,
                  $$VALUES ('203.0.114.51', '2026-11-16 00:00'::timestamptz, 101::bigint, '2026-11-02 00:00'::timestamptz),
                           ('203.0.114.52', '2026-11-16 00:00', 101, '2026-11-16 00:00')$$,
                  'both were fetched from build 101; changed_at moves where the facts changed');
SELECT set_eq($$SELECT 'asn_inventory' AS tier, asn::text AS k, ctid::text AS v FROM ipintel.asn_inventory$$,
              $$SELECT * FROM versions WHERE tier = 'asn_inventory'$$,
              'the AS names did not change: no asn_inventory row is written');

SELECT * FROM finish();
ROLLBACK;
