-- A session-count threshold (min_session_count) declines an IP for snapshots only when no ingest
-- is running. While `ipintel ingest` runs (it holds the advisory lock 'ipintel.ingest'), it may
-- still add the IP's sessions: a snapshot taken then (by an enrichment beside it, or by the
-- ingest's own chunks) leaves the threshold source's fields open, so the same logs give the same
-- snapshots whether enrich ran during the ingest or after it (tests/faults/test_concurrency.py).
-- Revision 0052; before it, both IPs below were settled 'none' at the first take_snapshots.
BEGIN;
SELECT plan(9);

UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'dshield';
SELECT ipintel_tests.skipped_pass(s) FROM unnest(ARRAY['ipinfo', 'dbip']) s;
-- GreyNoise is asked about IPs with at least 5 sessions only.
UPDATE ipintel.enrichment_policy SET min_session_count = 5 WHERE source = 'greynoise';

-- Two IPs MaxMind knows (Cymru is skipped: skip_when_asn_known), 3 sessions each so far.
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.20', '2026-11-01', '2026-11-01', 3),
    ('203.0.114.21', '2026-11-01', '2026-11-01', 3);
SELECT ipintel_tests.answer('maxmind', '{"203.0.114.20": {"country": "NL", "asn": 64500, "asn_db": {"type": "GeoLite2-ASN"}},
                                         "203.0.114.21": {"country": "DE", "asn": 64501, "asn_db": {"type": "GeoLite2-ASN"}}}',
                            now(), 1);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('stays-small', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.20'),
    ('grows', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.21');

-- An ingest is running (its lock, as the loader takes it: a session advisory lock).
SELECT pg_advisory_lock(hashtextextended('ipintel.ingest', 0));
SELECT ok(ipintel.ingest_is_running(), 'ingest_is_running sees the ingest''s advisory lock');
SELECT is(ipintel.take_snapshots(), 2::bigint, 'both sessions get what MaxMind settles');
SELECT results_eq(
    $$SELECT session_id, snapshot_asn_source, snapshot_is_scanner_source, snapshot_complete_at IS NULL
      FROM ipintel.session_summaries ORDER BY session_id$$,
    $$VALUES ('grows', 'maxmind:current', NULL::text, true), ('stays-small', 'maxmind:current', NULL, true)$$,
    'below the threshold while an ingest runs: is_scanner is left open, not settled ''none''');
SELECT results_eq(
    $$SELECT session_id, waiting_for FROM ipintel.snapshot_backlog ORDER BY session_id$$,
    $$VALUES ('grows', '{greynoise}'::text[]), ('stays-small', '{greynoise}'::text[])$$,
    'the backlog says they wait for GreyNoise');

-- The same ingest adds two more sessions of 203.0.114.21: now above the threshold.
UPDATE ipintel.ip_inventory SET session_count = 5 WHERE ip = '203.0.114.21';
SELECT is(ipintel.take_snapshots(), 0::bigint, 'nothing more is settled while the ingest runs');

-- The ingest ends; the next enrichment asks GreyNoise about the IP now above the threshold.
SELECT pg_advisory_unlock(hashtextextended('ipintel.ingest', 0));
SELECT ok(NOT ipintel.ingest_is_running(), 'no ingest once the lock is released');
SELECT ipintel_tests.answer('greynoise', '{"203.0.114.21": {"observed": true, "noise": true, "riot": false}}', now());
SELECT is(ipintel.take_snapshots(), 2::bigint, 'both snapshots complete once no ingest runs');
SELECT results_eq(
    $$SELECT snapshot_is_scanner, snapshot_is_scanner_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'grows'$$,
    $$VALUES (true, 'greynoise', true)$$,
    'the IP that crossed the threshold has GreyNoise''s answer, as if enrich had run after the ingest');
SELECT results_eq(
    $$SELECT snapshot_is_scanner, snapshot_is_scanner_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'stays-small'$$,
    $$VALUES (NULL::boolean, 'none', true)$$,
    'the IP still below it is declined by the policy: settled with what is known');

SELECT * FROM finish();
ROLLBACK;
