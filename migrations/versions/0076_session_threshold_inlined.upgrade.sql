-- From migrations/versions/0076_session_threshold_inlined.upgrade.sql (sql/070_enrichment.sql)
-- below_session_threshold without a subquery (its login check in has_successful_login), so the
-- planner inlines it and the queries that use it (snapshot_pending_sources, ips_due) read the
-- columns they need instead of forming each ip_inventory row whole.
-- Locks: none on a table that holds rows (a new function, CREATE OR REPLACE of one catalog row).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- Whether any session of the IP logged in. A function of its own (revision 0076) so that
-- below_session_threshold, which calls it, has no subquery and is inlined: not inlined, it took
-- the whole ip_inventory row (p_ip) from every query that used it, and snapshot_pending_sources
-- and ips_due formed that row, enrichment document and all, for every (IP, source) pair they
-- read (150,000 IPs: a 100 MB Materialize spilled to disk, 0.3 s of a 1.1 s read of the view).
CREATE FUNCTION ipintel.has_successful_login(p_ip inet)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN EXISTS (SELECT 1 FROM ipintel.session_summaries s WHERE s.source_ip = p_ip AND s.login_successes > 0);
COMMENT ON FUNCTION ipintel.has_successful_login(inet) IS
    'True when some session of the IP has a successful login (session_summaries.login_successes > 0).';

REVOKE EXECUTE ON FUNCTION ipintel.has_successful_login(inet) FROM PUBLIC;
-- as sql/099_roles.sql grants below_session_threshold, whose inlined body calls it
GRANT EXECUTE ON FUNCTION ipintel.has_successful_login(inet) TO ipintel_reader, ipintel_loader;

CREATE OR REPLACE FUNCTION ipintel.below_session_threshold(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.min_session_count IS NOT NULL AND p_ip.session_count < p_policy.min_session_count
    AND NOT (p_policy.or_login_success AND ipintel.has_successful_login(p_ip.ip));
COMMENT ON FUNCTION ipintel.below_session_threshold(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the policy does not ask about the IP: fewer sessions than min_session_count (and, with or_login_success, no successful login).';
