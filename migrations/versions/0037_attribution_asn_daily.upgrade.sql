-- From migrations/versions/0037_attribution_asn_daily.upgrade.sql (sql/077_attribution.sql)
-- The ASN rollup: attribution_asn_daily, filled from attribution_daily in this transaction; then
-- roll_up_attribution keeps it with attribution_daily, top_asns reads it, verify_attribution
-- checks it. Locks: EXCLUSIVE on attribution_daily for the fill (readers go on; a concurrent
-- roll_up_attribution waits for the commit); nothing on session_summaries.
SET LOCAL lock_timeout = '5s';
-- The fill: about 4.5 s per million attribution_daily rows here (bench: 1.89M rows in 8.5 s).
SET LOCAL statement_timeout = '30min';

-- The ASN question reads a narrower rollup: one row per day and ASN (the groups of
-- attribution_daily merged over sensor, country and ip_type), ranked by an index-only scan of
-- (day, asn) INCLUDE (sessions); the sums and sketches are then read for the p_top ASNs only.
CREATE TABLE ipintel.attribution_asn_daily (
    day             date   NOT NULL,
    asn             bigint,
    sessions        bigint NOT NULL,
    login_attempts  bigint NOT NULL,
    login_successes bigint NOT NULL,
    commands        bigint NOT NULL,
    downloads       bigint NOT NULL,
    distinct_ips    public.hll(12, 5) NOT NULL,
    CONSTRAINT attribution_asn_daily_one_row_per_asn UNIQUE NULLS NOT DISTINCT (day, asn) INCLUDE (sessions),
    CONSTRAINT attribution_asn_daily_counts_are_positive CHECK (
        sessions > 0 AND login_attempts >= 0 AND login_successes >= 0 AND commands >= 0 AND downloads >= 0)
);
-- top_asns' second step: the rows of its p_top ASNs in the window (NULL, the unknown ASN, as -1).
CREATE INDEX attribution_asn_daily_asn_idx ON ipintel.attribution_asn_daily ((coalesce(asn, -1)), day);
COMMENT ON TABLE ipintel.attribution_asn_daily IS
    'Sessions per UTC day and snapshot ASN: attribution_daily''s groups of one day and ASN merged (sums added, distinct_ips sketches united), one row per day and ASN, so that "top ASNs over a window" reads one row per ASN and day instead of one per sensor, country and ip_type too. Written by roll_up_attribution with attribution_daily, for the same days; verify_attribution checks that it equals attribution_daily merged.';
COMMENT ON COLUMN ipintel.attribution_asn_daily.day IS 'UTC day of the sessions'' first_event_at.';
COMMENT ON COLUMN ipintel.attribution_asn_daily.asn IS 'session_summaries.snapshot_asn (NULL: not known yet, or not routed / known to no source).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.sessions IS 'Sessions of the day and ASN (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.login_attempts IS 'Sum of login_attempts (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.login_successes IS 'Sum of login_successes (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.commands IS 'Sum of command_count (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.downloads IS 'Sum of download_count (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.distinct_ips IS
    'The day''s distinct source IPs of the ASN as an HLL sketch (log2m 12, regwidth 5; the union of attribution_daily''s sketches of that day and ASN): exact up to a few hundred IPs, then a standard error of 1.6%.';

LOCK TABLE ipintel.attribution_daily IN EXCLUSIVE MODE;

-- attribution_asn_daily's rows of some days, merged from attribution_daily's: shared by
-- roll_up_attribution and verify_attribution.
CREATE FUNCTION ipintel.attribution_asn_of_days(p_days date[])
    RETURNS SETOF ipintel.attribution_asn_daily
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.day, a.asn, sum(a.sessions)::bigint, sum(a.login_attempts)::bigint, sum(a.login_successes)::bigint,
           sum(a.commands)::bigint, sum(a.downloads)::bigint, public.hll_union_agg(a.distinct_ips)
    FROM ipintel.attribution_daily a
    WHERE a.day = ANY (p_days)
    GROUP BY a.day, a.asn;
END;
COMMENT ON FUNCTION ipintel.attribution_asn_of_days(date[]) IS
    'attribution_asn_daily''s rows for the UTC days p_days, merged from attribution_daily (sums added, sketches united per day and ASN): what roll_up_attribution writes and verify_attribution compares with.';

INSERT INTO ipintel.attribution_asn_daily
SELECT * FROM ipintel.attribution_asn_of_days(ARRAY(SELECT DISTINCT a.day FROM ipintel.attribution_daily a));
ANALYZE ipintel.attribution_asn_daily;

CREATE OR REPLACE FUNCTION ipintel.roll_up_attribution()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_days date[];
BEGIN
    -- One roll-up at a time (two would both insert a day's rows); readers are not blocked.
    LOCK TABLE ipintel.attribution_daily IN EXCLUSIVE MODE;
    -- A day queued by a transaction still running stays queued (its row is not visible yet) and
    -- is rolled up by a later call, after that transaction's sessions are.
    WITH taken AS (DELETE FROM ipintel.attribution_dirty_days q RETURNING q.day)
    SELECT array_agg(DISTINCT t.day) INTO v_days FROM taken t;
    IF v_days IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM ipintel.attribution_daily a WHERE a.day = ANY (v_days);
    INSERT INTO ipintel.attribution_daily
    SELECT * FROM ipintel.attribution_of_days(v_days);
    DELETE FROM ipintel.attribution_asn_daily a WHERE a.day = ANY (v_days);
    INSERT INTO ipintel.attribution_asn_daily
    SELECT * FROM ipintel.attribution_asn_of_days(v_days);
    RETURN cardinality(v_days);
END;
$$;
COMMENT ON FUNCTION ipintel.roll_up_attribution() IS
    'Recomputes attribution_daily, then attribution_asn_daily from it, for the days queued in attribution_dirty_days (whole days: an HLL sketch cannot subtract) and empties the queue; returns how many days. Called by enrich after take_snapshots and by ingest after its last chunk; one call at a time (EXCLUSIVE lock on attribution_daily, readers go on).';

-- top_asns' result type is unchanged: CREATE OR REPLACE keeps its grants.
CREATE OR REPLACE FUNCTION ipintel.top_asns(p_since date, p_until date, p_top bigint)
    RETURNS TABLE (asn bigint, as_name text, sessions bigint, ips bigint, logins bigint, commands bigint,
                   downloads bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
    -- A few tens of ms of work: JIT compilation would cost ten times that (measured: 270 ms of 415).
    SET jit = off
    -- The ranking's hash table holds one entry per ASN of the window (~19K in the bench: 5 MB):
    -- with the default 4 MB it spills to disk.
    SET work_mem = '32MB'
BEGIN ATOMIC
    -- The ranking needs only the sessions: an index-only scan of attribution_asn_daily's
    -- (day, asn) INCLUDE (sessions), one row per ASN and day. The other sums and the sketches are
    -- read for the p_top ASNs kept, through the (coalesce(asn, -1), day) index (NULL, the
    -- unknown ASN, keyed as -1).
    WITH ranked AS (
        SELECT a.asn, sum(a.sessions)::bigint AS sessions
        FROM ipintel.attribution_asn_daily a
        WHERE a.day >= p_since AND a.day < p_until
        GROUP BY a.asn
        ORDER BY 2 DESC, 1 NULLS LAST
        LIMIT p_top
    ), detail AS (
        SELECT coalesce(a.asn, -1) AS asn_key, sum(a.login_successes)::bigint AS logins,
               sum(a.commands)::bigint AS commands, sum(a.downloads)::bigint AS downloads,
               round(public.hll_cardinality(public.hll_union_agg(a.distinct_ips)))::bigint AS ips
        FROM ranked r
        JOIN ipintel.attribution_asn_daily a
          ON coalesce(a.asn, -1) = coalesce(r.asn, -1) AND a.day >= p_since AND a.day < p_until
        GROUP BY 1)
    -- The AS name by one probe per ASN kept (a join would hash all of asn_inventory).
    SELECT r.asn, (SELECT n.as_name FROM ipintel.asn_inventory n WHERE n.asn = r.asn), r.sessions, d.ips, d.logins,
           d.commands, d.downloads
    FROM ranked r
    JOIN detail d ON d.asn_key = coalesce(r.asn, -1)
    ORDER BY r.sessions DESC, r.asn NULLS LAST;
END;
COMMENT ON FUNCTION ipintel.top_asns(date, date, bigint) IS
    'The p_top ASNs (all when NULL) with the most sessions on the UTC days [p_since, p_until), from attribution_asn_daily (sessions with a snapshot, by their snapshot ASN; NULL: unknown): asn, as_name, sessions, ips (distinct source IPs, HLL estimate: standard error 1.6%, exact below a few hundred), logins (successful), commands, downloads. For exact distinct IPs or a window not in whole days, use activity_by_asn.';

CREATE OR REPLACE FUNCTION ipintel.verify_attribution()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH queued AS (
        SELECT DISTINCT q.day FROM ipintel.attribution_dirty_days q
    ), stored AS (
        SELECT a.day, a.sensor, a.asn, a.country, a.ip_type, a.sessions, a.login_attempts, a.login_successes,
               a.commands, a.downloads, a.distinct_ips::text AS sketch
        FROM ipintel.attribution_daily a
        WHERE a.day NOT IN (SELECT q.day FROM queued q)
    ), recounted AS (
        SELECT r.day, r.sensor, r.asn, r.country, r.ip_type, r.sessions, r.login_attempts, r.login_successes,
               r.commands, r.downloads, r.distinct_ips::text AS sketch
        FROM (SELECT (min(s.first_event_at) AT TIME ZONE 'UTC')::date AS first_day,
                     (max(s.first_event_at) AT TIME ZONE 'UTC')::date AS last_day
              FROM ipintel.session_summaries s) b
        CROSS JOIN LATERAL ipintel.attribution_of_days(ARRAY(
            SELECT g.day::date FROM generate_series(b.first_day, b.last_day, interval '1 day') AS g(day))) r
        WHERE r.day NOT IN (SELECT q.day FROM queued q)
    ), counts_differ AS (
        (SELECT x.day, x.sensor, x.asn, x.country, x.ip_type, x.sessions, x.login_attempts, x.login_successes,
                x.commands, x.downloads FROM stored x
         EXCEPT
         SELECT y.day, y.sensor, y.asn, y.country, y.ip_type, y.sessions, y.login_attempts, y.login_successes,
                y.commands, y.downloads FROM recounted y)
        UNION
        (SELECT y.day, y.sensor, y.asn, y.country, y.ip_type, y.sessions, y.login_attempts, y.login_successes,
                y.commands, y.downloads FROM recounted y
         EXCEPT
         SELECT x.day, x.sensor, x.asn, x.country, x.ip_type, x.sessions, x.login_attempts, x.login_successes,
                x.commands, x.downloads FROM stored x)
    ), sketches_differ AS (
        (SELECT x.day, x.sensor, x.asn, x.country, x.ip_type, x.sketch FROM stored x
         EXCEPT
         SELECT y.day, y.sensor, y.asn, y.country, y.ip_type, y.sketch FROM recounted y)
        UNION
        (SELECT y.day, y.sensor, y.asn, y.country, y.ip_type, y.sketch FROM recounted y
         EXCEPT
         SELECT x.day, x.sensor, x.asn, x.country, x.ip_type, x.sketch FROM stored x)
    ), asn_stored AS (
        SELECT a.day, a.asn, a.sessions, a.login_attempts, a.login_successes, a.commands, a.downloads,
               a.distinct_ips::text AS sketch
        FROM ipintel.attribution_asn_daily a
        WHERE a.day NOT IN (SELECT q.day FROM queued q)
    ), asn_merged AS (
        SELECT m.day, m.asn, m.sessions, m.login_attempts, m.login_successes, m.commands, m.downloads,
               m.distinct_ips::text AS sketch
        FROM ipintel.attribution_asn_of_days(ARRAY(SELECT DISTINCT a.day FROM ipintel.attribution_daily a)) m
        WHERE m.day NOT IN (SELECT q.day FROM queued q)
    ), asn_differ AS (
        (SELECT * FROM asn_stored EXCEPT SELECT * FROM asn_merged)
        UNION
        (SELECT * FROM asn_merged EXCEPT SELECT * FROM asn_stored)
    ), found AS (
        SELECT 1 AS n, c.day, c.sensor, c.asn, c.country, c.ip_type FROM counts_differ c
        UNION
        SELECT 2, k.day, k.sensor, k.asn, k.country, k.ip_type FROM sketches_differ k
        UNION
        SELECT DISTINCT 3, x.day, NULL, x.asn, NULL, NULL FROM asn_differ x
    )
    SELECT r.rule, count(f.n),
           coalesce((array_agg(concat_ws(' ', f.day, f.sensor, 'AS' || f.asn, f.country, f.ip_type)
                               ORDER BY f.day, f.sensor, f.asn, f.country, f.ip_type)
                     FILTER (WHERE f.n IS NOT NULL))[1:3], '{}')
    FROM (VALUES (1, 'attribution_daily''s counts equal a recount from session_summaries (days queued for roll_up_attribution excepted)'),
                 (2, 'attribution_daily''s distinct_ips sketches equal sketches rebuilt from session_summaries (days queued excepted)'),
                 (3, 'attribution_asn_daily equals attribution_daily merged per day and ASN, sums and sketches (days queued excepted)'))
         AS r(n, rule)
    LEFT JOIN found f ON f.n = r.n
    GROUP BY r.n, r.rule
    ORDER BY r.n;
END;
COMMENT ON FUNCTION ipintel.verify_attribution() IS
    'attribution_daily against a recount from session_summaries, for every day not queued in attribution_dirty_days: the groups whose counts differ (or that one side lacks), and those whose HLL sketch differs from one rebuilt from the same sessions (an HLL of the same IPs is the same sketch, so this is exact); and attribution_asn_daily against attribution_daily merged per day and ASN (rule 3). violations: the groups concerned (day, sensor, ASN, country, ip_type), with up to three examples; 0: sound.';

-- Grants (sql/099_roles.sql). CREATE OR REPLACE resets SECURITY DEFINER: set again.
ALTER FUNCTION ipintel.roll_up_attribution() SECURITY DEFINER;
GRANT EXECUTE ON FUNCTION ipintel.attribution_asn_of_days(date[]) TO ipintel_reader, ipintel_loader;
GRANT SELECT ON ipintel.attribution_asn_daily TO ipintel_reader, ipintel_loader;
