-- From migrations/versions/0039_ips_due_candidates.downgrade.sql
-- Back to 0038: ips_due as a SQL function that reads every IP. No table touched.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.ips_due(
    p_source text,
    p_limit bigint DEFAULT NULL,
    p_force boolean DEFAULT false,
    p_ips inet[] DEFAULT NULL,
    p_current_build bigint DEFAULT NULL)
    RETURNS TABLE (ip inet, last_seen timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT i.ip, i.last_seen
    FROM ipintel.ip_inventory i
    CROSS JOIN ipintel.enrichment_policy p
    LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
    LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
    WHERE p.source = p_source
      AND NOT i.is_bogon
      AND (p_ips IS NULL OR i.ip = ANY (p_ips))
      AND (p_force OR (
          -- never fetched, stale, or fetched from an older database build
          (e.ip IS NULL
           OR ipintel.answer_is_stale(p, e.fetched_at, t.ttl)
           OR e.build < p_current_build)
          AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
          AND NOT ipintel.below_session_threshold(p, i)
          -- a failure that asking again cannot fix, or one asked to wait
          AND NOT EXISTS (
              SELECT 1 FROM ipintel.enrichment_failures f
              WHERE f.source = p_source AND f.ip = i.ip AND f.resolved_at IS NULL
                AND (NOT f.retryable OR f.retry_after > now()))))
    ORDER BY i.last_seen DESC NULLS LAST, i.ip
    LIMIT p_limit;
END;
