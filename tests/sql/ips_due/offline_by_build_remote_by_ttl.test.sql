-- An answer of an offline database (enrichment_policy.kind offline_database: MaxMind) does not
-- go stale by time: reading the same build again cannot say anything new, so the IP is due only
-- for a newer build. A remote service's answer is due once older than the source's ttl. The
-- same rule (answer_is_stale) decides enrichment_coverage and snapshot_backlog.
BEGIN;
SELECT plan(9);

INSERT INTO ipintel.ip_inventory (ip, last_seen, session_count, enrichment) VALUES
    ('203.0.114.61', now() - interval '1 hour', 1,
     '{"maxmind": {"country": "NL", "asn": null}, "cymru": {"found": true, "asn": 64561}, "greynoise": {"noise": false}}');
-- Answered long ago, by ttl: maxmind 7 days (30 ago), cymru 30 days (29 ago), greynoise 7 days (8 ago).
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at) VALUES
    ('203.0.114.61', 'maxmind', now() - interval '30 days', 100, now() - interval '30 days'),
    ('203.0.114.61', 'cymru', now() - interval '29 days', NULL, now() - interval '29 days'),
    ('203.0.114.61', 'greynoise', now() - interval '8 days', NULL, now() - interval '8 days');
-- The other offline databases (IPinfo Lite, DB-IP Lite) are not installed: their last pass was
-- skipped, as `ipintel enrich` records it, so no snapshot waits for them.
SELECT ipintel_tests.skipped_pass(s) FROM unnest(ARRAY['ipinfo', 'dbip']) s;
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('s-61', now() - interval '1 hour', now(), '203.0.114.61');

SELECT is_empty($$SELECT 1 FROM ipintel.ips_due('maxmind', p_current_build => 100)$$,
                'offline: older than the ttl, the same build installed: not due');
SELECT is_empty($$SELECT 1 FROM ipintel.ips_due('maxmind')$$, 'offline: no build given: not due either');
SELECT is((SELECT array_agg(host(ip)) FROM ipintel.ips_due('maxmind', p_current_build => 101)), ARRAY['203.0.114.61'],
          'offline: due once a newer build is installed');
SELECT is((SELECT array_agg(host(ip)) FROM ipintel.ips_due('greynoise')), ARRAY['203.0.114.61'],
          'remote: due once older than its ttl');
SELECT is_empty($$SELECT 1 FROM ipintel.ips_due('cymru')$$, 'remote: not due within its ttl');
UPDATE ipintel.enrichment_state SET fetched_at = now() - interval '31 days', changed_at = now() - interval '31 days'
WHERE source = 'cymru';
SELECT is((SELECT array_agg(host(ip)) FROM ipintel.ips_due('cymru')), ARRAY['203.0.114.61'],
          'remote: due after its ttl');

SELECT results_eq($$SELECT source, fresh, stale FROM ipintel.enrichment_coverage WHERE source IN ('cymru', 'greynoise', 'maxmind') ORDER BY source$$,
                  $$VALUES ('cymru', 0::bigint, 1::bigint), ('greynoise', 0, 1), ('maxmind', 1, 0)$$,
                  'enrichment_coverage: the old offline answer is fresh, the old remote ones stale');
SELECT is(waiting_for, ARRAY['cymru', 'dshield', 'greynoise'],
          'snapshot_backlog: a new session waits for fresh remote answers, not for MaxMind')
FROM ipintel.snapshot_backlog WHERE session_id = 's-61';
SELECT is(last_fetched_at, now() - interval '30 days', 'enrichment_coverage: last fetch time from enrichment_state')
FROM ipintel.enrichment_coverage WHERE source = 'maxmind';

SELECT * FROM finish();
ROLLBACK;
