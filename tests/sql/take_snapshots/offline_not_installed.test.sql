-- take_snapshots() and an offline database that is not installed: `ipintel enrich` records its
-- pass as skipped (none of its files found), and no snapshot waits for it, so snapshots complete
-- as before on a machine without IPinfo Lite or DB-IP Lite files. A source never run yet is
-- awaited (nobody knows); once a pass finds its files, new sessions wait for it again. The rule
-- holds for remote services too (since 0028): one skipped for want of a key or contact
-- (GreyNoise, DShield) is not awaited until a pass runs again. DShield is not this test's
-- subject: disabled.
BEGIN;
SELECT plan(9);

UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'dshield';

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.71', '2026-11-01', '2026-11-01', 1),
    ('203.0.114.72', '2026-11-01', '2026-11-01', 1);
SELECT ipintel_tests.answer('maxmind', '{"203.0.114.71": {"found": true, "country": "NL", "asn": 64571, "as_org": "MM",
                                                    "asn_db": {"type": "GeoLite2-ASN"}}}', now(), 1);
SELECT ipintel_tests.answer('greynoise', '{"203.0.114.71": {"noise": false, "riot": false}}', now());
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('s-71', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.71');

SELECT is(waiting_for, ARRAY['dbip', 'ipinfo'], 'never run: IPinfo and DB-IP are awaited (Cymru declines a known ASN)')
FROM ipintel.snapshot_backlog WHERE session_id = 's-71';
SELECT is(ipintel.take_snapshots(), 1::bigint, 'the ready fields are filled');
SELECT results_eq($$SELECT snapshot_asn, snapshot_asn_source, snapshot_country_source, snapshot_complete_at IS NULL
                    FROM ipintel.session_summaries WHERE session_id = 's-71'$$,
                  $$VALUES (64571::bigint, 'maxmind:current', 'maxmind', true)$$,
                  'MaxMind ranks before both for ASN and country, but the snapshot is not complete');

-- `ipintel enrich` on a machine without their files: both passes skipped.
SELECT ipintel_tests.skipped_pass('ipinfo'), ipintel_tests.skipped_pass('dbip');
SELECT is_empty($$SELECT 1 FROM ipintel.snapshot_pending_sources WHERE source IN ('ipinfo', 'dbip')$$,
                'skipped for want of files: not installed, not awaited');
SELECT is(ipintel.take_snapshots(), 1::bigint, 'the snapshot completes');
SELECT is_empty($$SELECT 1 FROM ipintel.snapshot_backlog$$, 'nothing waits');

-- IPinfo Lite installed later: its pass answers; a new session of a new IP waits for it again.
SELECT ipintel_tests.answer('ipinfo', '{"203.0.114.71": {"found": true, "asn": 64571, "country_code": "NL"}}', now(), 1);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('s-72', '2026-11-02 12:00', '2026-11-02 12:05', '203.0.114.72');
SELECT is(waiting_for, ARRAY['cymru', 'greynoise', 'ipinfo', 'maxmind'],
          'IPinfo installed: awaited again; DB-IP still not installed')
FROM ipintel.snapshot_backlog WHERE session_id = 's-72';

-- A remote service skipped (no key) is not awaited either: it cannot answer until it is set up.
SELECT ipintel_tests.skipped_pass('greynoise');
SELECT ok(NOT 'greynoise' = ANY (waiting_for), 'a skipped remote service is not awaited')
FROM ipintel.snapshot_backlog WHERE session_id = 's-72';
-- ... and a disabled offline source is not awaited, whatever its runs say.
UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'ipinfo';
SELECT ok(NOT 'ipinfo' = ANY (waiting_for), 'a disabled offline source is not awaited')
FROM ipintel.snapshot_backlog WHERE session_id = 's-72';

SELECT * FROM finish();
ROLLBACK;
