-- asn_sessions() while the roll-up queue holds a NULL day (an UPDATE of sessions by hand queues
-- every day): the ASN's sessions are looked for on every day, not only on the days
-- attribution_asn_daily lists for it (revision 0079; before, the NULL day matched no session).
BEGIN;
SELECT plan(4);

-- Earlier tests may have left days queued in this database: not ours, rolled up first.
SELECT ipintel.roll_up_attribution();
INSERT INTO ipintel.asn_inventory (asn) VALUES (64520), (64521);
INSERT INTO ipintel.ip_inventory (ip, current_asn) VALUES ('203.0.115.1', 64520), ('203.0.115.2', 64521);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_asn,
                                       snapshot_asn_source, snapshot_at, snapshot_document) VALUES
    ('n1', '2026-11-10 00:00+00', '2026-11-10 00:05+00', '203.0.115.1', 64520, 'cymru:current', '2026-11-10 01:00+00', ipintel_tests.document('{}'));
-- a session without a snapshot on another day, then rolled up: attribution_asn_daily lists
-- 2026-11-10 for 64520 and nothing for 64521
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('n2', '2026-11-20 00:00+00', '2026-11-20 00:05+00', '203.0.115.1');
SELECT ipintel.roll_up_attribution();

-- By hand: n2's unknown ASN filled with 64521 (a plain UPDATE: every day queued, a NULL day).
UPDATE ipintel.session_summaries
SET snapshot_asn = 64521, snapshot_asn_source = 'by-hand', snapshot_at = '2026-11-21 00:00+00',
    snapshot_document = ipintel_tests.document('{}')
WHERE session_id = 'n2';
SELECT is((SELECT count(*) FROM ipintel.attribution_dirty_days WHERE day IS NULL), 1::bigint,
          'the update by hand queued a NULL day');
SELECT set_eq($$SELECT session_id FROM ipintel.asn_sessions(64521)$$, ARRAY['n2'],
              'a NULL day queued: the session given the ASN by hand is found, on a day the rollup does not list for it');
SELECT set_eq($$SELECT session_id FROM ipintel.asn_sessions(64520)$$, ARRAY['n1'],
              'and the ASN it did not get keeps only its own session (n2''s IP is still in 64520 now)');

SELECT ipintel.roll_up_attribution();
SELECT set_eq($$SELECT session_id FROM ipintel.asn_sessions(64521)$$, ARRAY['n2'],
              'rolled up (the queue is empty): found through attribution_asn_daily');

SELECT * FROM finish();
ROLLBACK;
