-- From migrations/versions/0039_ips_due_candidates.upgrade.sql (sql/070_enrichment.sql)
-- ips_due finds the IPs that may be due before it reads any row of ip_inventory: those the source
-- never answered (an anti-join of the primary keys of ip_inventory and enrichment_state), those it
-- answered before the latest TTL cutoff in force or from an older build. Only their rows are
-- then read and filtered, so a pass with nothing due (the same MaxMind build again) reads none:
-- 3.6 s to 1.1 s at 1,000,000 IPs. PL/pgSQL instead of SQL, so that the query is planned with the
-- call's values (a SQL function's generic plan hashed the whole inventory). The session
-- threshold's function is called only when the policy sets one. Same signature, same results
-- (tests/sql/ips_due/candidates_match_full_scan.test.sql).
-- Locks: CREATE OR REPLACE FUNCTION: none on any table; no scan.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.ips_due(
    p_source text,
    p_limit bigint DEFAULT NULL,
    p_force boolean DEFAULT false,
    p_ips inet[] DEFAULT NULL,
    p_current_build bigint DEFAULT NULL)
    RETURNS TABLE (ip inet, last_seen timestamptz)
    LANGUAGE plpgsql
    STABLE
    SET search_path = ''
    -- Tens of milliseconds of work when little is due, but costed high while the statistics lag
    -- a first enrichment: JIT compilation then took 380 ms of a 430 ms call (50,000 IPs).
    SET jit = off
AS $$
BEGIN
    -- First the IPs that may be due, found without reading ip_inventory's rows: those the source
    -- never answered (an anti-join of the two primary keys), those it answered before the
    -- shortest TTL in force or from an older build; every IP when forced; the IPs asked for. Only
    -- those rows are then read and filtered, so a run with nothing due reads none. PL/pgSQL, so
    -- that the query is planned with the call's values: the branches that do not apply are
    -- pruned, and the candidates are estimated from the statistics (a SQL function's generic
    -- plan expected every IP and hashed the whole inventory).
    RETURN QUERY
    WITH candidates AS (
        SELECT i.ip FROM ipintel.ip_inventory i
        WHERE NOT p_force AND p_ips IS NULL
          AND NOT EXISTS (SELECT FROM ipintel.enrichment_state e WHERE e.ip = i.ip AND e.source = p_source)
        UNION ALL
        -- answer_is_stale with the latest cutoff of the policy's and the classes' TTLs: a superset.
        SELECT e.ip FROM ipintel.enrichment_state e
        JOIN ipintel.enrichment_policy p ON p.source = e.source
        WHERE NOT p_force AND p_ips IS NULL AND e.source = p_source
          AND (e.build < p_current_build
               OR (p.kind <> 'offline_database'
                   AND e.fetched_at < greatest(now() - p.ttl, (SELECT max(now() - t.ttl) FROM ipintel.ip_types t))))
        UNION ALL
        SELECT i.ip FROM ipintel.ip_inventory i WHERE p_force AND p_ips IS NULL
        UNION ALL
        SELECT DISTINCT u.ip FROM unnest(p_ips) AS u(ip))
    SELECT i.ip, i.last_seen
    FROM candidates c
    JOIN ipintel.ip_inventory i ON i.ip = c.ip
    CROSS JOIN ipintel.enrichment_policy p
    LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
    LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
    WHERE p.source = p_source
      AND NOT i.is_bogon
      AND (p_force OR (
          -- never fetched, stale, or fetched from an older database build
          (e.ip IS NULL
           OR ipintel.answer_is_stale(p, e.fetched_at, t.ttl)
           OR e.build < p_current_build)
          AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
          -- the threshold's function (a subquery: not inlined) is called only when one is set
          AND (p.min_session_count IS NULL OR NOT ipintel.below_session_threshold(p, i))
          -- a failure that asking again cannot fix, or one asked to wait
          AND NOT EXISTS (
              SELECT 1 FROM ipintel.enrichment_failures f
              WHERE f.source = p_source AND f.ip = i.ip AND f.resolved_at IS NULL
                AND (NOT f.retryable OR f.retry_after > now()))))
    ORDER BY i.last_seen DESC NULLS LAST, i.ip
    LIMIT p_limit;
END;
$$;
