-- take_snapshots(): each field is filled once its sources are no longer awaited, a known field
-- is never rewritten, a field still unknown is filled when its source first answers within the
-- source's snapshot_window, and a closed window settles the field with what is known.
BEGIN;
SELECT plan(24);

-- DShield's field has a test of its own (known_attacker.test.sql): disabled here, so nothing waits for it.
UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'dshield';

-- The other offline databases (IPinfo Lite, DB-IP Lite) are not installed: their last pass was
-- skipped, as `ipintel enrich` records it, so no snapshot waits for them.
SELECT ipintel_tests.skipped_pass(s) FROM unnest(ARRAY['ipinfo', 'dbip']) s;

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.7', '2026-10-01', '2026-11-01', 2),
    ('203.0.114.8', '2026-11-01', '2026-11-01', 1),
    ('10.1.2.3', '2026-11-01', '2026-11-01', 1);
-- 203.0.114.7: MaxMind knows ASN and country: Cymru is skipped (skip_when_asn_known), GreyNoise
-- is awaited. Two builds of its ASN file: AS 64500 until mid-October, then AS 64501.
SELECT ipintel_tests.answer('maxmind', '{"203.0.114.7": {"country": "NL", "asn": 64500, "as_org": "OLD-AS", "asn_db": {"type": "GeoLite2-ASN"}}}',
                      '2026-09-01', 1);
SELECT ipintel_tests.answer('maxmind', '{"203.0.114.7": {"country": "NL", "asn": 64501, "as_org": "NEW-AS", "asn_db": {"type": "GeoLite2-ASN"}}}',
                      '2026-10-15', 2);
-- 203.0.114.8: only GreyNoise has answered: ASN and country wait for MaxMind and Cymru.
SELECT ipintel_tests.answer('greynoise', '{"203.0.114.8": {"observed": true, "noise": true, "riot": false}}', now());
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('before-move', '2026-10-01 12:00', '2026-10-01 12:05', '203.0.114.7'),
    ('after-move', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.7'),
    ('greynoise-only', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.8'),
    ('bogon', '2026-11-01 12:00', '2026-11-01 12:05', '10.1.2.3');

SELECT is(ipintel.take_snapshots(), 4::bigint, 'every session gets what its sources already settle');
SELECT is(snapshot_asn, 64500::bigint, 'the ASN valid at the session''s time, not today''s')
FROM ipintel.session_summaries WHERE session_id = 'before-move';
SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_ip_type,
             snapshot_is_scanner_source, snapshot_complete_at IS NULL
      FROM ipintel.session_summaries WHERE session_id = 'after-move'$$,
    $$VALUES (64501::bigint, 'maxmind:history', 'NL', 'maxmind', NULL::text, NULL::text, true)$$,
    'ASN and country known from MaxMind; is_scanner and ip_type wait for GreyNoise');
SELECT results_eq(
    $$SELECT snapshot_asn_source, snapshot_country, snapshot_is_scanner, snapshot_is_scanner_source
      FROM ipintel.session_summaries WHERE session_id = 'greynoise-only'$$,
    $$VALUES (NULL::text, NULL::text, true, 'greynoise')$$,
    'a GreyNoise answer alone does not freeze country XX and no ASN: they stay unknown');
SELECT results_eq(
    $$SELECT snapshot_asn_source, snapshot_country_source, snapshot_ip_type, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'bogon'$$,
    $$VALUES ('bogon', 'bogon', 'bogon', true)$$,
    'a bogon is never asked: its snapshot is complete at once');
SELECT set_eq($$SELECT session_id FROM ipintel.snapshot_backlog$$,
              ARRAY['before-move', 'after-move', 'greynoise-only'], 'incomplete snapshots are visible');
SELECT is(waiting_for, ARRAY['greynoise'], 'the backlog says which source is awaited')
FROM ipintel.snapshot_backlog WHERE session_id = 'after-move';
SELECT is(waiting_for, ARRAY['cymru', 'maxmind'], 'no MaxMind answer yet: both ASN sources are awaited')
FROM ipintel.snapshot_backlog WHERE session_id = 'greynoise-only';

SELECT is(ipintel.take_snapshots(), 0::bigint, 'nothing new answered: nothing changes');

-- GreyNoise answers later (a small daily quota): the unknown fields are filled, known ones kept.
-- A newer MaxMind build meanwhile places the IP in DE.
SELECT ipintel_tests.answer('maxmind', '{"203.0.114.7": {"country": "DE", "asn": 64501, "as_org": "NEW-AS", "asn_db": {"type": "GeoLite2-ASN"}}}',
                      now(), 3);
SELECT ipintel_tests.answer('greynoise', '{"203.0.114.7": {"observed": true, "noise": true, "riot": false}}', now());
SELECT is(ipintel.take_snapshots(), 2::bigint, 'the late GreyNoise answer completes both sessions of the IP');
SELECT results_eq(
    $$SELECT snapshot_country, snapshot_is_scanner, snapshot_is_scanner_source, snapshot_ip_type,
             snapshot_ip_type_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'after-move'$$,
    $$VALUES ('NL', true, 'greynoise', 'scanner', 'greynoise', true)$$,
    'is_scanner and ip_type filled; the known country NL is kept although MaxMind now says DE');
SELECT is((snapshot_enrichment #>> '{maxmind,country}'), 'DE', 'snapshot_enrichment is the document as of the fill')
FROM ipintel.session_documents WHERE session_id = 'after-move';
SELECT is(snapshot_asn, 64500::bigint, 'the earlier ASN of before-move is kept')
FROM ipintel.session_summaries WHERE session_id = 'before-move';
SELECT is_empty($$SELECT 1 FROM ipintel.snapshot_backlog WHERE source_ip = '203.0.114.7'$$, 'complete: out of the backlog');

-- A known field is never rewritten, neither by hand nor by a later call.
SELECT throws_ok($$UPDATE ipintel.session_summaries SET snapshot_country = 'DE' WHERE session_id = 'after-move'$$,
                 '23000', NULL, 'rewriting a known field is refused by a trigger');
SELECT throws_ok($$UPDATE ipintel.session_summaries SET snapshot_is_scanner = false WHERE session_id = 'greynoise-only'$$,
                 '23000', NULL, 'a known field of an incomplete snapshot is refused too');
SELECT lives_ok($$UPDATE ipintel.session_summaries SET snapshot_country = 'FR', snapshot_country_source = 'maxmind'
                  WHERE session_id = 'greynoise-only'$$,
                'an unknown field of an incomplete snapshot may be filled');
SELECT is(ipintel.take_snapshots(), 0::bigint, 'a later call changes no complete snapshot');

-- A stale answer is due again: a new session of that IP waits for the refresh.
UPDATE ipintel.enrichment_state SET fetched_at = now() - interval '60 days', changed_at = now() - interval '60 days'
WHERE ip = '203.0.114.7' AND source = 'greynoise';
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('late', '2026-11-20 12:00', '2026-11-20 12:05', '203.0.114.7');
SELECT is(ipintel.take_snapshots(), 1::bigint, 'the new session gets ASN and country');
SELECT is(waiting_for, ARRAY['greynoise'], 'and waits for a fresh GreyNoise answer')
FROM ipintel.snapshot_backlog WHERE session_id = 'late';

-- The window: a session ingested longer ago than the source's snapshot_window stops waiting,
-- and its unknown fields are settled with what is known (MaxMind for greynoise-only: none).
UPDATE ipintel.session_summaries SET created_at = now() - interval '31 days' WHERE session_id = 'greynoise-only';
-- (and its key in the queue, whose created_at is its sessions': the IP's only session here)
UPDATE ipintel.snapshot_queue SET created_at = now() - interval '31 days' WHERE source_ip = '203.0.114.8';
SELECT is(ipintel.take_snapshots(), 1::bigint, 'a closed window completes the snapshot');
SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_is_scanner,
             snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'greynoise-only'$$,
    $$VALUES (NULL::bigint, 'none', 'FR', 'maxmind', true, true)$$,
    'settled with what is known: no source knew the ASN; the fields already known are kept');

-- A source that declines (policy: only IPs with many sessions) is not awaited.
UPDATE ipintel.enrichment_policy SET min_session_count = 10 WHERE source = 'greynoise';
SELECT is(ipintel.take_snapshots(), 1::bigint, 'GreyNoise declines the IP by policy: late completes');
SELECT results_eq(
    $$SELECT snapshot_is_scanner, snapshot_is_scanner_source FROM ipintel.session_summaries WHERE session_id = 'late'$$,
    $$VALUES (true, 'greynoise')$$,
    'with what GreyNoise had said (the stale answer)');

SELECT * FROM finish();
ROLLBACK;
