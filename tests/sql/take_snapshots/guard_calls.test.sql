-- The guard of known snapshot fields (trigger session_summaries_snapshot_is_immutable) calls
-- protect_snapshot only where a known field would change (revision 0072): filling the fields a
-- later source gives, beside fields already known, calls no function (before, every such
-- session called it: 1M sessions, 17 to 19 s instead of 5.2 to 5.6 s); a rewrite of a known field
-- still calls it, which refuses it but inside a redo.
BEGIN;
SELECT plan(7);
-- The calls of this transaction's functions, counted (pg_stat_get_xact_function_calls).
SET LOCAL track_functions = 'pl';
CREATE TEMP VIEW guard_calls AS
SELECT coalesce(pg_stat_get_xact_function_calls('ipintel.protect_snapshot'::regproc), 0)::int AS n;

-- MaxMind has answered, GreyNoise is awaited: a first pass fills ASN, country and class.
UPDATE ipintel.enrichment_policy SET enabled = (source IN ('maxmind', 'greynoise'));
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
VALUES ('81.2.69.9', '2019-05-10', '2019-05-10', 2);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('guard-1', '2019-05-10 10:00Z', '2019-05-10 10:01Z', '81.2.69.9'),
    ('guard-2', '2019-05-10 11:00Z', '2019-05-10 11:01Z', '81.2.69.9');
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
VALUES (:run, 911, 'maxmind', '81.2.69.9', now(),
        '{"found": true, "country": "GB", "asn": 64999, "as_org": "NOW-AS", "asn_db": {"type": "GeoLite2-ASN"}}');
SELECT ipintel.merge_batch(:run, 911);
SELECT is(ipintel.take_snapshots(), 2::bigint, 'the first pass fills both sessions in part');
SELECT is((SELECT count(*)::int FROM ipintel.session_summaries
           WHERE snapshot_asn_source IS NOT NULL AND snapshot_is_scanner_source IS NULL
             AND snapshot_complete_at IS NULL),
          2, 'ASN known, GreyNoise''s field still unknown');
SELECT is((SELECT n FROM guard_calls), 0, 'a first fill calls no function');

-- GreyNoise answers: the second pass fills its fields beside the known ones, and completes.
SELECT ipintel.start_run('greynoise', '{}'::jsonb) AS run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
VALUES (:run, 912, 'greynoise', '81.2.69.9', now(), '{"observed": true, "noise": true, "riot": false}');
SELECT ipintel.merge_batch(:run, 912);
SELECT is(ipintel.take_snapshots(), 2::bigint, 'the second pass fills and completes both');
SELECT is((SELECT n FROM guard_calls), 0,
          'filling unknown fields beside known ones calls no function (0071: one call per session)');

-- A rewrite of a known field still reaches the function: refused (the call is not counted: the
-- refusal rolls back its subtransaction), and allowed inside a redo, which resets each session
-- (one call each) and takes it again (first fills: none).
SELECT throws_ok($$UPDATE ipintel.session_summaries SET snapshot_is_scanner = false WHERE session_id = 'guard-1'$$,
                 '23000', 'snapshot of session guard-1: a known snapshot field is never rewritten',
                 'a known field rewritten is refused');
SELECT results_eq($$SELECT sessions_reset, sessions_taken, (SELECT n FROM guard_calls)
                    FROM ipintel.redo_snapshots('2019-05-10', '2019-05-11', 'test')$$,
                  $$VALUES (2::bigint, 2::bigint, 2)$$, 'a redo: the function called once per session reset');

SELECT * FROM finish();
ROLLBACK;
