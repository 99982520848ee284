-- take_snapshots() and the known-attacker field (snapshot_is_known_attacker with
-- snapshot_threatfeeds, from one source): it waits for DShield (is_known_attacker_rank 1) while
-- DShield is awaited, is filled when it answers, is never rewritten, and is settled as none when
-- DShield's window closes; a bogon is never asked; an audited redo takes it again. The other
-- remote services are disabled here.
BEGIN;
SELECT plan(11);

UPDATE ipintel.enrichment_policy SET enabled = false WHERE source IN ('greynoise', 'cymru');
SELECT ipintel_tests.skipped_pass(s) FROM unnest(ARRAY['ipinfo', 'dbip']) s;

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.91', '2026-11-01', '2026-11-01', 1),
    ('203.0.114.92', '2026-11-01', '2026-11-01', 1),
    ('10.9.9.9', '2026-11-01', '2026-11-01', 1);
SELECT ipintel_tests.answer('maxmind', $${
    "203.0.114.91": {"found": true, "country": "NL", "asn": 64591, "as_org": "MM", "asn_db": {"type": "GeoLite2-ASN"}},
    "203.0.114.92": {"found": true, "country": "DE", "asn": 64592, "as_org": "MM", "asn_db": {"type": "GeoLite2-ASN"}}
}$$::jsonb, now(), 1);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('reported', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.91'),
    ('never-answered', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.92'),
    ('bogon', '2026-11-01 12:00', '2026-11-01 12:05', '10.9.9.9');

SELECT is(ipintel.take_snapshots(), 3::bigint, 'every session gets what is ready');
SELECT results_eq(
    $$SELECT session_id, snapshot_is_known_attacker_source, snapshot_country_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries ORDER BY session_id$$,
    $$VALUES ('bogon', 'bogon', 'bogon', true), ('never-answered', NULL, 'maxmind', false), ('reported', NULL, 'maxmind', false)$$,
    'the field waits for DShield (the others are ready); a bogon is never asked');
SELECT is(waiting_for, ARRAY['dshield'], 'the backlog names DShield') FROM ipintel.snapshot_backlog WHERE session_id = 'reported';
SELECT is(is_known_attacker_wait_rank, 1::bigint, 'the field''s wait rank') FROM ipintel.snapshot_waits WHERE session_id = 'reported';

SELECT ipintel_tests.answer('dshield', '{"203.0.114.91": {"count": 40, "attacks": 7, "threatfeeds": {"ciarmy": {}, "blocklistde22": {}}}}',
                            now());
SELECT is(ipintel.take_snapshots(), 1::bigint, 'DShield''s answer completes the reported session');
SELECT results_eq(
    $$SELECT snapshot_is_known_attacker, snapshot_threatfeeds, snapshot_is_known_attacker_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'reported'$$,
    $$VALUES (true, ARRAY['blocklistde22', 'ciarmy'], 'dshield', true)$$, 'known attacker and its feeds, from DShield');

SELECT throws_ok($$UPDATE ipintel.session_summaries SET snapshot_threatfeeds = '{}' WHERE session_id = 'reported'$$,
                 '23000', NULL, 'a known field is never rewritten');

-- The window: the session that DShield never answered is settled with what is known (nothing).
UPDATE ipintel.session_summaries SET created_at = now() - interval '31 days' WHERE session_id = 'never-answered';
-- (and its key in the queue, whose created_at is its sessions': the IP's only session here)
UPDATE ipintel.snapshot_queue SET created_at = now() - interval '31 days' WHERE source_ip = '203.0.114.92';
SELECT is(ipintel.take_snapshots(), 1::bigint, 'a closed window completes the snapshot');
SELECT results_eq(
    $$SELECT snapshot_is_known_attacker, snapshot_threatfeeds, snapshot_is_known_attacker_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'never-answered'$$,
    $$VALUES (NULL::boolean, NULL::text[], 'none', true)$$, 'no source said: none');

-- DShield no longer reports the IP; an audited redo takes the reported session's field again.
SELECT ipintel_tests.answer('dshield', '{"203.0.114.91": {"count": null, "threatfeeds": []}}', now());
SELECT results_eq($$SELECT sessions_reset, sessions_taken FROM ipintel.redo_snapshots('2026-11-01', '2026-11-02', 'test')$$,
                  $$VALUES (3::bigint, 3::bigint)$$, 'the redo resets and takes every session of the window');
SELECT results_eq(
    $$SELECT snapshot_is_known_attacker, snapshot_threatfeeds, snapshot_is_known_attacker_source
      FROM ipintel.session_summaries WHERE session_id = 'reported'$$,
    $$VALUES (false, '{}'::text[], 'dshield')$$, 'the field as DShield says it now');

SELECT * FROM finish();
ROLLBACK;
