-- take_snapshots works out the awaited sources once per IP and ingest time (revision 0061), by the
-- rule of snapshot_waits: sessions of one IP ingested at different times each compare their own
-- window, and take_snapshots leaves incomplete exactly the sessions snapshot_backlog shows waiting.
BEGIN;
SELECT plan(5);

-- DShield disabled, IPinfo Lite and DB-IP Lite not installed: GreyNoise is the one awaited source.
UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'dshield';
SELECT ipintel_tests.skipped_pass(s) FROM unnest(ARRAY['ipinfo', 'dbip']) s;
UPDATE ipintel.enrichment_policy SET snapshot_window = interval '10 days' WHERE source = 'greynoise';

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.21', '2026-11-01', '2026-11-20', 4),
    ('203.0.114.22', '2026-11-01', '2026-11-20', 1);
SELECT ipintel_tests.answer('maxmind', '{"203.0.114.21": {"country": "NL", "asn": 64500, "as_org": "AS-A", "asn_db": {"type": "GeoLite2-ASN"}},
                                         "203.0.114.22": {"country": "DE", "asn": 64501, "as_org": "AS-B", "asn_db": {"type": "GeoLite2-ASN"}}}',
                            now(), 1);
-- One IP, ingested at three times: two sessions by one chunk now, one 5 days ago (the GreyNoise
-- window still open), one 20 days ago (closed). Another IP's session, 20 days ago too.
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, created_at) VALUES
    ('now-1', '2026-11-20 12:00', '2026-11-20 12:05', '203.0.114.21', now()),
    ('now-2', '2026-11-20 13:00', '2026-11-20 13:05', '203.0.114.21', now()),
    ('5-days', '2026-11-15 12:00', '2026-11-15 12:05', '203.0.114.21', now() - interval '5 days'),
    ('20-days', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.21', now() - interval '20 days'),
    ('other-ip', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.22', now() - interval '20 days');

SELECT is(ipintel.take_snapshots(), 5::bigint, 'every session gets what MaxMind settles');
SELECT results_eq(
    $$SELECT session_id, snapshot_asn, snapshot_complete_at IS NOT NULL FROM ipintel.session_summaries
      WHERE source_ip IN ('203.0.114.21', '203.0.114.22') ORDER BY session_id$$,
    $$VALUES ('20-days', 64500::bigint, true), ('5-days', 64500::bigint, false), ('now-1', 64500::bigint, false),
             ('now-2', 64500::bigint, false), ('other-ip', 64501::bigint, true)$$,
    'a closed window completes its session; the same IP''s sessions ingested later still wait');
SELECT set_eq(
    $$SELECT session_id FROM ipintel.session_summaries WHERE snapshot_complete_at IS NULL$$,
    $$SELECT session_id FROM ipintel.snapshot_backlog WHERE waiting_for <> '{}'$$,
    'take_snapshots leaves incomplete exactly what snapshot_backlog shows waiting');
SELECT results_eq(
    $$SELECT session_id, window_closes_at = created_at + interval '10 days'
      FROM ipintel.snapshot_backlog b JOIN ipintel.session_summaries s USING (session_id) ORDER BY session_id$$,
    $$VALUES ('5-days', true), ('now-1', true), ('now-2', true)$$,
    'each waits until its own ingest time plus the window');

-- The window of the 5-day-old session closes: it alone completes.
UPDATE ipintel.enrichment_policy SET snapshot_window = interval '3 days' WHERE source = 'greynoise';
SELECT is(ipintel.take_snapshots(), 1::bigint, 'a shorter window completes the 5-day-old session alone');

SELECT * FROM finish();
ROLLBACK;
