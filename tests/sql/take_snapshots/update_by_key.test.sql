-- take_snapshots writes each session it fills found by its whole key, session_id and
-- first_event_at (revision 0055), so the update probes the session's own partition, not every
-- month's: with months of history kept, the snapshots an ingest chunk takes paid one index probe
-- per session and per month. Counted with the scans of this transaction (pg_stat_xact_all_tables)
-- of session_summaries' partitions, with twelve months of sessions.
BEGIN;
SELECT plan(4);

UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
SELECT ipintel.ensure_session_partitions(ARRAY(SELECT timestamptz '2019-01-10' + m * interval '1 month' FROM generate_series(0, 11) m));
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
SELECT ('81.2.71.' || g)::inet, '2019-01-10', '2019-12-10', 12 FROM generate_series(1, 20) g;
-- each IP has a session in each month of 2019
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
SELECT 'key-' || g || '-' || m, timestamptz '2019-01-10 10:00Z' + m * interval '1 month',
       timestamptz '2019-01-10 10:01Z' + m * interval '1 month', ('81.2.71.' || g)::inet
FROM generate_series(1, 20) g, generate_series(0, 11) m;
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
SELECT :run, 902, 'maxmind', i.ip, now(), '{"found": true, "country": "GB", "asn": 64999, "as_org": "AS", "asn_db": {"type": "GeoLite2-ASN"}}'
FROM ipintel.ip_inventory i WHERE i.ip << '81.2.71.0/24';
SELECT ipintel.merge_batch(:run, 902);
-- every session of 2019 is snapshotted: none is left
SELECT ipintel.take_snapshots();
-- The scans of the partitions (15: 2019's twelve, this month's and the next, the default one)
-- during a call: reading the IPs' incomplete sessions scans partitions per IP, whatever the
-- number of sessions; then the update finds each session. Two calls for the same 20 IPs, with 20
-- and then 40 new sessions: the difference is what 20 more sessions cost.
CREATE TEMP TABLE scans (call int, scans int);
CREATE FUNCTION pg_temp.partition_scans() RETURNS int LANGUAGE sql AS $$
    SELECT sum(coalesce(t.seq_scan, 0) + coalesce(t.idx_scan, 0))::int
    FROM pg_stat_xact_all_tables t
    WHERE t.relid IN (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = 'ipintel.session_summaries'::regclass)
$$;

INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
SELECT 'key-' || g || '-next', '2019-12-20 10:00Z', '2019-12-20 10:01Z', ('81.2.71.' || g)::inet
FROM generate_series(1, 20) g;
INSERT INTO scans VALUES (0, pg_temp.partition_scans());
SELECT is(ipintel.take_snapshots(ARRAY(SELECT ('81.2.71.' || g)::inet FROM generate_series(1, 20) g)), 20::bigint,
          'the 20 new sessions of the 20 IPs are filled (as at ingest)');
INSERT INTO scans VALUES (1, pg_temp.partition_scans());

INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
SELECT 'key-' || g || '-' || x, '2019-12-21 10:00Z', '2019-12-21 10:01Z', ('81.2.71.' || g)::inet
FROM generate_series(1, 20) g, unnest(ARRAY['a', 'b']) x;
INSERT INTO scans VALUES (2, pg_temp.partition_scans());
SELECT is(ipintel.take_snapshots(ARRAY(SELECT ('81.2.71.' || g)::inet FROM generate_series(1, 20) g)), 40::bigint,
          'then 40 more');
INSERT INTO scans VALUES (3, pg_temp.partition_scans());

SELECT is((SELECT count(*)::int FROM ipintel.session_summaries
           WHERE session_id ~ '^key-.*-(next|a|b)$' AND snapshot_complete_at IS NOT NULL AND snapshot_asn = 64999), 60,
          'complete, with their ASN');
-- 20 more sessions, one probe each (found by session_id alone: one in each of 15 partitions)
SELECT cmp_ok((SELECT (max(scans) FILTER (WHERE call = 3) - max(scans) FILTER (WHERE call = 2))
                      - (max(scans) FILTER (WHERE call = 1) - max(scans) FILTER (WHERE call = 0)) FROM scans),
              '<=', 2 * 20, '20 more sessions filled cost one probe each, of their own partition');

SELECT * FROM finish();
ROLLBACK;
