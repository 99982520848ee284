-- From sql/074_ip_classes.sql
-- The infrastructure class of an IP (ip_inventory.ip_type, ip_provider, ip_class_basis; the
-- snapshots' snapshot_ip_type, snapshot_ip_provider), decided in one set-based function from
-- everything that can say it: the address itself (bogon), the range lists of the day (tor,
-- cloud, cdn), the hosting-ASN list (hosting), what the sources said (riot, scanner, anonymizer,
-- unrouted), the AS name (residential), the ASN (routed). Of the classes an IP qualifies for,
-- the one of lowest ip_types.precedence wins; within one level the most specific range, then
-- the list's rank.

-- The residential heuristic. No registered source says what kind of network an AS is (PeeringDB's
-- info_type and IPinfo's AS type are not among the free sources), so this reads the AS name:
-- words consumer access networks put in their names (broadband, DSL, cable, fibre, FTTH, mobile,
-- wireless, cellular, telecom, a few large consumer ISPs' brands), and none of the words hosting
-- and cloud networks use (hosting, server, cloud, data centre, VPS, colocation, dedicated, CDN).
-- A guess: ip_class_basis says it is one (rule residential, with the AS name it read).
CREATE FUNCTION ipintel.as_name_looks_residential(p_as_name text)
    RETURNS boolean
    LANGUAGE sql
    IMMUTABLE PARALLEL SAFE
RETURN p_as_name ~* '(broadband|\m[av]?dsl\M|\mcable|fib(er|re)|\mftth\M|residential|\mhome\M|mobile|wireless|cellular|\mlte\M|\m[345]g\M|telecom|telekom|telecomunica|telefonica|telkom|vodafone|comcast|charter|\mspectrum\M|verizon|\mcox\M|\misp\M)'
    AND p_as_name !~* '(hosting|\mhost\M|server|cloud|data ?cent(er|re)|datacenter|\mvps\M|\mcolo|dedicated|\mcdn\M)';
COMMENT ON FUNCTION ipintel.as_name_looks_residential(text) IS
    'The residential heuristic: true when an AS name has a word consumer access networks use (broadband, DSL, cable, fibre, FTTH, mobile, wireless, cellular, LTE, telecom, a few consumer ISP brands) and none that hosting or cloud networks use (hosting, host, server, cloud, data centre, VPS, colocation, dedicated, CDN). A guess from the name only: no free source types ASes.';

-- The epochs of the classes: the days on which every range list (and the hosting-ASN list) has
-- the same snapshot, or none, classify alike (ip_classes reads a list only through its snapshot
-- of the day, range_snapshot_on). Each day given, with the first of the days given that shares
-- its snapshots: ip_classes asked for that first day answers for them all.
CREATE FUNCTION ipintel.class_epochs(p_days date[])
    RETURNS TABLE (day date, epoch date)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT x.day, min(x.day) OVER (PARTITION BY x.snapshots) AS epoch
    FROM (SELECT d.day, array_agg(ipintel.range_snapshot_on(l.list, d.day) ORDER BY l.list) AS snapshots
          FROM (SELECT DISTINCT u.day FROM unnest(p_days) AS u(day) WHERE u.day IS NOT NULL) d
          -- every day, lists or none
          LEFT JOIN ipintel.range_lists l ON true
          GROUP BY d.day) x;
END;
COMMENT ON FUNCTION ipintel.class_epochs(date[]) IS
    'Each distinct day of p_days with its epoch: the first of the days given on which every range list (ipintel.range_lists, the hosting-ASN list among them) has the same snapshot (range_snapshot_on) or none. The class of an (ip, asn) is the same on every day of an epoch (ip_classes answers for the epoch''s first day): take_snapshots asks ip_classes once per (IP, epoch, ASN), not once per session day.';

-- Set-based: the class of each (ip, day, asn) tuple, as of that UTC day: the range lists by
-- their snapshot of the day (range_snapshot_on, once per epoch and list); the hosting-ASN list and
-- the AS name by the ASN given (the caller's: the current one, or the session's); the sources'
-- last answers (enrichment_state). p_asn_sources names where each ASN came from: the
-- ip_type_source of the classes that rest on the ASN. What depends on the address alone (bogon,
-- the GiST probe of the ranges, the sources' answers) is looked up once per distinct IP, not once
-- per tuple (a session snapshot asks for an IP on each of its days: 400K tuples of 60K IPs, 3x
-- fewer probes), and the ranges are not probed at all while no range list has a snapshot for
-- the days asked. The day counts only through each list's snapshot of it: the days on which every
-- list has the same snapshot are one epoch, and each (ip, epoch, asn) is classified once (revision
-- 0063: 2M tuples of 200K IPs over 31 days, 10x fewer keys, a third less time). Routed and
-- unknown, the two last levels, are what an IP no other class qualifies for gets, not candidates
-- to sort.
CREATE FUNCTION ipintel.ip_classes(p_ips inet[], p_days date[], p_asns bigint[], p_asn_sources text[])
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
        -- one index probe per IP by containment alone (listed_ranges_prefix_idx, SP-GiST since
        -- revision 0083), and none when no range list has a snapshot for any of the days (OFFSET
        -- 0 keeps it a probe)
        SELECT b.ip, r.list, r.prefix, r.service, r.region, r.valid
        FROM ips b
        CROSS JOIN LATERAL (SELECT o.list, o.prefix, o.service, o.region, o.valid FROM ipintel.listed_ranges o
                            WHERE o.prefix OPERATOR(pg_catalog.>>=) b.ip OFFSET 0) r
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

-- ip_inventory's class kept by SQL, one batch at a time: the next p_limit IPs after p_after (ip
-- order; NULL: from the first; p_limit NULL: all), locked in ip order (the one lock order of the
-- tiers, so it runs beside ingest and merges), classified as of today (UTC) with their current
-- ASN, and written where the class changed. Callers commit between batches (a long table is
-- not held at once) until last_ip is NULL.
CREATE FUNCTION ipintel.classify_inventory(p_after inet, p_limit bigint)
    RETURNS TABLE (last_ip inet, classified bigint, changed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_ips inet[];
    v_asns bigint[];
    v_sources text[];
    v_changed bigint;
BEGIN
    SELECT array_agg(b.ip ORDER BY b.ip), array_agg(b.current_asn ORDER BY b.ip),
           array_agg(b.current_asn_source ORDER BY b.ip)
    INTO v_ips, v_asns, v_sources
    FROM (SELECT i.ip, i.current_asn, i.current_asn_source
          FROM ipintel.ip_inventory i
          WHERE p_after IS NULL OR i.ip > p_after
          ORDER BY i.ip
          LIMIT p_limit
          FOR NO KEY UPDATE) b;
    IF v_ips IS NULL THEN
        RETURN QUERY SELECT NULL::inet, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    UPDATE ipintel.ip_inventory i
    SET ip_type = c.ip_type, ip_type_source = c.ip_type_source, ip_provider = c.ip_provider,
        ip_class_basis = c.ip_class_basis, updated_at = now()
    FROM ipintel.ip_classes(v_ips, array_fill((now() AT TIME ZONE 'UTC')::date, ARRAY[cardinality(v_ips)]), v_asns,
                            v_sources) c
    WHERE i.ip = c.ip
      AND (i.ip_type, i.ip_type_source, i.ip_provider, i.ip_class_basis)
          IS DISTINCT FROM (c.ip_type, c.ip_type_source, c.ip_provider, c.ip_class_basis);
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN QUERY SELECT v_ips[cardinality(v_ips)], cardinality(v_ips)::bigint, v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.classify_inventory(inet, bigint) IS
    'Classifies the next p_limit ip_inventory rows after p_after (ip order; NULLs: from the first, all) as of today (ip_classes with their current ASN), writing ip_type, ip_type_source, ip_provider and ip_class_basis where they change. Returns the last IP of the batch (NULL: none left), how many were classified and how many changed. Called after range lists are loaded, one committed batch at a time.';
