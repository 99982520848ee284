-- From migrations/versions/0049_merge_locks_by_probe.downgrade.sql
-- Back to 0019's lock_for_merge: `ip = ANY (p_ips)`, whatever plan the statistics give.
-- Locks: none on any table (one function replaced).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.lock_for_merge(p_ips inet[], p_asns bigint[])
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    PERFORM 1 FROM ipintel.ip_inventory i
    WHERE i.ip = ANY (p_ips)
    ORDER BY i.ip
    FOR NO KEY UPDATE;
    PERFORM 1 FROM ipintel.asn_inventory a
    WHERE a.asn = ANY (p_asns)
       OR a.asn IN (SELECT i.current_asn FROM ipintel.ip_inventory i WHERE i.ip = ANY (p_ips))
       OR a.asn IN (SELECT e.asn FROM ipintel.enrichment_state e WHERE e.ip = ANY (p_ips))
    ORDER BY a.asn
    FOR NO KEY UPDATE;
END;
$$;
COMMENT ON FUNCTION ipintel.lock_for_merge(inet[], bigint[]) IS
    'Locks the ip_inventory rows of p_ips (ip order), then the asn_inventory rows of p_asns, of their current ASNs and of the ASNs sources gave them (asn order): the one lock order of ingest and every merge, so concurrent runs cannot deadlock.';
