-- From migrations/versions/0071_resolved_facts_per_batch.downgrade.sql (sql/070_enrichment.sql)
-- resolved_facts(inet) and apply_answers as revision 0070 left them; resolved_facts_of dropped.
-- Locks: none beyond the functions' own catalog rows (CREATE OR REPLACE FUNCTION): no table is
-- read or written, and a merge running now keeps the version it started with.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.resolved_facts(p_ip inet)
    RETURNS TABLE (asn bigint, asn_source text, asn_observed_at timestamptz, country text, country_source text,
                   is_scanner boolean, is_scanner_source text, is_riot boolean, ip_type text, ip_type_source text,
                   is_known_attacker boolean, is_known_attacker_source text, threatfeeds text[])
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    SELECT x.asn, x.asn_source, x.asn_observed_at, x.country, x.country_source, x.is_scanner, x.is_scanner_source,
           x.is_riot,
           coalesce(x.ip_type, CASE WHEN x.asn IS NOT NULL THEN 'routed' END),
           CASE WHEN x.ip_type IS NOT NULL THEN x.ip_type_source WHEN x.asn IS NOT NULL THEN x.asn_source END,
           x.is_known_attacker, x.is_known_attacker_source,
           (SELECT k.threatfeeds FROM ipintel.enrichment_state k WHERE k.ip = p_ip AND k.source = x.is_known_attacker_source)
    FROM (
        SELECT (array_agg(e.asn ORDER BY p.asn_rank) FILTER (WHERE p.asn_rank IS NOT NULL AND e.asn_observed))[1] AS asn,
               (array_agg(e.source ORDER BY p.asn_rank) FILTER (WHERE p.asn_rank IS NOT NULL AND e.asn_observed))[1]
                   AS asn_source,
               (array_agg(e.fetched_at ORDER BY p.asn_rank) FILTER (WHERE p.asn_rank IS NOT NULL AND e.asn_observed))[1]
                   AS asn_observed_at,
               (array_agg(e.country ORDER BY p.country_rank)
                    FILTER (WHERE p.country_rank IS NOT NULL AND e.country IS NOT NULL))[1] AS country,
               (array_agg(e.source ORDER BY p.country_rank)
                    FILTER (WHERE p.country_rank IS NOT NULL AND e.country IS NOT NULL))[1] AS country_source,
               (array_agg(e.is_scanner ORDER BY p.is_scanner_rank)
                    FILTER (WHERE p.is_scanner_rank IS NOT NULL AND e.is_scanner IS NOT NULL))[1] AS is_scanner,
               (array_agg(e.source ORDER BY p.is_scanner_rank)
                    FILTER (WHERE p.is_scanner_rank IS NOT NULL AND e.is_scanner IS NOT NULL))[1] AS is_scanner_source,
               (array_agg(e.is_riot ORDER BY p.is_riot_rank)
                    FILTER (WHERE p.is_riot_rank IS NOT NULL AND e.is_riot IS NOT NULL))[1] AS is_riot,
               (array_agg(e.ip_type ORDER BY p.ip_type_rank)
                    FILTER (WHERE p.ip_type_rank IS NOT NULL AND e.ip_type IS NOT NULL))[1] AS ip_type,
               (array_agg(e.source ORDER BY p.ip_type_rank)
                    FILTER (WHERE p.ip_type_rank IS NOT NULL AND e.ip_type IS NOT NULL))[1] AS ip_type_source,
               (array_agg(e.is_known_attacker ORDER BY p.is_known_attacker_rank)
                    FILTER (WHERE p.is_known_attacker_rank IS NOT NULL AND e.is_known_attacker IS NOT NULL))[1]
                   AS is_known_attacker,
               (array_agg(e.source ORDER BY p.is_known_attacker_rank)
                    FILTER (WHERE p.is_known_attacker_rank IS NOT NULL AND e.is_known_attacker IS NOT NULL))[1]
                   AS is_known_attacker_source
        FROM ipintel.enrichment_state e
        JOIN ipintel.enrichment_policy p ON p.source = e.source
        WHERE e.ip = p_ip) x;
END;

COMMENT ON FUNCTION ipintel.resolved_facts(inet) IS
    'The facts of one IP resolved across sources: for each fact the value of the first-ranked source (enrichment_policy *_rank) whose last answer gives it, with that source (and, for the ASN, when it was observed). ip_type here is what the sources say (falling back to routed when an ASN is known); ip_inventory.ip_type weighs it with the range lists and rules (ip_classes). threatfeeds are those of the source is_known_attacker came from. One row, NULLs when no source answered.';

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
    v_gained_asns bigint[];
    v_gained_ips bigint[];
    v_gained_sessions bigint[];
    v_gained_first_seen timestamptz[];
    v_gained_last_seen timestamptz[];
BEGIN
    WITH n AS MATERIALIZED (
        -- The IP's new values (v), and whether they change any fact but the class: only then
        -- is the IP classified again (c).
        SELECT v.*,
               ((v.old_enrichment, v.old_asn, v.old_asn_source, v.old_geo_country, v.old_geo_country_source,
                 v.old_is_scanner, v.old_is_scanner_source, v.old_is_riot, v.old_is_known_attacker,
                 v.old_is_known_attacker_source, v.old_threatfeeds)
                IS DISTINCT FROM
                (v.enrichment, v.current_asn, v.current_asn_source, v.geo_country, v.geo_country_source,
                 v.is_scanner, v.is_scanner_source, v.is_riot, v.is_known_attacker, v.is_known_attacker_source,
                 v.threatfeeds)
                OR v.kept_ip_class_basis IS NULL) AS facts_change
        FROM (
            SELECT r.ip, r.fetched_at, cur.current_asn AS old_asn, cur.current_asn_source AS old_asn_source,
                   f.asn AS observed_asn, f.asn_source AS observed_asn_source,
                   CASE WHEN cur.enrichment -> p_source IS DISTINCT FROM r.result
                        THEN cur.enrichment || jsonb_build_object(p_source, r.result) ELSE cur.enrichment END AS enrichment,
                   -- No ASN observation at all ("not in the file") keeps the last one.
                   CASE WHEN f.asn_source IS NOT NULL THEN f.asn ELSE cur.current_asn END AS current_asn,
                   coalesce(f.asn_source, cur.current_asn_source) AS current_asn_source,
                   coalesce(f.country, 'XX') AS geo_country, f.country_source AS geo_country_source,
                   f.is_scanner, f.is_scanner_source, f.is_riot,
                   f.is_known_attacker, f.is_known_attacker_source, f.threatfeeds,
                   cur.enrichment AS old_enrichment, cur.geo_country AS old_geo_country,
                   cur.geo_country_source AS old_geo_country_source, cur.is_scanner AS old_is_scanner,
                   cur.is_scanner_source AS old_is_scanner_source, cur.is_riot AS old_is_riot,
                   cur.is_known_attacker AS old_is_known_attacker,
                   cur.is_known_attacker_source AS old_is_known_attacker_source, cur.threatfeeds AS old_threatfeeds,
                   cur.ip_type AS kept_ip_type, cur.ip_type_source AS kept_ip_type_source,
                   cur.ip_provider AS kept_ip_provider, cur.ip_class_basis AS kept_ip_class_basis
            FROM ipintel_staging.enrichment_results r
            -- one index probe per staged row (OFFSET 0 keeps it one, revision 0056): a join let
            -- the planner hash the whole inventory for every batch
            CROSS JOIN LATERAL (SELECT c.* FROM ipintel.ip_inventory c WHERE c.ip = r.ip OFFSET 0) cur
            CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
            WHERE r.batch_id = p_batch_id
              -- An answer that repeats the stored document changes no fact (its facts are the
              -- same, and no other source's answer changed meanwhile): only its fetch time, which
              -- record_enrichment_state has written. So a refresh of unchanged answers resolves
              -- nothing (half of a re-merge's time went here); an IP never classified still is.
              AND (cur.enrichment -> p_source IS DISTINCT FROM r.result OR cur.ip_class_basis IS NULL)
        ) v
    ), c AS MATERIALIZED (
        -- The class as of today, once for the whole batch (ip_classes is never inlined: its
        -- arrays come from scalar subqueries, so no join re-runs it per row), and only for the IPs
        -- whose facts or ASN change here: the class of the others cannot change by this merge (a
        -- re-fetch of unchanged answers classified every IP again: about 9% of a re-merge's time).
        -- A new range list or AS name reaches them through classify_inventory (ranges load/fetch).
        SELECT x.*
        FROM ipintel.ip_classes(ARRAY(SELECT n.ip FROM n WHERE n.facts_change ORDER BY n.ip),
                                ARRAY(SELECT (now() AT TIME ZONE 'UTC')::date FROM n WHERE n.facts_change),
                                ARRAY(SELECT n.current_asn FROM n WHERE n.facts_change ORDER BY n.ip),
                                ARRAY(SELECT n.current_asn_source FROM n WHERE n.facts_change ORDER BY n.ip)) x
    ), written AS (
        UPDATE ipintel.ip_inventory i
        SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
            geo_country = n.geo_country, geo_country_source = n.geo_country_source,
            is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
            ip_type = n.ip_type, ip_type_source = n.ip_type_source, ip_provider = n.ip_provider,
            ip_class_basis = n.ip_class_basis, is_known_attacker = n.is_known_attacker,
            is_known_attacker_source = n.is_known_attacker_source, threatfeeds = n.threatfeeds, updated_at = now()
        FROM (SELECT n.*,
                     -- classified now, or the class it has (its facts do not change)
                     CASE WHEN n.facts_change THEN c.ip_type ELSE n.kept_ip_type END AS ip_type,
                     CASE WHEN n.facts_change THEN c.ip_type_source ELSE n.kept_ip_type_source END AS ip_type_source,
                     CASE WHEN n.facts_change THEN c.ip_provider ELSE n.kept_ip_provider END AS ip_provider,
                     CASE WHEN n.facts_change THEN c.ip_class_basis ELSE n.kept_ip_class_basis END AS ip_class_basis
              FROM n
              LEFT JOIN c ON c.ip = n.ip) n
        WHERE i.ip = n.ip
          AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
               i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source, i.ip_provider, i.ip_class_basis,
               i.is_known_attacker, i.is_known_attacker_source, i.threatfeeds)
              IS DISTINCT FROM
              (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
               n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source, n.ip_provider, n.ip_class_basis,
               n.is_known_attacker, n.is_known_attacker_source, n.threatfeeds)
        RETURNING n.ip, n.fetched_at, n.old_asn, n.old_asn_source, n.observed_asn, n.observed_asn_source,
                  n.current_asn, i.session_count, i.first_seen, i.last_seen
    ), moved AS (
        -- A new ASN observation (a value, or a better-ranked source) becomes current and goes to
        -- the history as of this answer: when a better-ranked source stops observing, the
        -- fallback becomes current now, not when it was observed.
        SELECT w.* FROM written w
        WHERE w.observed_asn_source IS NOT NULL
          AND (w.old_asn, w.old_asn_source) IS DISTINCT FROM (w.observed_asn, w.observed_asn_source)
    ), left_asn AS (
        -- ASNs an IP left: recounted (their first_seen / last_seen may narrow)
        SELECT DISTINCT w.old_asn AS asn FROM written w
        WHERE w.old_asn IS DISTINCT FROM w.current_asn AND w.old_asn IS NOT NULL
    ), gained AS (
        -- ASNs that only gained IPs: what they gain is added (revision 0050), not recounted
        SELECT w.current_asn AS asn, count(*) AS ips, sum(w.session_count)::bigint AS sessions,
               min(w.first_seen) AS first_seen, max(w.last_seen) AS last_seen
        FROM written w
        WHERE w.old_asn IS DISTINCT FROM w.current_asn AND w.current_asn IS NOT NULL
          AND w.current_asn NOT IN (SELECT l.asn FROM left_asn l)
        GROUP BY w.current_asn
    )
    SELECT (SELECT count(*) FROM written),
           (SELECT array_agg(m.observed_asn_source) FROM moved m), (SELECT array_agg(m.ip) FROM moved m),
           (SELECT array_agg(m.observed_asn) FROM moved m), (SELECT array_agg(m.fetched_at) FROM moved m),
           ARRAY(SELECT l.asn FROM left_asn l ORDER BY l.asn),
           (SELECT array_agg(g.asn) FROM gained g), (SELECT array_agg(g.ips) FROM gained g),
           (SELECT array_agg(g.sessions) FROM gained g), (SELECT array_agg(g.first_seen) FROM gained g),
           (SELECT array_agg(g.last_seen) FROM gained g)
    INTO v_changed, v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at, v_asns,
         v_gained_asns, v_gained_ips, v_gained_sessions, v_gained_first_seen, v_gained_last_seen;

    IF v_moved_ips IS NOT NULL THEN
        PERFORM ipintel.record_asn_history(v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at);
    END IF;
    -- The counts of the ASNs whose IPs changed: a recount of those an IP left, and what the others
    -- gained added (a recount read every IP of each ASN: the big ones, whole, in every batch).
    PERFORM ipintel.refresh_asn_counts(v_asns);
    IF v_gained_asns IS NOT NULL THEN
        PERFORM ipintel.add_to_asn_counts(v_gained_asns, v_gained_ips, v_gained_sessions, v_gained_first_seen,
                                          v_gained_last_seen);
    END IF;
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION ipintel.apply_answers(text, bigint) IS
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot and is_known_attacker (with threatfeeds) with their *_source from enrichment_state by the registry''s ranks (resolved_facts), classifies as of today the IPs whose facts or ASN change (ip_classes, once per batch: ip_type, ip_type_source, ip_provider, ip_class_basis; the others keep their class until classify_inventory), and keeps the ASN counts (recounting the ASNs an IP left, adding to those that only gained: add_to_asn_counts). An IP whose staged document equals its stored one (a refresh that learned nothing) is not resolved again: its facts cannot change (a change of the registry''s ranks reaches it with its next changed answer; resolved_facts shows it at once). Writes only rows that change; returns how many.';

-- Nothing before 0071 calls it (resolved_facts and apply_answers, replaced above, no longer do).
-- squawk-ignore ban-drop-function
DROP FUNCTION ipintel.resolved_facts_of(inet[]);
