-- From migrations/versions/0076_session_threshold_inlined.downgrade.sql (sql/070_enrichment.sql)
-- squawk-ignore-file ban-drop-function
-- below_session_threshold as before (its login check written in place), then
-- has_successful_login dropped.
-- Locks: none on a table that holds rows.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.below_session_threshold(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.min_session_count IS NOT NULL AND p_ip.session_count < p_policy.min_session_count
    AND NOT (p_policy.or_login_success AND EXISTS (
        SELECT 1 FROM ipintel.session_summaries s
        WHERE s.source_ip = p_ip.ip AND s.login_successes > 0));
COMMENT ON FUNCTION ipintel.below_session_threshold(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the policy does not ask about the IP: fewer sessions than min_session_count (and, with or_login_success, no successful login).';

DROP FUNCTION ipintel.has_successful_login(inet);
