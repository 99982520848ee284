-- From migrations/versions/0044_asn_ranking.upgrade.sql (sql/077_attribution.sql)
-- top_asns ranks through asn_ranking: each day's busiest ASNs and a bar (threshold algorithm)
-- instead of summing every ASN of the window, exactly the same rows (issue 15). Runs after
-- 0044_asn_ranking.concurrently.sql built the index asn_ranking reads.
-- Locks: CREATE FUNCTION / CREATE OR REPLACE FUNCTION: none on any table; no scan.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- Ranking ASNs by sessions over a window without summing every ASN of it (Fagin's threshold
-- algorithm): an ASN with S sessions over a window of D days has at least ceil(S / D) on one of
-- its days. So:
--   1. the p_top busiest ASNs of each day (index only) are candidates; their exact sums give a
--      bar B, the p_top-th largest of them: the true p_top-th ASN has at least B sessions;
--   2. every ASN that may reach B has at least ceil(B / D) sessions on some day: those rows are
--      read from the same index, and their ASNs added to the candidates;
--   3. the candidates' exact sums, ranked. Every ASN ranked at or above the true p_top-th is a
--      candidate, so the first p_top rows are those of the full ranking, ties and order included.
-- On a honeypot's skewed traffic (a few networks hold most sessions) that reads a few thousand
-- rows where the full ranking sums ~110K (30 days of the bench's 2M sessions). When the steps
-- would read more than 100,000 rows (long windows, a large p_top, flat traffic), the full
-- ranking runs instead.
CREATE FUNCTION ipintel.asn_ranking(p_since date, p_until date, p_top bigint)
    RETURNS TABLE (asn bigint, sessions bigint)
    LANGUAGE plpgsql
    STABLE
    SET search_path = ''
    SET jit = off
    -- The full ranking's hash table holds one entry per ASN of the window (~19K in the bench:
    -- 5 MB); with the default 4 MB it spills to disk.
    SET work_mem = '32MB'
    -- Each statement planned for its own arrays and bar (a generic plan would guess them).
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    -- The index rows the three steps may read before the full ranking is cheaper.
    c_budget constant bigint := 100000;
    v_days bigint := p_until - p_since;
    v_firsts bigint[];
    v_bar bigint;
    v_candidates bigint[];
BEGIN
    IF p_top >= 1 AND v_days >= 1 AND v_days * p_top <= c_budget THEN
        -- 1. Each day's p_top busiest ASNs (NULL, the unknown ASN, keyed as -1).
        SELECT array_agg(DISTINCT coalesce(t.asn, -1)) INTO v_firsts
        FROM generate_series(0, v_days - 1) AS d(n)
        CROSS JOIN LATERAL (
            SELECT a.asn FROM ipintel.attribution_asn_daily a
            WHERE a.day = p_since + d.n::integer
            ORDER BY a.sessions DESC
            LIMIT p_top) t;
        IF v_firsts IS NULL THEN
            RETURN;  -- no session in the window
        END IF;
        IF cardinality(v_firsts) * v_days <= c_budget THEN
            SELECT f.total INTO v_bar
            FROM (SELECT sum(a.sessions::double precision)::bigint AS total
                  FROM ipintel.attribution_asn_daily a
                  WHERE coalesce(a.asn, -1) = ANY (v_firsts) AND a.day >= p_since AND a.day < p_until
                  GROUP BY coalesce(a.asn, -1)) f
            ORDER BY f.total DESC
            OFFSET p_top - 1
            LIMIT 1;
            IF v_bar IS NULL THEN
                -- Fewer than p_top candidates: then every day had fewer than p_top ASNs, all of
                -- them candidates already.
                v_candidates := v_firsts;
            ELSE
                -- 2. The ASNs with a day of at least ceil(B / D) sessions. Cut at c_budget + 1 rows:
                -- those are (day, ASN) pairs, so a cut list names more than c_budget / D ASNs
                -- and fails the test below.
                SELECT array_agg(DISTINCT c.asn_key) || v_firsts INTO v_candidates
                FROM (SELECT coalesce(t.asn, -1) AS asn_key
                      FROM generate_series(0, v_days - 1) AS d(n)
                      CROSS JOIN LATERAL (
                          SELECT a.asn FROM ipintel.attribution_asn_daily a
                          WHERE a.day = p_since + d.n::integer AND a.sessions >= (v_bar + v_days - 1) / v_days) t
                      LIMIT c_budget + 1) c;
            END IF;
            IF cardinality(v_candidates) * v_days <= c_budget THEN
                -- 3. The candidates' exact sums, ranked as the full ranking ranks.
                RAISE DEBUG 'asn_ranking: threshold, % candidate ASNs (bar % sessions)', cardinality(v_candidates), v_bar;
                RETURN QUERY
                SELECT nullif(k.asn_key, -1), sum(a.sessions::double precision)::bigint
                FROM (SELECT DISTINCT u.asn_key FROM unnest(v_candidates) AS u(asn_key)) k
                JOIN ipintel.attribution_asn_daily a
                  ON coalesce(a.asn, -1) = k.asn_key AND a.day >= p_since AND a.day < p_until
                GROUP BY k.asn_key
                ORDER BY 2 DESC, 1 NULLS LAST
                LIMIT p_top;
                RETURN;
            END IF;
        END IF;
    END IF;
    -- The full ranking: an index-only scan of (day, asn) INCLUDE (sessions), every ASN summed.
    -- The sum in float8: its running total is a plain value per group, where a bigint sum keeps
    -- a numeric state (a quarter of the ranking's time at 110K rows). Exact: whole numbers stay
    -- exact in float8 up to 2^53 sessions.
    RAISE DEBUG 'asn_ranking: full ranking';
    RETURN QUERY
    SELECT a.asn, sum(a.sessions::double precision)::bigint
    FROM ipintel.attribution_asn_daily a
    WHERE a.day >= p_since AND a.day < p_until
    GROUP BY a.asn
    ORDER BY 2 DESC, 1 NULLS LAST
    LIMIT p_top;
END;
$$;
COMMENT ON FUNCTION ipintel.asn_ranking(date, date, bigint) IS
    'The p_top ASNs (all when NULL) with the most sessions on the UTC days [p_since, p_until) in attribution_asn_daily, ranked (sessions descending, then ASN, NULL: unknown last): top_asns'' first step. Exactly the full ranking''s first p_top rows, found from each day''s busiest ASNs and a bar (threshold algorithm) when that reads at most 100,000 index rows, by summing every ASN of the window otherwise.';
REVOKE EXECUTE ON FUNCTION ipintel.asn_ranking(date, date, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.asn_ranking(date, date, bigint) TO ipintel_reader, ipintel_loader;

CREATE OR REPLACE FUNCTION ipintel.top_asns(p_since date, p_until date, p_top bigint)
    RETURNS TABLE (asn bigint, as_name text, sessions bigint, ips bigint, logins bigint, commands bigint,
                   downloads bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
    -- A few tens of ms of work: JIT compilation would cost ten times that (measured: 270 ms of 415).
    SET jit = off
    -- With p_top NULL the detail joins every ASN of the window (~19K in the bench): with the
    -- default 4 MB its hash spills to disk.
    SET work_mem = '32MB'
BEGIN ATOMIC
    -- The ranking needs only the sessions (asn_ranking). The other sums and the sketches are
    -- read for the p_top ASNs kept, through the (coalesce(asn, -1), day) index (NULL, the
    -- unknown ASN, keyed as -1).
    WITH ranked AS (
        SELECT r.asn, r.sessions FROM ipintel.asn_ranking(p_since, p_until, p_top) r
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
    'The p_top ASNs (all when NULL) with the most sessions on the UTC days [p_since, p_until), ranked by asn_ranking from attribution_asn_daily (sessions with a snapshot, by their snapshot ASN; NULL: unknown): asn, as_name, sessions, ips (distinct source IPs, HLL estimate: standard error 1.6%, exact below a few hundred), logins (successful), commands, downloads. For exact distinct IPs or a window not in whole days, use activity_by_asn.';
