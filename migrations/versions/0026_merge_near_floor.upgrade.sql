-- From migrations/versions/0026_merge_near_floor.upgrade.sql (sql/020_address_functions.sql,
-- sql/030_tiers.sql, sql/070_enrichment.sql and sql/095_analyst_views.sql as of this revision)
-- Merges near PostgreSQL's floor (issue 15): ip_asn_history's exclusion constraint covers closed
-- ranges only (keyed on inet_key, btree_gist's uuid opclass) and statement triggers refuse
-- overlapping open ranges; apply_answers resolves each IP's facts once (not twice) and
-- writes the history after ip_inventory; record_enrichment_state probes the stored state by index;
-- the foreign keys of the merge path's per-IP columns give way to verify_integrity (see below).
-- Locks: ip_inventory, ip_asn_history and enrichment_state ACCESS EXCLUSIVE for the key drops (instant).
-- Locks: ip_asn_history ACCESS EXCLUSIVE while the new constraint's GiST index is built over the
-- closed ranges only (the ASN moves: a few percent of the rows); functions replaced in place.
-- The exclusion constraint is replaced in the same statement by one that, with the triggers, keeps
-- the same guarantee; the dropped keys' rules are checked by verify_integrity.
-- squawk-ignore-file constraint-missing-not-valid, ban-drop-constraint
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '10min';
-- The exclusion constraint of ip_asn_history needs an exact, cheap GiST key for "the same IP":
-- btree_gist's inet opclass is lossy (deprecated upstream), its text opclass on host(ip) costs
-- twice the uuid one (measured: 10,000 inserts 540 ms against 250 ms).
-- Not STRICT, so that it is inlined (NULL gives NULL).
CREATE FUNCTION ipintel.inet_key(p_ip inet)
    RETURNS uuid
    LANGUAGE sql
    IMMUTABLE PARALLEL SAFE
RETURN CASE pg_catalog.family(p_ip)
    -- inet_send: family, bits, is_cidr, length, then the address bytes (4 or 16)
    WHEN 4 THEN ('00000000000000000000ffff' OPERATOR(pg_catalog.||)
                 pg_catalog.encode(pg_catalog.substr(pg_catalog.inet_send(p_ip), 5), 'hex'))::uuid
    ELSE pg_catalog.encode(pg_catalog.substr(pg_catalog.inet_send(p_ip), 5), 'hex')::uuid
END;
COMMENT ON FUNCTION ipintel.inet_key(inet) IS
    'The address bytes of an inet as a uuid (an IPv4 address as its IPv4-mapped IPv6 form ::ffff:a.b.c.d, which ip_inventory never stores as IPv6; the netmask ignored): an exact key for btree_gist''s uuid opclass, one per host address.';

-- Closed ranges only, keyed on inet_key(ip) (btree_gist's uuid opclass), never on ip with its
-- inet opclass; open ranges: ip_asn_history_open_range_idx and the statement triggers below.
ALTER TABLE ipintel.ip_asn_history
    DROP CONSTRAINT ip_asn_history_ranges_do_not_overlap,
    ADD CONSTRAINT ip_asn_history_closed_ranges_do_not_overlap
        EXCLUDE USING gist (ipintel.inet_key(ip) WITH =, valid WITH &&) WHERE (NOT upper_inf(valid));
COMMENT ON CONSTRAINT ip_asn_history_ip_is_host_address ON ipintel.ip_asn_history IS
    'ip is a host address (as in ip_inventory), so equal inet_key(ip) (the address bytes, netmask ignored) means equal ip: the exclusion constraint relies on it.';
COMMENT ON CONSTRAINT ip_asn_history_closed_ranges_do_not_overlap ON ipintel.ip_asn_history IS
    'Closed ranges of one IP never overlap. Keyed on inet_key(ip) (btree_gist uuid opclass, exact), not on ip: btree_gist''s inet opclass is lossy and deprecated upstream, and queries on ip cannot pick this GiST index (they use ip_asn_history_ip_idx). Open ranges are left out (a first enrichment writes one per IP: a GiST entry each cost 45 us of the 60 us of a row): at most one per IP (ip_asn_history_open_range_idx), and the statement triggers ip_asn_history_ranges_do_not_overlap_* refuse any open range that overlaps another range of its IP; ipintel.verify_integrity checks all pairs again.';

-- An open range must not overlap any other range of its IP. Checked once per statement, on the
-- rows it wrote (a join through ip_asn_history_ip_idx), instead of a GiST entry per open range.
-- Writers of one IP are serialised by lock_for_merge (its ip_inventory row), so a concurrent
-- writer cannot slip an overlap between the check and the commit.
CREATE FUNCTION ipintel.asn_ranges_do_not_overlap()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_ip inet;
BEGIN
    SELECT w.ip INTO v_ip
    FROM written w
    JOIN ipintel.ip_asn_history h ON h.ip = w.ip AND h.history_id <> w.history_id AND h.valid && w.valid
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ip_asn_history: two ranges of % overlap', v_ip
            USING ERRCODE = 'exclusion_violation', SCHEMA = 'ipintel', TABLE = 'ip_asn_history',
                  CONSTRAINT = 'ip_asn_history_ranges_do_not_overlap';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.asn_ranges_do_not_overlap() IS
    'Statement trigger function: refuses (exclusion_violation) a statement that leaves a range it wrote overlapping another range of the same IP in ip_asn_history.';
CREATE TRIGGER ip_asn_history_ranges_do_not_overlap_insert
    AFTER INSERT ON ipintel.ip_asn_history
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT
    EXECUTE FUNCTION ipintel.asn_ranges_do_not_overlap();
COMMENT ON TRIGGER ip_asn_history_ranges_do_not_overlap_insert ON ipintel.ip_asn_history IS
    'With ip_asn_history_closed_ranges_do_not_overlap: no two ranges of one IP overlap (inserted rows).';
CREATE TRIGGER ip_asn_history_ranges_do_not_overlap_update
    AFTER UPDATE ON ipintel.ip_asn_history
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT
    EXECUTE FUNCTION ipintel.asn_ranges_do_not_overlap();
COMMENT ON TRIGGER ip_asn_history_ranges_do_not_overlap_update ON ipintel.ip_asn_history IS
    'With ip_asn_history_closed_ranges_do_not_overlap: no two ranges of one IP overlap (updated rows).';

------------------------------------------------------------------------------------------
-- No foreign key on the columns the merges write for every IP (ip_asn_history.ip / asn /
-- source, ip_inventory's *_source, enrichment_state.ip / source): their values come from the
-- rows the merge has just joined and locked (the IP's ip_inventory row, the registry), so a
-- per-row check there can never fail; on a first enrichment they were 9 of the 11 referential
-- checks per IP. The tiers' own
-- keys stay (ip_inventory.current_asn, session_summaries.source_ip): the current_asn check
-- also covers the ASN of the history range written beside it. ipintel verify checks all of
-- them again, set-based (verify_integrity).
------------------------------------------------------------------------------------------
ALTER TABLE ipintel.ip_asn_history
    DROP CONSTRAINT ip_asn_history_ip_fkey,
    DROP CONSTRAINT ip_asn_history_asn_fkey,
    DROP CONSTRAINT ip_asn_history_source_fkey;
ALTER TABLE ipintel.ip_inventory
    DROP CONSTRAINT ip_inventory_current_asn_source_fkey,
    DROP CONSTRAINT ip_inventory_geo_country_source_fkey,
    DROP CONSTRAINT ip_inventory_is_scanner_source_fkey,
    DROP CONSTRAINT ip_inventory_ip_type_source_fkey;
ALTER TABLE ipintel.enrichment_state
    DROP CONSTRAINT enrichment_state_ip_fkey,
    DROP CONSTRAINT enrichment_state_source_fkey;

-- Records that the IPs of a staged batch were answered, BEFORE their documents are written:
-- fetched_at, build and the answer's typed facts (the source's facts_function) for every IP;
-- changed_at only where the staged document differs from the stored one. The caller holds the
-- batch's ip_inventory rows (lock_for_merge), so no other merge writes these state rows
-- meanwhile. An answer staged out of order (older than the stored change) with the same
-- document says it held by its fetch time already: least().
CREATE OR REPLACE FUNCTION ipintel.record_enrichment_state(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_facts_function regproc;
    v_count bigint;
BEGIN
    SELECT p.facts_function::regproc INTO STRICT v_facts_function
    FROM ipintel.enrichment_policy p WHERE p.source = p_source;
    -- The registry names the facts function; ::regproc checks that it exists and quotes it.
    EXECUTE format($sql$
        INSERT INTO ipintel.enrichment_state AS e
               (ip, source, fetched_at, build, changed_at, asn, asn_observed, country, is_scanner, is_riot, ip_type)
        SELECT r.ip, $1, r.fetched_at, r.build,
               CASE WHEN cur.changed_at IS NULL OR i.enrichment -> $1 IS DISTINCT FROM r.result THEN r.fetched_at
                    ELSE least(cur.changed_at, r.fetched_at) END,
               f.asn, coalesce(f.asn_observed, false), f.country, f.is_scanner, f.is_riot, f.ip_type
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory i ON i.ip = r.ip
        -- one index probe per staged row: the table grows through a first enrichment faster
        -- than its statistics, and a planner that believes it small scans and sorts it whole
        LEFT JOIN LATERAL (SELECT c.changed_at FROM ipintel.enrichment_state c
                           WHERE c.ip = r.ip AND c.source = $1 LIMIT 1) cur ON true
        LEFT JOIN LATERAL %s(r.result) f ON true
        WHERE r.batch_id = $2
        ORDER BY r.ip
        ON CONFLICT (ip, source) DO UPDATE SET
            fetched_at = excluded.fetched_at,
            build = excluded.build,
            changed_at = excluded.changed_at,
            asn = excluded.asn,
            asn_observed = excluded.asn_observed,
            country = excluded.country,
            is_scanner = excluded.is_scanner,
            is_riot = excluded.is_riot,
            ip_type = excluded.ip_type
        $sql$, v_facts_function) USING p_source, p_batch_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION ipintel.record_enrichment_state(text, bigint) IS
    'Records in enrichment_state that the IPs of a staged batch were answered by p_source: fetched_at, build, the typed facts of each answer (the source''s facts_function) and changed_at where the document differs from the stored one; call before writing the documents. Returns the IPs recorded.';

-- Records ASN observations in ip_asn_history: an IP whose ASN changed gets its open range closed
-- at the observation time and a new one opened there, so consecutive ranges meet; an IP without
-- history gets its first range. Callers pass only real observations (an ASN, or "allocated but
-- not routed" as NULL), never "this source does not know", and only for IPs they hold
-- (lock_for_merge). Returns the ASNs (old and new) of the ranges it changed. Every statement
-- finds its rows through the open-range index (no join over the whole table).
-- Index probes only (no hash or merge join): the input is one batch, the table every IP, and a
-- first enrichment grows the table faster than autovacuum analyzes it, so a planner trusting
-- its statistics hashed the whole table once per batch.
CREATE OR REPLACE FUNCTION ipintel.record_asn_history(p_sources text[], p_ips inet[], p_asns bigint[], p_observed_at timestamptz[])
    RETURNS bigint[]
    LANGUAGE plpgsql
    SET search_path = ''
    SET enable_hashjoin = off
    SET enable_mergejoin = off
AS $$
DECLARE
    v_closed bigint[];
    v_corrected bigint[];
    v_opened bigint[];
BEGIN
    -- Separate statements, in this order: each open range is closed before the range that
    -- follows it is inserted.
    WITH closed AS (
        UPDATE ipintel.ip_asn_history h
        SET valid = tstzrange(lower(h.valid), o.observed_at, '[)')
        FROM unnest(p_ips, p_asns, p_observed_at) AS o(ip, asn, observed_at)
        WHERE h.ip = o.ip AND upper_inf(h.valid) AND h.asn IS DISTINCT FROM o.asn
          AND o.observed_at > lower(h.valid)
        RETURNING h.asn AS old_asn, o.asn AS new_asn)
    SELECT array_agg(c.old_asn) || array_agg(c.new_asn) INTO v_closed FROM closed c;

    -- Observed at the very instant the open range began: that range simply had the wrong ASN.
    WITH corrected AS (
        UPDATE ipintel.ip_asn_history h
        SET asn = o.asn, source = o.source, recorded_at = now()
        FROM (SELECT x.history_id, x.asn AS old_asn, u.source, u.asn
              FROM unnest(p_sources, p_ips, p_asns, p_observed_at) AS u(source, ip, asn, observed_at)
              JOIN ipintel.ip_asn_history x ON x.ip = u.ip AND upper_inf(x.valid) AND x.asn IS DISTINCT FROM u.asn
                                          AND u.observed_at <= lower(x.valid)) o
        WHERE h.history_id = o.history_id
        RETURNING o.old_asn, o.asn AS new_asn)
    SELECT array_agg(c.old_asn) || array_agg(c.new_asn) INTO v_corrected FROM corrected c;

    -- An IP without an open range gets one. The open-range index decides (ON CONFLICT), not an
    -- anti-join: during a first enrichment the table grows faster than its statistics, and a
    -- planner that believes it empty loops over it once per inserted row.
    WITH opened AS (
        INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
        SELECT o.ip, o.asn, tstzrange(o.observed_at, NULL, '[)'), o.source
        FROM unnest(p_sources, p_ips, p_asns, p_observed_at) AS o(source, ip, asn, observed_at)
        ON CONFLICT (ip) WHERE upper_inf(valid) DO NOTHING
        RETURNING asn)
    SELECT array_agg(c.asn) INTO v_opened FROM opened c;

    RETURN ARRAY(SELECT DISTINCT a.asn FROM unnest(v_closed || v_corrected || v_opened) AS a(asn)
                 WHERE a.asn IS NOT NULL ORDER BY a.asn);
END;
$$;
COMMENT ON FUNCTION ipintel.record_asn_history(text[], inet[], bigint[], timestamptz[]) IS
    'Records real ASN observations (parallel arrays: observing source, IP, ASN, time) in ip_asn_history, closing and opening ranges where the ASN changed. Returns the ASNs (old and new) of the ranges it changed, in order.';

-- The generic half of every merge, after the source's own step: the batch's documents, and the
-- facts ip_inventory resolves from enrichment_state (current_asn with its history, geo_country,
-- is_scanner, is_riot, ip_type, each with the source it came from). Each IP's facts are resolved
-- once (resolved_facts, one index probe per staged row: linear whatever the statistics of the
-- staging table say); one write per IP, and only for an IP where something changes; the written
-- rows whose ASN observation changed go on to ip_asn_history.
CREATE OR REPLACE FUNCTION ipintel.apply_answers(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
    v_moved_sources text[];
    v_moved_ips inet[];
    v_moved_asns bigint[];
    v_moved_at timestamptz[];
    v_asns bigint[];
BEGIN
    WITH n AS (
        SELECT r.ip, r.fetched_at, cur.current_asn AS old_asn, cur.current_asn_source AS old_asn_source,
               f.asn AS observed_asn, f.asn_source AS observed_asn_source,
               CASE WHEN cur.enrichment -> p_source IS DISTINCT FROM r.result
                    THEN cur.enrichment || jsonb_build_object(p_source, r.result) ELSE cur.enrichment END AS enrichment,
               -- No ASN observation at all ("not in the file") keeps the last one.
               CASE WHEN f.asn_source IS NOT NULL THEN f.asn ELSE cur.current_asn END AS current_asn,
               coalesce(f.asn_source, cur.current_asn_source) AS current_asn_source,
               coalesce(f.country, 'XX') AS geo_country, f.country_source AS geo_country_source,
               f.is_scanner, f.is_scanner_source, f.is_riot,
               CASE WHEN cur.is_bogon THEN 'bogon' ELSE coalesce(f.ip_type, 'unknown') END AS ip_type,
               CASE WHEN NOT cur.is_bogon THEN f.ip_type_source END AS ip_type_source
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory cur ON cur.ip = r.ip
        CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
        WHERE r.batch_id = p_batch_id
    ), written AS (
        UPDATE ipintel.ip_inventory i
        SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
            geo_country = n.geo_country, geo_country_source = n.geo_country_source,
            is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
            ip_type = n.ip_type, ip_type_source = n.ip_type_source, updated_at = now()
        FROM n
        WHERE i.ip = n.ip
          AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
               i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source)
              IS DISTINCT FROM
              (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
               n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source)
        RETURNING n.ip, n.fetched_at, n.old_asn, n.old_asn_source, n.observed_asn, n.observed_asn_source,
                  n.current_asn
    ), moved AS (
        -- A new ASN observation (a value, or a better-ranked source) becomes current and goes to
        -- the history as of this answer: when a better-ranked source stops observing, the
        -- fallback becomes current now, not when it was observed.
        SELECT w.* FROM written w
        WHERE w.observed_asn_source IS NOT NULL
          AND (w.old_asn, w.old_asn_source) IS DISTINCT FROM (w.observed_asn, w.observed_asn_source)
    )
    SELECT (SELECT count(*) FROM written),
           (SELECT array_agg(m.observed_asn_source) FROM moved m), (SELECT array_agg(m.ip) FROM moved m),
           (SELECT array_agg(m.observed_asn) FROM moved m), (SELECT array_agg(m.fetched_at) FROM moved m),
           -- the ASNs whose counts change: old and new current_asn where it changed
           ARRAY(SELECT DISTINCT a.asn FROM written w CROSS JOIN LATERAL (VALUES (w.old_asn), (w.current_asn)) AS a(asn)
                 WHERE w.old_asn IS DISTINCT FROM w.current_asn AND a.asn IS NOT NULL)
    INTO v_changed, v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at, v_asns;

    IF v_moved_ips IS NOT NULL THEN
        PERFORM ipintel.record_asn_history(v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at);
    END IF;
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.apply_answers(text, bigint) IS
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot and ip_type with their *_source from enrichment_state by the registry''s ranks (resolved_facts), and refreshes the ASN counts. Writes only rows that change; returns how many.';

-- What ip_asn_history and ip_inventory's *_source columns obey without a per-row check (see
-- sql/030_tiers.sql and sql/070_enrichment.sql), checked from scratch over all of them. Sorted by
-- start, a set of ranges has an overlapping pair exactly when two neighbours overlap.
CREATE FUNCTION ipintel.verify_integrity()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH ranges AS (
        SELECT h.ip, h.asn, h.source, h.valid,
               lag(h.valid) OVER (PARTITION BY h.ip ORDER BY lower(h.valid), upper(h.valid)) AS previous
        FROM ipintel.ip_asn_history h
    ), found AS (
        SELECT 1 AS n, r.ip AS example FROM ranges r WHERE r.previous && r.valid
        UNION ALL
        SELECT 2, r.ip FROM ranges r WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory i WHERE i.ip = r.ip)
        UNION ALL
        SELECT 3, r.ip FROM ranges r
        WHERE r.asn IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.asn_inventory a WHERE a.asn = r.asn)
        UNION ALL
        SELECT 4, r.ip FROM ranges r
        WHERE NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = r.source)
        UNION ALL
        SELECT 5, i.ip FROM ipintel.ip_inventory i
        CROSS JOIN LATERAL (VALUES (i.current_asn_source), (i.geo_country_source), (i.is_scanner_source),
                                   (i.ip_type_source)) AS v(source)
        WHERE v.source IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = v.source)
        UNION ALL
        SELECT 6, e.ip FROM ipintel.enrichment_state e
        WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory i WHERE i.ip = e.ip)
           OR NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = e.source)
    )
    SELECT r.rule, count(DISTINCT f.example),
           coalesce((array_agg(DISTINCT host(f.example)) FILTER (WHERE f.example IS NOT NULL))[1:3], '{}')
    FROM (VALUES (1, 'no two ranges of one IP in ip_asn_history overlap'),
                 (2, 'every ip_asn_history IP is in ip_inventory'),
                 (3, 'every ip_asn_history ASN is in asn_inventory'),
                 (4, 'every ip_asn_history source is a registered source'),
                 (5, 'every ip_inventory *_source is a registered source'),
                 (6, 'every enrichment_state row is of an IP in ip_inventory and a registered source')) AS r(n, rule)
    LEFT JOIN found f ON f.n = r.n
    GROUP BY r.n, r.rule
    ORDER BY r.n;
END;
COMMENT ON FUNCTION ipintel.verify_integrity() IS
    'The rules kept without a per-row check on the merge path, checked from scratch: no two ranges of one IP in ip_asn_history overlap (an exclusion constraint covers closed ranges, statement triggers open ones), every history IP, ASN and source exists (ip_inventory, asn_inventory, enrichment_policy), every ip_inventory *_source is registered, and every enrichment_state row is of a known IP and source. violations: the IPs concerned, with up to three examples; 0 everywhere: sound.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ipintel FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    ipintel.inet_key(inet),
    ipintel.verify_integrity()
TO ipintel_reader, ipintel_loader;
