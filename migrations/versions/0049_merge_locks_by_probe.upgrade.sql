-- From migrations/versions/0049_merge_locks_by_probe.upgrade.sql (sql/070_enrichment.sql)
-- lock_for_merge locks a batch's rows with one index probe per IP, in ip order, and reads the
-- sources' ASNs of those IPs the same way (issue 15). With `ip = ANY (p_ips)` the planner chose a
-- sequential scan of the whole inventory as soon as a batch was a few percent of it (a MaxMind
-- batch of 10,000 IPs in an inventory of 300,000: ip_inventory twice and enrichment_state once),
-- so every batch of a pass, and every ingest chunk, cost in proportion to the inventory.
-- The same rows are locked, in the same order (ip_inventory by ip, then asn_inventory by asn).
-- Locks: CREATE OR REPLACE FUNCTION: none on any table; no scan. Grants stay.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.lock_for_merge(p_ips inet[], p_asns bigint[])
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_current_asns bigint[];
BEGIN
    -- a nested loop over the sorted IPs: each row is locked when its IP's turn comes
    SELECT array_agg(l.current_asn) FILTER (WHERE l.current_asn IS NOT NULL) INTO v_current_asns
    FROM (SELECT DISTINCT u.ip FROM unnest(p_ips) AS u(ip) ORDER BY u.ip) b
    CROSS JOIN LATERAL (SELECT i.current_asn FROM ipintel.ip_inventory i WHERE i.ip = b.ip
                        FOR NO KEY UPDATE) l;
    PERFORM 1 FROM ipintel.asn_inventory a
    WHERE a.asn = ANY (p_asns || v_current_asns
                       || ARRAY(SELECT e.asn FROM unnest(p_ips) AS u(ip)
                                CROSS JOIN LATERAL (SELECT e.asn FROM ipintel.enrichment_state e
                                                    WHERE e.ip = u.ip AND e.asn IS NOT NULL OFFSET 0) e))
    ORDER BY a.asn
    FOR NO KEY UPDATE;
END;
$$;
COMMENT ON FUNCTION ipintel.lock_for_merge(inet[], bigint[]) IS
    'Locks the ip_inventory rows of p_ips (ip order, one index probe per IP), then the asn_inventory rows of p_asns, of their current ASNs and of the ASNs sources gave them (asn order): the one lock order of ingest and every merge, so concurrent runs cannot deadlock. Linear in the IPs given, whatever the size of the inventory.';
