-- From migrations/versions/0083_range_lookups_by_spgist.downgrade.sql (0082's sql/073_range_lists.sql, sql/074_ip_classes.sql)
-- ip_classes probes the GiST on prefix_range again, which
-- 0083_range_lookups_by_spgist.downgrade-concurrently.sql built before this transaction;
-- 0083_range_lookups_by_spgist.downgrade-after.sql then drops the SP-GiST index.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

COMMENT ON COLUMN ipintel.listed_ranges.prefix_range IS 'Generated: the prefix as an ip4r iprange, for the GiST containment lookups.';

CREATE OR REPLACE FUNCTION ipintel.ip_classes(p_ips inet[], p_days date[], p_asns bigint[], p_asn_sources text[])
    RETURNS TABLE (ip inet, day date, asn bigint, ip_type text, ip_provider text, ip_type_source text,
                   ip_class_basis jsonb)
    LANGUAGE sql
    STABLE
    -- Also keeps the function from being inlined into its caller: the planner cannot see how
    -- many IPs the arrays hold, and inlined into a join it re-ran the whole classification once
    -- per row of the other side (50,000 IPs: hours, and tens of GB of temporary files). Called,
    -- it runs once and its rows are kept.
    SET search_path = ''
BEGIN ATOMIC
    WITH asked AS MATERIALIZED (
        -- each (ip, day, asn) once, with the first of its ASN's sources
        SELECT DISTINCT ON (u.ip, u.day, u.asn) u.ip, u.day, u.asn, u.asn_source
        FROM unnest(p_ips, p_days, p_asns, p_asn_sources) AS u(ip, day, asn, asn_source)
        ORDER BY u.ip, u.day, u.asn, u.asn_source
    ), asked_days AS MATERIALIZED (  -- the days asked, read once
        SELECT DISTINCT a.day FROM asked a
    ), days AS MATERIALIZED (
        -- The day only counts through each list's snapshot of it: days on which every list has
        -- the same snapshot (or none) classify alike, and the first of them stands for them all
        -- (revision 0063; class_epochs). An IP seen on many days is classified once per run of
        -- days between two snapshots, not once per day.
        SELECT e.day, e.epoch FROM ipintel.class_epochs(ARRAY(SELECT d.day FROM asked_days d)) e
    ), lists AS MATERIALIZED (
        -- once per epoch and list (what is classified is dated by its epoch: q.day), not once
        -- per IP, nor again for every day class_epochs has read already
        SELECT x.day, l.list, l.ip_type, l.provider, l.holds, l.rank, ipintel.range_snapshot_on(l.list, x.day) AS taken_on
        FROM (SELECT DISTINCT e.epoch AS day FROM days e) x
        CROSS JOIN ipintel.range_lists l
    ), q AS MATERIALIZED (
        -- what is classified: each (ip, epoch, asn, asn source) once (q.day is the epoch's day),
        -- with the days asked that it stands for
        SELECT row_number() OVER () AS n, k.ip, k.day, k.asn, k.asn_source, k.days
        FROM (SELECT a.ip, e.epoch AS day, a.asn, a.asn_source, array_agg(a.day) AS days
              FROM asked a JOIN days e ON e.day = a.day
              GROUP BY a.ip, e.epoch, a.asn, a.asn_source) k
    ), ips AS MATERIALIZED (  -- each IP once: what depends on the address alone is looked up once
        SELECT u.ip, ipintel.is_bogon(u.ip) AS bogon
        FROM (SELECT DISTINCT q.ip FROM q) u
    ), ranged AS MATERIALIZED (
        -- one GiST probe per IP by containment alone, and none when no range list has a
        -- snapshot for any of the days (OFFSET 0 keeps it a probe)
        SELECT b.ip, r.list, r.prefix, r.service, r.region, r.valid
        FROM ips b
        CROSS JOIN LATERAL (SELECT o.list, o.prefix, o.service, o.region, o.valid FROM ipintel.listed_ranges o
                            WHERE o.prefix_range OPERATOR(public.>>=) public.iprange(b.ip::cidr) OFFSET 0) r
        WHERE EXISTS (SELECT 1 FROM lists w WHERE w.holds = 'ranges' AND w.taken_on IS NOT NULL)
    ), said AS MATERIALIZED (
        -- what the sources said, once per IP
        SELECT b.ip, e.ip_type, e.source, p.ip_type_rank
        FROM ips b
        JOIN ipintel.enrichment_state e ON e.ip = b.ip AND e.ip_type IS NOT NULL
        JOIN ipintel.enrichment_policy p ON p.source = e.source AND p.ip_type_rank IS NOT NULL
    ), candidates AS (
        -- Narrow rows (the basis is built for the winner only): the class, its provider and
        -- registered source, what orders it within its level (prefix length, rank, detail: 0
        -- when the range names service and region), and the facts of its basis. Routed and
        -- unknown, the last two levels, are not candidates: an IP none of these qualifies gets
        -- them below.
        SELECT q.n, 'bogon'::text AS ip_type, NULL::text AS provider, NULL::text AS source, NULL::bigint AS specificity,
               NULL::bigint AS rank, 0 AS detail, 'bogon'::text AS rule, NULL::text AS list, NULL::date AS snapshot,
               NULL::cidr AS prefix, NULL::text AS service, NULL::text AS region, NULL::text AS name, NULL::text AS reference
        FROM q JOIN ips b ON b.ip = q.ip AND b.bogon
        UNION ALL
        SELECT q.n, w.ip_type, w.provider, NULL, masklen(r.prefix), w.rank, (r.service = '')::int + (r.region = '')::int,
               'range', w.list, w.taken_on, r.prefix, nullif(r.service, ''), nullif(r.region, ''), NULL, NULL
        FROM q
        JOIN ranged r ON r.ip = q.ip
        JOIN lists w ON w.day = q.day AND w.list = r.list AND r.valid @> w.taken_on
        UNION ALL
        SELECT q.n, w.ip_type, a.name, q.asn_source, NULL, w.rank, 0, 'hosting_asn', w.list, w.taken_on, NULL, NULL, NULL,
               a.name, a.source
        FROM q
        JOIN lists w ON w.day = q.day AND w.holds = 'asns' AND w.taken_on IS NOT NULL
        JOIN ipintel.listed_asns a ON a.list = w.list AND a.asn = q.asn AND a.valid @> w.taken_on
        UNION ALL
        -- what the sources said, by their ip_type_rank within a level
        SELECT q.n, e.ip_type, NULL, e.source, NULL, e.ip_type_rank, 0, 'source', NULL, NULL, NULL, NULL, NULL, NULL,
               e.source
        FROM q
        JOIN said e ON e.ip = q.ip
        UNION ALL
        SELECT q.n, 'residential', a.as_name, q.asn_source, NULL, NULL, 0, 'residential', NULL, NULL, NULL, NULL, NULL,
               a.as_name, NULL
        FROM q
        JOIN ipintel.asn_inventory a ON a.asn = q.asn
        WHERE ipintel.as_name_looks_residential(a.as_name)
    ), best AS (
        SELECT DISTINCT ON (c.n) c.*
        FROM candidates c
        JOIN ipintel.ip_types t ON t.ip_type = c.ip_type
        ORDER BY c.n, t.precedence, c.specificity DESC NULLS LAST, c.rank NULLS LAST, c.detail, c.list, c.prefix,
                 c.service, c.region, c.reference
    ), classified AS MATERIALIZED (  -- each key once: its basis is built once, not once per day
        SELECT q.ip, q.days, q.asn,
               coalesce(b.ip_type, CASE WHEN q.asn IS NOT NULL THEN 'routed' ELSE 'unknown' END) AS ip_type,
               b.provider, CASE WHEN b.n IS NOT NULL THEN b.source WHEN q.asn IS NOT NULL THEN q.asn_source END
                   AS ip_type_source,
               CASE WHEN b.n IS NOT NULL THEN
                   jsonb_strip_nulls(jsonb_build_object(
                       'rule', b.rule, 'list', b.list, 'snapshot', b.snapshot, 'prefix', b.prefix, 'service', b.service,
                       'region', b.region,
                       'asn', CASE WHEN b.rule IN ('hosting_asn', 'residential') THEN q.asn END,
                       'name', CASE WHEN b.rule = 'hosting_asn' THEN b.name END,
                       'as_name', CASE WHEN b.rule = 'residential' THEN b.name END,
                       'source', b.reference))
               -- routed or unknown: a two-key basis, built directly (a quarter of the cost above)
               WHEN q.asn IS NOT NULL THEN jsonb_build_object('rule', 'routed', 'asn', q.asn)
               ELSE '{"rule": "unknown"}'::jsonb END AS ip_class_basis
        FROM q
        LEFT JOIN best b ON b.n = q.n
    )
    -- each (ip, day, asn) asked (each is in one key's days), with the class of its key
    SELECT c.ip, d.day, c.asn, c.ip_type, c.provider, c.ip_type_source, c.ip_class_basis
    FROM classified c
    CROSS JOIN LATERAL unnest(c.days) AS d(day);
END;
COMMENT ON FUNCTION ipintel.ip_classes(inet[], date[], bigint[], text[]) IS
    'The infrastructure class of each (ip, day, asn) of the parallel arrays (p_asn_sources: where each ASN came from), as of that UTC day: of bogon, the range lists'' classes (their snapshot of the day; most specific range first), hosting (the ASN in the hosting-ASN list of the day), the sources'' classes (enrichment_state), residential (as_name_looks_residential of the AS name), routed (an ASN) and unknown, the one of lowest ip_types.precedence. With its provider, its registered source (the source that said it; for hosting, residential and routed, the ASN''s) and its basis (ip_inventory.ip_class_basis).';
