-- From migrations/versions/0078_attribution_days_by_hash.upgrade.sql (sql/077_attribution.sql)
-- attribution_of_days reads the sessions between the first and the last day asked once and
-- matches each to its day by a hash, instead of comparing every session of every month with every
-- day asked (roll_up_attribution after an ingest or an enrich, verify_attribution).
-- Locks: none on a table that holds rows (CREATE OR REPLACE of one catalog row).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- The recount of some days, shared by roll_up_attribution and verify_attribution. The sessions
-- are read once, between the first and the last day asked (the months outside are never read),
-- and each is matched to its day by equality, a hash of the days. Until revision 0078 each session
-- was matched to the days by its time range: a nested loop that compared every session of every
-- month with every day asked (the 31 days of 2M sessions: 62M comparisons, 7 of the 10.9 s; an
-- ingest's one or two days in a month of 2M sessions: 2.0 s, against 0.12 s now). No index scan:
-- the bounds are unknown when the statement is planned, and a range of first_event_at guessed
-- small was read by the primary key (session_id, first_event_at), a random heap read per session
-- (2M sessions: 6.9 s); the BRIN index or a sequential scan reads the heap in order.
CREATE OR REPLACE FUNCTION ipintel.attribution_of_days(p_days date[])
    RETURNS SETOF ipintel.attribution_daily
    LANGUAGE sql
    STABLE
    SET search_path = ''
    SET jit = off
    SET enable_indexscan = off
    SET work_mem = '64MB'
    SET hash_mem_multiplier = 4
BEGIN ATOMIC
    WITH days AS MATERIALIZED (
        SELECT DISTINCT u.day FROM unnest(p_days) AS u(day) WHERE u.day IS NOT NULL
    )
    SELECT d.day, s.sensor, s.snapshot_asn, s.snapshot_country, s.snapshot_ip_type, count(*),
           sum(s.login_attempts)::bigint, sum(s.login_successes)::bigint, sum(s.command_count)::bigint,
           sum(s.download_count)::bigint, public.hll_add_agg(public.hll_hash_any(s.source_ip), 12, 5)
    FROM ipintel.session_summaries s
    JOIN days d ON d.day = (s.first_event_at AT TIME ZONE 'UTC')::date
    WHERE s.first_event_at >= (SELECT min(f.day) FROM days f)::timestamp AT TIME ZONE 'UTC'
      AND s.first_event_at < (SELECT max(l.day) + 1 FROM days l)::timestamp AT TIME ZONE 'UTC'
      AND s.snapshot_at IS NOT NULL
    GROUP BY d.day, s.sensor, s.snapshot_asn, s.snapshot_country, s.snapshot_ip_type;
END;
COMMENT ON FUNCTION ipintel.attribution_of_days(date[]) IS
    'attribution_daily''s rows for the UTC days p_days, recounted from session_summaries (sessions with a snapshot): what roll_up_attribution writes and verify_attribution compares with. Reads the sessions between the first and the last day asked once (partitions outside are skipped), each matched to its day by a hash.';
