-- From migrations/versions/0034_routing_probe.downgrade.sql: routing_asns as of revision 0033
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- Set-based: the origin AS of each (ip, day) pair from routing history. For each dataset, the
-- snapshot of routing_snapshot_on (computed once per distinct day); in it, the longest prefix
-- containing the IP (its smallest origin when several announce it); the dataset with the latest
-- snapshot wins, then by rank. One GiST probe per pair and dataset.
CREATE OR REPLACE FUNCTION ipintel.routing_asns(p_ips inet[], p_days date[])
    RETURNS TABLE (ip inet, day date, asn bigint, dataset text, taken_on date, prefix cidr)
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    WITH pairs AS (
        SELECT DISTINCT q.ip, q.day FROM unnest(p_ips, p_days) AS q(ip, day)
    ), snapshots AS MATERIALIZED (  -- once per day and dataset, not once per pair
        SELECT x.day, d.dataset, d.rank, ipintel.routing_snapshot_on(d.dataset, x.day) AS taken_on
        FROM (SELECT DISTINCT pairs.day FROM pairs) x
        CROSS JOIN ipintel.routing_datasets d
    )
    SELECT DISTINCT ON (q.ip, q.day) q.ip, q.day, o.asn, o.dataset, w.taken_on, o.prefix
    FROM pairs q
    JOIN snapshots w ON w.day = q.day AND w.taken_on IS NOT NULL
    JOIN ipintel.prefix_origins o
      ON o.dataset = w.dataset
     AND o.prefix_range OPERATOR(public.>>=) public.iprange(q.ip::cidr)
     AND o.valid @> w.taken_on
    ORDER BY q.ip, q.day, w.taken_on DESC, w.rank, masklen(o.prefix) DESC, o.asn;
END;
COMMENT ON FUNCTION ipintel.routing_asns(inet[], date[]) IS
    'Attack-time ASNs from routing history for parallel arrays of IPs and (UTC) days: per pair the longest prefix containing the IP in the latest snapshot (of any dataset) taken on or before the day and within the dataset''s max_age, with that snapshot. Pairs routing history does not cover are absent.';
