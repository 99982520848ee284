-- ips_due(): what each source must fetch, decided in SQL.
BEGIN;
SELECT plan(12);

INSERT INTO ipintel.asn_inventory (asn) VALUES (64500);
INSERT INTO ipintel.ip_inventory (ip, last_seen, session_count, enrichment, current_asn, current_asn_source) VALUES
    ('198.18.0.1', now(), 1, '{}', NULL, NULL),                                        -- bogon (benchmarking)
    ('203.0.114.1', now() - interval '1 hour', 1, '{}', NULL, NULL),                   -- never fetched
    ('203.0.114.2', now() - interval '2 hours', 3, '{"maxmind": {"asn": 64500}}', 64500, 'maxmind'),  -- ASN known
    ('203.0.114.3', now() - interval '3 hours', 1, '{"maxmind": {"asn": null}}', NULL, NULL),
    ('2001:4860::1', now() - interval '4 hours', 1, '{}', NULL, NULL);
-- When MaxMind answered, from which build, and what it said: state beside the documents.
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at, asn, asn_observed) VALUES
    ('203.0.114.2', 'maxmind', now() - interval '1 day', 100, now() - interval '1 day', 64500, true),
    ('203.0.114.3', 'maxmind', now() - interval '8 days', 100, now() - interval '8 days', NULL, false);

SELECT is(array_agg(host(ip) ORDER BY last_seen DESC), ARRAY['203.0.114.1', '2001:4860::1'],
          'maxmind: never fetched, most recent first, never the bogon (answers of the same build stay)')
FROM ipintel.ips_due('maxmind', p_current_build => 100);
SELECT is(array_agg(host(ip) ORDER BY last_seen DESC), ARRAY['203.0.114.1', '203.0.114.2', '203.0.114.3', '2001:4860::1'],
          'maxmind: a newer database build makes fresh results due')
FROM ipintel.ips_due('maxmind', p_current_build => 200);
SELECT is(array_agg(host(ip) ORDER BY last_seen DESC), ARRAY['203.0.114.1', '203.0.114.3', '2001:4860::1'],
          'cymru: IPs whose ASN a source already gave are skipped by default (skip_when_asn_known)')
FROM ipintel.ips_due('cymru');
UPDATE ipintel.enrichment_policy SET skip_when_asn_known = false WHERE source = 'cymru';
SELECT is(array_agg(host(ip) ORDER BY last_seen DESC), ARRAY['203.0.114.1', '203.0.114.2', '203.0.114.3', '2001:4860::1'],
          'cymru without skip_when_asn_known: every never-fetched IP')
FROM ipintel.ips_due('cymru');
UPDATE ipintel.enrichment_policy SET skip_when_asn_known = true WHERE source = 'cymru';
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, changed_at) VALUES
    ('203.0.114.2', 'cymru', now() - interval '31 days', now() - interval '31 days');
SELECT ok(EXISTS (SELECT 1 FROM ipintel.ips_due('cymru') WHERE ip = '203.0.114.2'),
          'cymru: a stale answer is refreshed although the ASN is known');
DELETE FROM ipintel.enrichment_state WHERE source = 'cymru';
SELECT is((SELECT count(*)::int FROM ipintel.ips_due('cymru', p_force => true)), 4, 'force: every non-bogon IP');
SELECT is((SELECT count(*)::int FROM ipintel.ips_due('maxmind', 1)), 1, 'limit');
SELECT is((SELECT array_agg(host(ip)) FROM ipintel.ips_due('maxmind', p_ips => ARRAY['203.0.114.1'::inet, '198.18.0.1'])),
          ARRAY['203.0.114.1'], 'p_ips restricts, and still never a bogon');

UPDATE ipintel.enrichment_policy SET min_session_count = 2 WHERE source = 'greynoise';
SELECT is((SELECT array_agg(host(ip)) FROM ipintel.ips_due('greynoise')), ARRAY['203.0.114.2'],
          'greynoise with min_session_count = 2');

INSERT INTO ipintel.enrichment_runs (source) VALUES ('maxmind');
INSERT INTO ipintel.enrichment_failures (run_id, source, ip, error, retryable)
SELECT max(run_id), 'maxmind', '203.0.114.1', 'test: cannot be answered', false FROM ipintel.enrichment_runs;
SELECT ok(NOT EXISTS (SELECT 1 FROM ipintel.ips_due('maxmind') WHERE ip = '203.0.114.1'),
          'an open non-retryable failure takes the IP out of the due list');
UPDATE ipintel.enrichment_failures SET retryable = true, retry_after = now() + interval '1 hour';
SELECT ok(NOT EXISTS (SELECT 1 FROM ipintel.ips_due('maxmind') WHERE ip = '203.0.114.1'),
          'a retryable failure waits for its retry_after');
UPDATE ipintel.enrichment_failures SET retry_after = now() - interval '1 second';
SELECT ok(EXISTS (SELECT 1 FROM ipintel.ips_due('maxmind') WHERE ip = '203.0.114.1'),
          'and is due again after it');

SELECT * FROM finish();
ROLLBACK;
