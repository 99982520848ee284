-- From migrations/versions/0026_merge_near_floor.downgrade.sql: back to 0025. The full exclusion
-- constraint on host(ip) comes back (its GiST index is built over every range: ACCESS EXCLUSIVE
-- on ip_asn_history for that long, ~15 s per million rows measured here), and the functions of 0025.
-- A downgrade puts the keys back checked against every row (SHARE ROW EXCLUSIVE while it scans).
-- squawk-ignore-file ban-drop-function, constraint-missing-not-valid, ban-drop-constraint, adding-foreign-key-constraint
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '30min';

-- The generic half of every merge, after the source's own step: the batch's documents, and the
-- facts ip_inventory resolves from enrichment_state (current_asn with its history, geo_country,
-- is_scanner, is_riot, ip_type, each with the source it came from). One write per IP, and only
-- for an IP where something changes.
CREATE OR REPLACE FUNCTION ipintel.apply_answers(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_asns bigint[];
    v_changed bigint;
BEGIN
    -- A new ASN observation becomes current: its history first (see record_asn_history), as of
    -- this answer (when a better-ranked source stops observing, the fallback becomes current
    -- now, not when it was observed). No observation at all ("not in the file") keeps the last.
    SELECT ipintel.record_asn_history(array_agg(f.asn_source), array_agg(r.ip), array_agg(f.asn),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.enrichment_results r
    JOIN ipintel.ip_inventory i ON i.ip = r.ip
    CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
    WHERE r.batch_id = p_batch_id AND f.asn_source IS NOT NULL
      AND (i.current_asn, i.current_asn_source) IS DISTINCT FROM (f.asn, f.asn_source);

    UPDATE ipintel.ip_inventory i
    SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
        geo_country = n.geo_country, geo_country_source = n.geo_country_source,
        is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
        ip_type = n.ip_type, ip_type_source = n.ip_type_source, updated_at = now()
    FROM (
        SELECT r.ip,
               CASE WHEN cur.enrichment -> p_source IS DISTINCT FROM r.result
                    THEN cur.enrichment || jsonb_build_object(p_source, r.result) ELSE cur.enrichment END AS enrichment,
               CASE WHEN f.asn_source IS NOT NULL THEN f.asn ELSE cur.current_asn END AS current_asn,
               coalesce(f.asn_source, cur.current_asn_source) AS current_asn_source,
               coalesce(f.country, 'XX') AS geo_country, f.country_source AS geo_country_source,
               f.is_scanner, f.is_scanner_source, f.is_riot,
               CASE WHEN cur.is_bogon THEN 'bogon' ELSE coalesce(f.ip_type, 'unknown') END AS ip_type,
               CASE WHEN NOT cur.is_bogon THEN f.ip_type_source END AS ip_type_source
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory cur ON cur.ip = r.ip
        CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
        WHERE r.batch_id = p_batch_id) n
    WHERE i.ip = n.ip
      AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
           i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source)
          IS DISTINCT FROM
          (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
           n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source);
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.apply_answers(text, bigint) IS
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot and ip_type with their *_source from enrichment_state by the registry''s ranks (resolved_facts), and refreshes the ASN counts. Writes only rows that change; returns how many.';

-- Records ASN observations in ip_asn_history, BEFORE the caller sets current_asn: an IP whose
-- ASN changed gets its open range closed at the observation time and a new one opened there,
-- so consecutive ranges meet; an IP without history gets its first range. Callers pass only
-- real observations (an ASN, or "allocated but not routed" as NULL), never "this source does
-- not know". Returns the ASNs (old and new) whose counts the caller must refresh once
-- current_asn is set.
CREATE OR REPLACE FUNCTION ipintel.record_asn_history(p_sources text[], p_ips inet[], p_asns bigint[], p_observed_at timestamptz[])
    RETURNS bigint[]
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_asns bigint[];
BEGIN
    SELECT array_agg(DISTINCT v.asn) FILTER (WHERE v.asn IS NOT NULL)
    INTO v_asns
    FROM unnest(p_ips, p_asns) AS o(ip, asn)
    JOIN ipintel.ip_inventory i ON i.ip = o.ip
    CROSS JOIN LATERAL (VALUES (i.current_asn), (o.asn)) AS v(asn)
    WHERE i.current_asn IS DISTINCT FROM o.asn;

    -- Separate statements, in this order: the exclusion constraint must see each open range
    -- closed before the range that follows it is inserted.
    UPDATE ipintel.ip_asn_history h
    SET valid = tstzrange(lower(h.valid), o.observed_at, '[)')
    FROM unnest(p_ips, p_asns, p_observed_at) AS o(ip, asn, observed_at)
    WHERE h.ip = o.ip AND upper_inf(h.valid) AND h.asn IS DISTINCT FROM o.asn
      AND o.observed_at > lower(h.valid);

    -- Observed at the very instant the open range began: that range simply had the wrong ASN.
    UPDATE ipintel.ip_asn_history h
    SET asn = o.asn, source = o.source, recorded_at = now()
    FROM unnest(p_sources, p_ips, p_asns, p_observed_at) AS o(source, ip, asn, observed_at)
    WHERE h.ip = o.ip AND upper_inf(h.valid) AND h.asn IS DISTINCT FROM o.asn
      AND o.observed_at <= lower(h.valid);

    -- An IP without an open range gets one. The open-range index decides (ON CONFLICT), not an
    -- anti-join: during a first enrichment the table grows faster than its statistics, and a
    -- planner that believes it empty loops over it once per inserted row.
    INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
    SELECT o.ip, o.asn, tstzrange(o.observed_at, NULL, '[)'), o.source
    FROM unnest(p_sources, p_ips, p_asns, p_observed_at) AS o(source, ip, asn, observed_at)
    ON CONFLICT (ip) WHERE upper_inf(valid) DO NOTHING;

    RETURN coalesce(v_asns, '{}');
END;
$$;
COMMENT ON FUNCTION ipintel.record_asn_history(text[], inet[], bigint[], timestamptz[]) IS
    'Records real ASN observations (parallel arrays: observing source, IP, ASN, time) in ip_asn_history, closing and opening ranges where the ASN changed; call before setting current_asn. Returns the ASNs whose counts may change.';

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
               CASE WHEN cur.ip IS NULL OR i.enrichment -> $1 IS DISTINCT FROM r.result THEN r.fetched_at
                    ELSE least(cur.changed_at, r.fetched_at) END,
               f.asn, coalesce(f.asn_observed, false), f.country, f.is_scanner, f.is_riot, f.ip_type
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory i ON i.ip = r.ip
        LEFT JOIN ipintel.enrichment_state cur ON cur.ip = r.ip AND cur.source = $1
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

DROP FUNCTION ipintel.verify_integrity();
-- Back: the keys, checked against every row.
ALTER TABLE ipintel.ip_asn_history
    ADD CONSTRAINT ip_asn_history_ip_fkey FOREIGN KEY (ip) REFERENCES ipintel.ip_inventory (ip),
    ADD CONSTRAINT ip_asn_history_asn_fkey FOREIGN KEY (asn) REFERENCES ipintel.asn_inventory (asn),
    ADD CONSTRAINT ip_asn_history_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source);
ALTER TABLE ipintel.ip_inventory
    ADD CONSTRAINT ip_inventory_current_asn_source_fkey FOREIGN KEY (current_asn_source) REFERENCES ipintel.enrichment_policy (source),
    ADD CONSTRAINT ip_inventory_geo_country_source_fkey FOREIGN KEY (geo_country_source) REFERENCES ipintel.enrichment_policy (source),
    ADD CONSTRAINT ip_inventory_is_scanner_source_fkey FOREIGN KEY (is_scanner_source) REFERENCES ipintel.enrichment_policy (source),
    ADD CONSTRAINT ip_inventory_ip_type_source_fkey FOREIGN KEY (ip_type_source) REFERENCES ipintel.enrichment_policy (source);
ALTER TABLE ipintel.enrichment_state
    ADD CONSTRAINT enrichment_state_ip_fkey FOREIGN KEY (ip) REFERENCES ipintel.ip_inventory (ip),
    ADD CONSTRAINT enrichment_state_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source);
DROP TRIGGER ip_asn_history_ranges_do_not_overlap_insert ON ipintel.ip_asn_history;
DROP TRIGGER ip_asn_history_ranges_do_not_overlap_update ON ipintel.ip_asn_history;
DROP FUNCTION ipintel.asn_ranges_do_not_overlap();
ALTER TABLE ipintel.ip_asn_history
    DROP CONSTRAINT ip_asn_history_closed_ranges_do_not_overlap,
    ADD CONSTRAINT ip_asn_history_ranges_do_not_overlap EXCLUDE USING gist ((pg_catalog.host(ip)) WITH =, valid WITH &&);
DROP FUNCTION ipintel.inet_key(inet);
COMMENT ON CONSTRAINT ip_asn_history_ip_is_host_address ON ipintel.ip_asn_history IS
    'ip is a host address (as in ip_inventory), so equal host(ip) text means equal ip: the exclusion constraint relies on it.';
COMMENT ON CONSTRAINT ip_asn_history_ranges_do_not_overlap ON ipintel.ip_asn_history IS
    'One IP''s ranges never overlap. Keyed on host(ip) (btree_gist text opclass), not on ip: btree_gist''s inet opclass is lossy and deprecated upstream, and queries on ip cannot pick this GiST index (they use ip_asn_history_ip_idx), so only the constraint check reads it.';
