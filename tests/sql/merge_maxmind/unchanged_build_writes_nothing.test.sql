-- merge_maxmind(): freshness is state, not part of the document. A second merge of the same
-- facts (the same build read again) writes no row of the tiers and moves only
-- enrichment_state.fetched_at; a changed fact rewrites that IP's document and moves changed_at.
-- All in one transaction, where every row version has the same xmin: a rewritten row shows as a
-- new ctid (the old version is still there, so the new one cannot take its place).
BEGIN;
SELECT plan(10);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.51', '2026-11-01', '2026-11-01', 1),
    ('203.0.114.52', '2026-11-01', '2026-11-01', 1);

-- The loader stages the facts, and the build of the files beside them.
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result) VALUES
    (1, 801, 'maxmind', '203.0.114.51', '2026-11-02 00:00', 100,
     '{"found": true, "country": "NL", "asn": 64551, "as_org": "FIRST", "asn_db": {"type": "GeoLite2-ASN"}}'),
    (1, 801, 'maxmind', '203.0.114.52', '2026-11-02 00:00', 100,
     '{"found": true, "country": "DE", "asn": 64552, "as_org": "SECOND", "asn_db": {"type": "GeoLite2-ASN"}}');
SELECT is(ipintel.merge_maxmind(1, 801), 2::bigint, 'the first answers are merged');
SELECT is(enrichment -> 'maxmind',
          '{"found": true, "country": "NL", "asn": 64551, "as_org": "FIRST", "asn_db": {"type": "GeoLite2-ASN"}}'::jsonb,
          'the document is the facts: no fetch time, no build')
FROM ipintel.ip_inventory WHERE ip = '203.0.114.51';
SELECT results_eq($$SELECT host(ip), fetched_at, build, changed_at FROM ipintel.enrichment_state ORDER BY ip$$,
                  $$VALUES ('203.0.114.51', '2026-11-02 00:00'::timestamptz, 100::bigint, '2026-11-02 00:00'::timestamptz),
                           ('203.0.114.52', '2026-11-02 00:00', 100, '2026-11-02 00:00')$$,
                  'enrichment_state: fetched, from build 100, facts new');

CREATE TEMP TABLE versions AS
SELECT 'ip_inventory' AS tier, host(ip) AS k, ctid::text AS v FROM ipintel.ip_inventory
UNION ALL SELECT 'asn_inventory', asn::text, ctid::text FROM ipintel.asn_inventory
UNION ALL SELECT 'ip_asn_history', host(ip), ctid::text FROM ipintel.ip_asn_history;

-- The same build read again a week later (ipintel enrich --force): the same facts.
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result)
SELECT 2, 802, 'maxmind', ip, '2026-11-09 00:00', 100, result
FROM ipintel_staging.enrichment_results WHERE batch_id = 801;
SELECT is(ipintel.merge_maxmind(2, 802), 2::bigint, 'the same answers are merged again');
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
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result)
SELECT 3, 803, 'maxmind', ip, '2026-11-16 00:00', 101,
       CASE WHEN ip = '203.0.114.52' THEN jsonb_set(result, '{country}', '"AT"') ELSE result END
FROM ipintel_staging.enrichment_results WHERE batch_id = 801;
SELECT is(ipintel.merge_maxmind(3, 803), 2::bigint, 'both answers of the newer build are merged');
SELECT results_eq($$SELECT host(i.ip), i.ctid::text = v.v FROM ipintel.ip_inventory i
                    JOIN versions v ON v.tier = 'ip_inventory' AND v.k = host(i.ip) ORDER BY i.ip$$,
                  $$VALUES ('203.0.114.51', true), ('203.0.114.52', false)$$,
                  'only the IP whose facts changed is rewritten');
SELECT results_eq($$SELECT host(ip), geo_country, enrichment #>> '{maxmind,country}' FROM ipintel.ip_inventory ORDER BY ip$$,
                  $$VALUES ('203.0.114.51', 'NL', 'NL'), ('203.0.114.52', 'AT', 'AT')$$,
                  'the new fact is in the document and its generated columns');
SELECT results_eq($$SELECT host(ip), fetched_at, build, changed_at FROM ipintel.enrichment_state ORDER BY ip$$,
                  $$VALUES ('203.0.114.51', '2026-11-16 00:00'::timestamptz, 101::bigint, '2026-11-02 00:00'::timestamptz),
                           ('203.0.114.52', '2026-11-16 00:00', 101, '2026-11-16 00:00')$$,
                  'both were fetched from build 101; changed_at moves where the facts changed');

SELECT * FROM finish();
ROLLBACK;
