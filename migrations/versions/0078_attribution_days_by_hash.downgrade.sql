-- From migrations/versions/0078_attribution_days_by_hash.downgrade.sql (sql/077_attribution.sql)
-- attribution_of_days as at revision 0077: each session matched to the days asked by its time
-- range (CREATE OR REPLACE also drops the function's jit, enable_indexscan, work_mem and
-- hash_mem_multiplier settings).
-- Locks: none on a table that holds rows.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- The recount of some days, shared by roll_up_attribution and verify_attribution.
CREATE OR REPLACE FUNCTION ipintel.attribution_of_days(p_days date[])
    RETURNS SETOF ipintel.attribution_daily
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    -- Per day a range of first_event_at: partition pruning and the BRIN index find its sessions.
    SELECT d.day, s.sensor, s.snapshot_asn, s.snapshot_country, s.snapshot_ip_type, count(*),
           sum(s.login_attempts)::bigint, sum(s.login_successes)::bigint, sum(s.command_count)::bigint,
           sum(s.download_count)::bigint, public.hll_add_agg(public.hll_hash_any(s.source_ip), 12, 5)
    FROM (SELECT DISTINCT u.day FROM unnest(p_days) AS u(day) WHERE u.day IS NOT NULL) d
    JOIN ipintel.session_summaries s
      ON s.first_event_at >= d.day::timestamp AT TIME ZONE 'UTC'
     AND s.first_event_at < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
    WHERE s.snapshot_at IS NOT NULL
    GROUP BY d.day, s.sensor, s.snapshot_asn, s.snapshot_country, s.snapshot_ip_type;
END;
COMMENT ON FUNCTION ipintel.attribution_of_days(date[]) IS
    'attribution_daily''s rows for the UTC days p_days, recounted from session_summaries (sessions with a snapshot): what roll_up_attribution writes and verify_attribution compares with.';
