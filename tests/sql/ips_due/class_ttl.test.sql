-- Staleness by class: an IP whose class has a TTL of its own (ip_types.ttl: cloud, CDN, Tor,
-- hosting and VPN 7 days, residential 30 days) is due again after that TTL, whatever the source's;
-- other IPs after the source's. The same rule decides enrichment_coverage and the snapshots' waits.
BEGIN;
SELECT plan(7);

SELECT results_eq($$SELECT ip_type, ttl FROM ipintel.ip_types WHERE ttl IS NOT NULL ORDER BY precedence, ip_type$$,
    $$VALUES ('tor'::text, interval '7 days'), ('cdn', interval '7 days'), ('cloud', interval '7 days'),
             ('hosting', interval '7 days'), ('anonymizer', interval '7 days'), ('residential', interval '30 days')$$,
    'cloud and VPN (anonymizer) 7 days, residential 30 days');

-- Three IPs answered ten days ago by Team Cymru (TTL 30 days) and GreyNoise (TTL 7 days).
INSERT INTO ipintel.ip_inventory (ip, ip_type) VALUES ('3.5.140.9', 'cloud'), ('73.1.2.3', 'residential'),
                                                      ('5.6.7.8', 'routed');
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, changed_at)
SELECT ip::inet, s, now() - interval '10 days', now() - interval '10 days'
FROM unnest(ARRAY['3.5.140.9', '73.1.2.3', '5.6.7.8']) ip CROSS JOIN unnest(ARRAY['cymru', 'greynoise']) s;

SELECT results_eq($$SELECT host(ip) FROM ipintel.ips_due('cymru') ORDER BY ip$$, $$VALUES ('3.5.140.9')$$,
                  'Cymru (30 days): only the cloud IP (7 days) is due again after ten days');
SELECT results_eq($$SELECT host(ip) FROM ipintel.ips_due('greynoise') ORDER BY ip$$, $$VALUES ('3.5.140.9'), ('5.6.7.8')$$,
                  'GreyNoise (7 days): the residential IP (30 days) is not due, the others are');
SELECT results_eq($$SELECT source, fresh, stale FROM ipintel.enrichment_coverage WHERE source IN ('cymru', 'greynoise') ORDER BY 1$$,
                  $$VALUES ('cymru'::text, 2::bigint, 1::bigint), ('greynoise', 1, 2)$$,
                  'enrichment_coverage counts by the same rule');

-- A snapshot waits for a fresh answer by the same rule.
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
SELECT 's-' || ip, now(), now(), ip::inet FROM unnest(ARRAY['3.5.140.9', '73.1.2.3', '5.6.7.8']) ip;
SELECT results_eq($$SELECT host(ip) FROM ipintel.snapshot_pending_sources WHERE source = 'greynoise' ORDER BY ip$$,
                  $$VALUES ('3.5.140.9'), ('5.6.7.8')$$, 'snapshots wait for GreyNoise where its answer is stale by class');

-- The TTLs are data.
UPDATE ipintel.ip_types SET ttl = interval '60 days' WHERE ip_type = 'cloud';
UPDATE ipintel.ip_types SET ttl = NULL WHERE ip_type = 'residential';
SELECT is_empty($$SELECT 1 FROM ipintel.ips_due('cymru')$$, 'a longer cloud TTL: not due any more');
SELECT results_eq($$SELECT host(ip) FROM ipintel.ips_due('greynoise') ORDER BY ip$$, $$VALUES ('5.6.7.8'), ('73.1.2.3')$$,
                  'residential without a TTL of its own: the source''s');

SELECT * FROM finish();
ROLLBACK;
