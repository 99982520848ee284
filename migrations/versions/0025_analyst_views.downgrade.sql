-- From migrations/versions/0025_analyst_views.downgrade.sql: back to 0024 (the analyst's
-- functions and the window index go; session_attribution joins ip_inventory again, and
-- report_top_asns reads it as before).
-- squawk-ignore-file ban-drop-function
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP FUNCTION ipintel.ips_in(bigint[], text[]);
DROP FUNCTION ipintel.verify_snapshots();
DROP FUNCTION ipintel.verify_counts();
DROP FUNCTION ipintel.report_routing_snapshots();
DROP FUNCTION ipintel.report_sources();
DROP FUNCTION ipintel.campaign_ips(text, text, timestamptz, timestamptz);
DROP FUNCTION ipintel.campaigns(timestamptz, timestamptz);
DROP FUNCTION ipintel.session_fingerprints(timestamptz, timestamptz);
DROP FUNCTION ipintel.asn_ips_by_day(bigint, timestamptz, timestamptz);
DROP FUNCTION ipintel.asn_ips(bigint);
DROP FUNCTION ipintel.asn_sessions(bigint);
DROP FUNCTION ipintel.ip_timeline(inet);
DROP FUNCTION ipintel.country_trends(timestamptz);
DROP FUNCTION ipintel.asn_trends(timestamptz);
DROP FUNCTION ipintel.activity_by_class(timestamptz, timestamptz);
DROP FUNCTION ipintel.activity_by_day(timestamptz, timestamptz);
DROP FUNCTION ipintel.activity_by_country(timestamptz, timestamptz);
DROP FUNCTION ipintel.activity_by_asn(timestamptz, timestamptz);

CREATE OR REPLACE VIEW ipintel.session_attribution AS
SELECT s.session_id,
       s.sensor,
       s.first_event_at,
       s.last_event_at,
       s.protocol,
       s.source_ip,
       CASE WHEN s.snapshot_asn_source IS NOT NULL THEN s.snapshot_asn ELSE i.current_asn END AS asn,
       a.as_name,
       CASE WHEN s.snapshot_country_source IS NOT NULL THEN s.snapshot_country ELSE i.geo_country END AS country,
       CASE WHEN s.snapshot_ip_type_source IS NOT NULL THEN s.snapshot_ip_type ELSE i.ip_type END AS ip_type,
       CASE WHEN s.snapshot_is_scanner_source IS NOT NULL THEN s.snapshot_is_scanner ELSE i.is_scanner END AS is_scanner,
       s.snapshot_complete_at IS NOT NULL AS from_snapshot,
       s.login_attempts,
       s.login_successes,
       s.command_count,
       s.download_count
FROM ipintel.session_summaries s
JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
LEFT JOIN ipintel.asn_inventory a
       ON a.asn = CASE WHEN s.snapshot_asn_source IS NOT NULL THEN s.snapshot_asn ELSE i.current_asn END;
DROP FUNCTION ipintel.ip_inventory_row(inet);

CREATE OR REPLACE FUNCTION ipintel.report_top_asns(p_since timestamptz, p_until timestamptz, p_top bigint)
    RETURNS TABLE (asn text, name text, sessions bigint, ips bigint, logins bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT coalesce(a.asn::text, '-'), coalesce(a.as_name, '(unknown)'), count(*),
           count(DISTINCT a.source_ip), sum(a.login_successes)::bigint
    FROM ipintel.session_attribution a
    WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
    GROUP BY 1, 2
    ORDER BY 3 DESC, 1
    LIMIT p_top;
END;

-- A downgrade runs in the revision's transaction (no CONCURRENTLY there): the drop itself is
-- instant once lock_timeout lets it take its lock.
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX ipintel.session_summaries_window_idx;
