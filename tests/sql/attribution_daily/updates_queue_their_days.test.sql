-- Revision 0065: no UPDATE trigger of session_summaries copies rows (transition tables); the
-- functions that update sessions queue the days they change themselves: merge_cowrie_events
-- (both days of a session whose first_event_at moves, only snapshotted sessions), take_snapshots,
-- redo_snapshots. Any other update queues every day (a NULL day), which roll_up_attribution
-- recounts, so the rollup is never left stale.
BEGIN;
SELECT plan(13);

SELECT is_empty(
    $$SELECT t.tgname FROM pg_trigger t
      WHERE t.tgrelid = 'ipintel.session_summaries'::regclass AND (t.tgtype & 16) <> 0
        AND (t.tgoldtable IS NOT NULL OR t.tgnewtable IS NOT NULL)$$,
    'no UPDATE trigger of session_summaries has a transition table');

UPDATE ipintel.enrichment_policy SET enabled = source IN ('maxmind', 'greynoise');
-- Earlier tests may have left days queued in this database: not ours, rolled up first.
SELECT ipintel.roll_up_attribution();

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen) VALUES
    ('203.0.114.7', '2026-11-01', '2026-11-01'), ('203.0.114.9', '2026-11-01', '2026-11-01');
SELECT ipintel_tests.answer('maxmind', '{
    "203.0.114.7": {"country": "NL", "asn": 64500, "as_org": "AS-A", "asn_db": {"type": "GeoLite2-ASN"}}}', now(), 1);
SELECT ipintel_tests.answer('greynoise', '{"203.0.114.7": {"observed": true, "noise": true, "riot": false}}', now());

-- A chunk: 'm1' of a settled IP (snapshotted in the merge), 'w1' of an IP no source answered.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-1, 1, 'cowrie.session.connect', '2026-11-20 10:00:00+00', 'm1', '203.0.114.7', 'hp1'),
       (-1, 2, 'cowrie.session.connect', '2026-11-20 11:00:00+00', 'w1', '203.0.114.9', 'hp1');
SELECT ipintel.merge_cowrie_events(-1);
SELECT bag_eq($$SELECT day FROM ipintel.attribution_dirty_days$$, $$VALUES ('2026-11-20'::date)$$,
              'the merge''s snapshot queued its day, once, and no NULL day');
SELECT ipintel.roll_up_attribution();

-- A later file brings an earlier event of m1 (the day before) and one of w1.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-2, 1, 'cowrie.login.failed', '2026-11-19 23:00:00+00', 'm1', '203.0.114.7', 'hp1'),
       (-2, 2, 'cowrie.login.failed', '2026-11-20 11:01:00+00', 'w1', '203.0.114.9', 'hp1');
SELECT ipintel.merge_cowrie_events(-2);
SELECT bag_eq($$SELECT DISTINCT day FROM ipintel.attribution_dirty_days$$,
              $$VALUES ('2026-11-19'::date), ('2026-11-20')$$,
              'a snapshotted session moved a day earlier: its new and old days are queued');
SELECT is((SELECT count(*) FROM ipintel.attribution_dirty_days WHERE day IS NULL), 0::bigint,
          'the merge''s update queued no NULL day');
SELECT ipintel.roll_up_attribution();
SELECT results_eq(
    $$SELECT day, asn, sessions, login_attempts FROM ipintel.attribution_daily
      WHERE day IN ('2026-11-19', '2026-11-20') AND asn IS NOT DISTINCT FROM 64500 ORDER BY day$$,
    $$VALUES ('2026-11-19'::date, 64500::bigint, 1::bigint, 1::bigint)$$,
    'rolled up: m1 counted on its new day with its login, gone from its old day');

-- take_snapshots fills w1's field no enabled source gives (is_known_attacker): its day is queued
-- by the statement, and the flag is off again when it returns.
SELECT ok(ipintel.take_snapshots() >= 1, 'take_snapshots fills w1');
SELECT bag_eq($$SELECT DISTINCT day FROM ipintel.attribution_dirty_days$$, $$VALUES ('2026-11-20'::date)$$,
              'take_snapshots queued the day it filled, and no NULL day');
SELECT is(coalesce(current_setting('ipintel.attribution_days_queued', true), ''), '',
          'the flag is off once take_snapshots returns');
SELECT ipintel.roll_up_attribution();

-- redo_snapshots: the reset and the fill after it each queue the day.
SELECT ipintel.redo_snapshots('2026-11-19', '2026-11-20', 'test: redo queues its days');
SELECT is((SELECT count(*) FROM ipintel.attribution_dirty_days WHERE day = '2026-11-19'), 2::bigint,
          'redo_snapshots queued the day it reset, and take_snapshots the day it filled again');
SELECT ipintel.roll_up_attribution();

-- Any other update: every day is queued, and recounted.
UPDATE ipintel.session_summaries SET sensor = 'hp2' WHERE session_id = 'm1';
SELECT results_eq($$SELECT day FROM ipintel.attribution_dirty_days$$, $$VALUES (NULL::date)$$,
                  'an update outside ipintel''s functions queues every day (a NULL day)');
SELECT ok(ipintel.roll_up_attribution() >= 2, 'roll_up_attribution recounts every day');
SELECT results_eq(
    $$SELECT day, sensor, sessions FROM ipintel.attribution_daily WHERE day = '2026-11-19'$$,
    $$VALUES ('2026-11-19'::date, 'hp2', 1::bigint)$$, 'm1 counted under its new sensor');
SELECT results_eq($$SELECT sum(violations)::bigint FROM ipintel.verify_attribution()$$, $$VALUES (0::bigint)$$,
                  'verify_attribution finds nothing');

SELECT * FROM finish();
ROLLBACK;
