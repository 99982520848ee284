-- A session-count threshold with or_login_success: an IP below min_session_count is declined
-- unless one of its sessions logged in (has_successful_login), by ips_due and by the snapshots'
-- awaited sources alike; and below_session_threshold is inlined (revision 0076), so the awaited
-- sources read ip_inventory's columns, never its whole row.
BEGIN;
SELECT plan(6);

UPDATE ipintel.enrichment_policy SET enabled = (source IN ('maxmind', 'greynoise'));
UPDATE ipintel.enrichment_policy SET min_session_count = 3, or_login_success = true WHERE source = 'greynoise';
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.1', now() - interval '1 hour', now() - interval '1 hour', 1),   -- one session, no login
    ('203.0.114.2', now() - interval '2 hours', now() - interval '2 hours', 1), -- one session, logged in
    ('203.0.114.3', now() - interval '3 hours', now() - interval '3 hours', 3); -- three sessions
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, login_attempts,
                                       login_successes) VALUES
    ('no-login', now() - interval '1 hour', now() - interval '1 hour', '203.0.114.1', 4, 0),
    ('logged-in', now() - interval '2 hours', now() - interval '2 hours', '203.0.114.2', 2, 1),
    ('third-a', now() - interval '3 hours', now() - interval '3 hours', '203.0.114.3', 1, 0),
    ('third-b', now() - interval '3 hours', now() - interval '3 hours', '203.0.114.3', 1, 0),
    ('third-c', now() - interval '3 hours', now() - interval '3 hours', '203.0.114.3', 1, 0);

SELECT is(ipintel.has_successful_login('203.0.114.2'), true, 'a session of the IP logged in');
SELECT is(ipintel.has_successful_login('203.0.114.1'), false, 'login attempts alone are no successful login');
SELECT is((SELECT array_agg(host(ip) ORDER BY ip) FROM ipintel.ips_due('greynoise')),
          ARRAY['203.0.114.2', '203.0.114.3'],
          'ips_due: below the threshold is asked only when it logged in; at the threshold always');
SELECT is((SELECT array_agg(host(ip) ORDER BY ip) FROM ipintel.snapshot_pending_sources WHERE source = 'greynoise'),
          ARRAY['203.0.114.2', '203.0.114.3'],
          'the snapshots wait for GreyNoise by the same rule (no ingest running)');

SELECT unalike(ipintel_tests.plan_of('SELECT * FROM ipintel.snapshot_pending_sources'), '%below_session_threshold%',
               'below_session_threshold is inlined into snapshot_pending_sources');
SELECT unalike(ipintel_tests.plan_of('SELECT * FROM ipintel.snapshot_pending_sources'), '%i.*%',
               'no whole ip_inventory row is formed for the awaited sources');

SELECT * FROM finish();
ROLLBACK;
