-- ips_due() finds its candidates first (never answered: an anti-join of the primary keys;
-- answered before the latest TTL cutoff in force, or from an older build) and reads only those
-- rows of ip_inventory. It must return exactly what the full scan of every IP returns: the
-- rule written out plainly below, on 3,000 IPs with mixed classes, ages, builds and failures,
-- for every source, with and without a newer build, a limit, a list of IPs, and forced.
BEGIN;
SELECT plan(7);

SELECT setseed(0.15);
INSERT INTO ipintel.asn_inventory (asn) VALUES (64500);
INSERT INTO ipintel.ip_inventory (ip, last_seen, session_count, current_asn, current_asn_source, ip_type)
SELECT ('100.' || (g / 250) || '.' || (g % 250) || '.7')::inet,
       now() - (g % 97) * interval '1 hour', 1 + g % 4,
       CASE WHEN g % 3 = 0 THEN 64500 END, CASE WHEN g % 3 = 0 THEN 'maxmind' END,
       (ARRAY['cloud', 'residential', 'routed', 'unknown', 'hosting'])[1 + g % 5]
FROM generate_series(1, 3000) g;
-- A few bogons (198.18.0.0/15): never due, whatever their state.
INSERT INTO ipintel.ip_inventory (ip, last_seen) SELECT ('198.18.0.' || g)::inet, now() FROM generate_series(1, 20) g;
-- Answers of every age (up to 40 days: past every TTL in force) and of three builds.
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at)
SELECT i.ip, s.source, now() - random() * interval '40 days',
       CASE WHEN s.source IN ('maxmind', 'ipinfo', 'dbip') THEN 100 + (random() * 2)::int END, now() - interval '41 days'
FROM ipintel.ip_inventory i CROSS JOIN ipintel.enrichment_policy s
WHERE random() < 0.7;
INSERT INTO ipintel.enrichment_runs (source) VALUES ('greynoise');
INSERT INTO ipintel.enrichment_failures (run_id, source, ip, error, retryable, retry_after)
SELECT (SELECT max(run_id) FROM ipintel.enrichment_runs), 'greynoise', i.ip, 'test', random() < 0.5,
       now() + (random() - 0.5) * interval '2 hours'
FROM ipintel.ip_inventory i WHERE random() < 0.05;
UPDATE ipintel.enrichment_policy SET min_session_count = 3, or_login_success = false WHERE source = 'dshield';
-- Statistics of this data (ANALYZE sees this transaction's rows): planned on whatever autovacuum
-- last saw of these tables, in the middle of the suite, the comparison below once ran for 20
-- minutes at full CPU instead of a fraction of a second.
ANALYZE ipintel.ip_inventory, ipintel.enrichment_state, ipintel.enrichment_failures, ipintel.enrichment_runs;

-- The rule over every IP: never answered, stale by class or source TTL, or an older build;
-- never a bogon; the policy's filters; no open failure that says wait.
CREATE TEMP VIEW full_scan AS
SELECT p.source, b.build, i.ip, i.last_seen
FROM ipintel.ip_inventory i
CROSS JOIN ipintel.enrichment_policy p
CROSS JOIN (VALUES (101::bigint), (102), (103)) b(build)
LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
WHERE NOT i.is_bogon
  AND (e.ip IS NULL
       OR (p.kind <> 'offline_database' AND e.fetched_at < now() - coalesce(t.ttl, p.ttl))
       OR e.build < b.build)
  AND NOT (e.ip IS NULL AND p.skip_when_asn_known AND i.current_asn IS NOT NULL)
  AND NOT (p.min_session_count IS NOT NULL AND i.session_count < p.min_session_count)
  AND NOT EXISTS (SELECT 1 FROM ipintel.enrichment_failures f
                  WHERE f.source = p.source AND f.ip = i.ip AND f.resolved_at IS NULL
                    AND (NOT f.retryable OR f.retry_after > now()));

SELECT cmp_ok((SELECT count(DISTINCT ip)::int FROM full_scan WHERE build = 101), '>', 1000, 'the data leaves many IPs due');
SELECT ok((SELECT count(*) FROM full_scan WHERE build = 101) < (SELECT count(*) FROM full_scan WHERE build = 103),
          'and a newer build makes more due');

SELECT set_eq(
    $$SELECT p.source, b.build, d.ip, d.last_seen FROM ipintel.enrichment_policy p
      CROSS JOIN (VALUES (101::bigint), (102), (103)) b(build)
      CROSS JOIN LATERAL ipintel.ips_due(p.source, NULL, false, NULL, b.build) d$$,
    $$SELECT source, build, ip, last_seen FROM full_scan$$,
    'every source and build: the same IPs as the full scan');
SELECT set_eq(
    $$SELECT p.source, d.ip FROM ipintel.enrichment_policy p CROSS JOIN LATERAL ipintel.ips_due(p.source) d$$,
    $$SELECT source, ip FROM full_scan WHERE build = 101 AND source NOT IN ('maxmind', 'ipinfo', 'dbip')
      UNION ALL
      SELECT p.source, i.ip FROM ipintel.enrichment_policy p
      JOIN ipintel.ip_inventory i ON NOT i.is_bogon
      LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
      WHERE p.source IN ('maxmind', 'ipinfo', 'dbip') AND e.ip IS NULL
        AND NOT EXISTS (SELECT 1 FROM ipintel.enrichment_failures f WHERE f.source = p.source AND f.ip = i.ip)$$,
    'no build given: an offline database''s answers stay, whatever their age');
SELECT results_eq(
    $$SELECT ip FROM ipintel.ips_due('greynoise', 25)$$,
    $$SELECT ip FROM full_scan WHERE source = 'greynoise' AND build = 101 ORDER BY last_seen DESC NULLS LAST, ip LIMIT 25$$,
    'a limit keeps the most recently seen, in order');
SELECT set_eq(
    $$SELECT ip FROM ipintel.ips_due('cymru', NULL, false,
                                     ARRAY(SELECT ip FROM ipintel.ip_inventory ORDER BY ip LIMIT 200) || '192.0.2.1'::inet
                                     || ARRAY(SELECT ip FROM ipintel.ip_inventory ORDER BY ip LIMIT 10))$$,
    $$SELECT ip FROM full_scan WHERE source = 'cymru' AND build = 101
      AND ip IN (SELECT ip FROM ipintel.ip_inventory ORDER BY ip LIMIT 200)$$,
    'a list of IPs (one twice, one unknown): only its due IPs, once each');
SELECT set_eq($$SELECT ip FROM ipintel.ips_due('cymru', NULL, true)$$,
              $$SELECT ip FROM ipintel.ip_inventory WHERE NOT is_bogon$$, 'forced: every IP but the bogons');

SELECT * FROM finish();
ROLLBACK;
