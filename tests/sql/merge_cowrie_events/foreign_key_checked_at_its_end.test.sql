-- merge_cowrie_events() defers the sessions' foreign key from its insert to its own end (revision
-- 0047): a session whose IP is gone by then is still refused, by the merge itself, and nothing is
-- left deferred after it (a bad row written next in the same transaction is refused at once).
BEGIN;
SELECT plan(5);

SELECT results_eq(
    $$SELECT condeferrable, condeferred FROM pg_constraint
      WHERE conname = 'session_summaries_source_ip_fkey' AND conrelid = 'ipintel.session_summaries'::regclass$$,
    $$VALUES (true, false)$$,
    'the key is deferrable but checked at once unless a transaction defers it');

-- A test-only trigger removes one IP from the inventory right after its session is inserted
-- (deleting the IP is possible only because the key is deferred at that moment).
CREATE FUNCTION pg_temp.drop_vanishing_ip() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM ipintel.ip_inventory WHERE ip = '203.0.114.66';
    RETURN NULL;
END;
$$;
CREATE TRIGGER vanishing_ip AFTER INSERT ON ipintel.session_summaries
    FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.drop_vanishing_ip();

INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-1, 1, 'cowrie.session.connect', '2026-11-20 10:00:00+00', 'stays', '203.0.114.65', 'hp1'),
       (-1, 2, 'cowrie.session.connect', '2026-11-20 10:00:01+00', 'vanishes', '203.0.114.66', 'hp1');
SELECT throws_ok($$SELECT * FROM ipintel.merge_cowrie_events(-1)$$, '23503', NULL,
                 'a session whose IP is gone when the merge ends is refused by the merge');
DROP TRIGGER vanishing_ip ON ipintel.session_summaries;

-- The same chunk without the trigger merges, and leaves the key checked at once again.
SELECT results_eq($$SELECT sessions_new FROM ipintel.merge_cowrie_events(-1)$$, $$VALUES (2::bigint)$$,
                  'without it the chunk merges');
SELECT throws_ok(
    $$INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
      VALUES ('orphan', '2026-11-20 11:00', '2026-11-20 11:05', '198.51.100.99')$$,
    '23503', NULL, 'after a merge the key is checked at once again, in the same transaction');
SELECT is((SELECT count(*) FROM ipintel.session_summaries WHERE session_id IN ('stays', 'vanishes')), 2::bigint,
          'both sessions are there');

SELECT * FROM finish();
ROLLBACK;
