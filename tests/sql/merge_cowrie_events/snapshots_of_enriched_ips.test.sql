-- merge_cowrie_events() takes the snapshots of its sessions whose IP is already enriched, by the
-- rule take_snapshots() follows after an enrichment; take_snapshots(ips) touches those IPs only.
BEGIN;
SELECT plan(14);

-- MaxMind and GreyNoise are the registered sources that run here; the others are switched off.
UPDATE ipintel.enrichment_policy SET enabled = source IN ('maxmind', 'greynoise');

-- 203.0.114.7: MaxMind and GreyNoise answered: settled. 203.0.114.8: MaxMind only, GreyNoise
-- still awaited. 203.0.114.9: known, never answered. 203.0.114.10: answered like .7, for the
-- comparison with take_snapshots() below.
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen) VALUES
    ('203.0.114.7', '2026-11-01', '2026-11-01'), ('203.0.114.8', '2026-11-01', '2026-11-01'),
    ('203.0.114.9', '2026-11-01', '2026-11-01'), ('203.0.114.10', '2026-11-01', '2026-11-01');
SELECT ipintel_tests.answer('maxmind', '{
    "203.0.114.7": {"country": "NL", "asn": 64500, "as_org": "AS-A", "asn_db": {"type": "GeoLite2-ASN"}},
    "203.0.114.8": {"country": "DE", "asn": 64501, "as_org": "AS-B", "asn_db": {"type": "GeoLite2-ASN"}},
    "203.0.114.10": {"country": "NL", "asn": 64500, "as_org": "AS-A", "asn_db": {"type": "GeoLite2-ASN"}}}', now(), 1);
SELECT ipintel_tests.answer('greynoise', '{
    "203.0.114.7": {"observed": true, "noise": true, "riot": false},
    "203.0.114.10": {"observed": true, "noise": true, "riot": false}}', now());

-- One chunk: a session from each IP, and one from an address never seen before.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-1, 1, 'cowrie.session.connect', '2026-11-20 10:00:00+00', 'settled', '203.0.114.7', 'hp1'),
       (-1, 2, 'cowrie.session.connect', '2026-11-20 10:00:01+00', 'awaited', '203.0.114.8', 'hp1'),
       (-1, 3, 'cowrie.session.connect', '2026-11-20 10:00:02+00', 'unanswered', '203.0.114.9', 'hp1'),
       (-1, 4, 'cowrie.session.connect', '2026-11-20 10:00:03+00', 'new-ip', '203.0.114.11', 'hp1'),
       (-1, 5, 'cowrie.session.connect', '2026-11-20 10:00:04+00', 'bogon', '10.1.2.3', 'hp1');
SELECT results_eq($$SELECT sessions_new FROM ipintel.merge_cowrie_events(-1)$$, $$VALUES (5::bigint)$$,
                  'the chunk is merged');

SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_is_scanner, snapshot_ip_type,
             snapshot_document IS NOT NULL, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'settled'$$,
    $$VALUES (64500::bigint, 'maxmind:current', 'NL', true, 'scanner', true, true)$$,
    'a session of a settled IP has its whole snapshot at ingest');
SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_country, snapshot_is_scanner_source, snapshot_at IS NOT NULL,
             snapshot_complete_at IS NULL
      FROM ipintel.session_summaries WHERE session_id = 'awaited'$$,
    $$VALUES (64501::bigint, 'DE', NULL::text, true, true)$$,
    'a session of an IP GreyNoise has not answered: what MaxMind settles, the rest waits');
SELECT is_empty($$SELECT 1 FROM ipintel.session_summaries
                  WHERE session_id IN ('unanswered', 'new-ip') AND snapshot_at IS NOT NULL$$,
                'sessions of IPs no source answered are left to the next take_snapshots()');
SELECT ok((SELECT snapshot_at IS NULL FROM ipintel.session_summaries WHERE session_id = 'bogon'),
          'a bogon is never answered: its session too is left to the next take_snapshots()');
SELECT ok(EXISTS (SELECT 1 FROM ipintel.attribution_dirty_days WHERE day = '2026-11-20'),
          'their day is queued for the attribution roll-up');

-- take_snapshots(ips) against take_snapshots(): the same values, and only for the IPs asked.
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('later-7', '2026-11-21 10:00', '2026-11-21 10:05', '203.0.114.7'),
    ('later-10', '2026-11-21 10:00', '2026-11-21 10:05', '203.0.114.10');
SELECT is(ipintel.take_snapshots(ARRAY['203.0.114.7']::inet[]), 1::bigint, 'take_snapshots(ips): one session taken');
SELECT ok((SELECT snapshot_at IS NULL FROM ipintel.session_summaries WHERE session_id = 'later-10'),
          'the session of an IP not asked is left alone');
SELECT is(ipintel.take_snapshots('{}'::inet[]), 0::bigint, 'no IP asked: nothing taken');
-- take_snapshots() takes later-10, the bogon's whole snapshot, and the field no enabled source
-- gives (is_known_attacker: DShield is off) of the two sessions whose IPs no source answered.
SELECT is(ipintel.take_snapshots(), 4::bigint, 'take_snapshots() takes the rest');
SELECT results_eq($$SELECT snapshot_asn_source, snapshot_complete_at IS NOT NULL FROM ipintel.session_summaries
                    WHERE session_id = 'bogon'$$,
                  $$VALUES ('bogon', true)$$, 'the bogon''s snapshot is complete');
SELECT is((SELECT count(*) FROM ipintel.session_summaries
           WHERE session_id IN ('unanswered', 'new-ip') AND snapshot_is_known_attacker_source = 'none'
             AND snapshot_asn_source IS NULL), 2::bigint, 'what no source was awaited for, and no more');
SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_is_scanner,
             snapshot_is_scanner_source, snapshot_ip_type, snapshot_ip_type_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'later-7'$$,
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_is_scanner,
             snapshot_is_scanner_source, snapshot_ip_type, snapshot_ip_type_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'later-10'$$,
    'for two IPs with the same answers, both forms take the same snapshot');
SELECT is((SELECT count(*) FROM ipintel.snapshot_backlog WHERE session_id IN ('later-7', 'later-10', 'settled')),
          0::bigint, 'complete: out of the backlog');

SELECT * FROM finish();
ROLLBACK;
