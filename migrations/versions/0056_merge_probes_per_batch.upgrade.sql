-- From migrations/versions/0056_merge_probes_per_batch.upgrade.sql (sql/070_enrichment.sql)
-- A merged batch reads its own IPs' rows of ip_inventory by one index probe each (issue 15).
-- Three statements of merge_batch joined the staged answers to ip_inventory, and the planner
-- could hash the whole inventory once per batch of 10,000 answers: merge_batch's count of the
-- IPs it may write, record_enrichment_state's insert of new answers and apply_answers' read of
-- the current rows. Each is now a LATERAL probe (OFFSET 0 keeps it one). And the refresh of
-- repeated answers runs only when the batch repeats a stored document (found by the same
-- probes): in a first enrichment, whose state table grows faster than its statistics, it
-- joined every batch to the whole table in a loop to update no row. The same rows written.
-- Locks: CREATE OR REPLACE FUNCTION: none on any table; no scan. Grants and comments stay.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.record_enrichment_state(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_facts_function regproc;
    v_staged bigint;
    v_refreshed bigint;
    v_count bigint;
BEGIN
    SELECT p.facts_function::regproc INTO STRICT v_facts_function
    FROM ipintel.enrichment_policy p WHERE p.source = p_source;
    SELECT count(*) INTO v_staged FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id;
    -- Unchanged documents with a state row: their fetch time (and build) only. No other writer
    -- touches these rows (above), so the order in which they are locked does not matter.
    -- Only when the batch repeats any stored document (revision 0056): found by one probe per
    -- staged row. A first enrichment repeats none, and its state table grows faster than its
    -- statistics: the planner believed it a few rows and joined the batch to all of it in a
    -- loop, about 600 ms of every batch of 10,000 at 300,000 IPs for an update of no row.
    IF NOT EXISTS (SELECT FROM ipintel_staging.enrichment_results r
                   CROSS JOIN LATERAL (SELECT c.enrichment -> p_source AS document FROM ipintel.ip_inventory c
                                       WHERE c.ip = r.ip OFFSET 0) i
                   WHERE r.batch_id = p_batch_id AND i.document = r.result) THEN
        v_refreshed := 0;
    ELSE
        UPDATE ipintel.enrichment_state e
        SET fetched_at = r.fetched_at, build = r.build, changed_at = least(e.changed_at, r.fetched_at)
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory i ON i.ip = r.ip
        WHERE r.batch_id = p_batch_id AND e.ip = r.ip AND e.source = p_source
          AND i.enrichment -> p_source = r.result;
        GET DIAGNOSTICS v_refreshed = ROW_COUNT;
    END IF;
    IF v_refreshed = v_staged THEN
        RETURN v_refreshed;  -- nothing new or changed (the INSERT below would only filter them out)
    END IF;
    -- The registry names the facts function; ::regproc checks that it exists and quotes it.
    EXECUTE format($sql$
        INSERT INTO ipintel.enrichment_state AS e
               (ip, source, fetched_at, build, changed_at, asn, asn_observed, country, is_scanner, is_riot, ip_type,
                is_known_attacker, threatfeeds)
        -- changed_at: only new or changed documents come here (the filter below; repeated ones
        -- were refreshed above), so the document changed when it was fetched
        SELECT r.ip, $1, r.fetched_at, r.build, r.fetched_at,
               f.asn, coalesce(f.asn_observed, false), f.country, f.is_scanner, f.is_riot, f.ip_type,
               f.is_known_attacker, f.threatfeeds
        FROM ipintel_staging.enrichment_results r
        -- one index probe per staged row (revision 0056): as a join, the planner hashed the
        -- whole inventory for every batch
        CROSS JOIN LATERAL (SELECT c.enrichment FROM ipintel.ip_inventory c WHERE c.ip = r.ip OFFSET 0) i
        -- one index probe per staged row: the table grows through a first enrichment faster
        -- than its statistics, and a planner that believes it small scans and sorts it whole
        LEFT JOIN LATERAL (SELECT c.changed_at FROM ipintel.enrichment_state c
                           WHERE c.ip = r.ip AND c.source = $1 LIMIT 1) cur ON true
        LEFT JOIN LATERAL %s(r.result) f ON true
        WHERE r.batch_id = $2
          -- the rest of the batch: a new or changed document, or no state row yet
          AND (cur.changed_at IS NULL OR i.enrichment -> $1 IS DISTINCT FROM r.result)
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
            ip_type = excluded.ip_type,
            is_known_attacker = excluded.is_known_attacker,
            threatfeeds = excluded.threatfeeds
        $sql$, v_facts_function) USING p_source, p_batch_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_refreshed + v_count;
END;
$$;

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

CREATE OR REPLACE FUNCTION ipintel.merge_batch(p_run_id bigint, p_batch_id bigint)
    RETURNS TABLE (fetched bigint, merged bigint, failed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_source text;
    v_merge_function regproc;
    v_facts_function regproc;
    v_ips inet[];
    v_asns bigint[];
    v_fetched bigint;
    v_merged bigint := 0;
    v_failed bigint;
BEGIN
    -- The registry names the source's functions; ::regproc checks that they exist and quotes
    -- them, so no call is ever built from free text.
    SELECT r.source, p.merge_function::regproc, p.facts_function::regproc
    INTO STRICT v_source, v_merge_function, v_facts_function
    FROM ipintel.enrichment_runs r
    JOIN ipintel.enrichment_policy p ON p.source = r.source
    WHERE r.run_id = p_run_id;

    -- v_ips: the IPs whose ip_inventory row this batch may write, the rows apply_answers writes:
    -- a new or changed document, or an IP never classified (revision 0043). An answer that repeats
    -- the stored document writes only its enrichment_state row, which no other writer touches (one
    -- enrichment at a time): its ip_inventory row is not locked, so a refresh of unchanged answers
    -- does not write a lock into every row it read. Documents change only here, so the set cannot
    -- grow before the lock is taken.
    SELECT count(*),
           array_agg(r.ip) FILTER (WHERE i.enrichment -> v_source IS DISTINCT FROM r.result OR i.ip_class_basis IS NULL)
    INTO v_fetched, v_ips
    FROM ipintel_staging.enrichment_results r
    -- one index probe per staged row (revision 0056): a join read the whole inventory per batch
    LEFT JOIN LATERAL (SELECT c.enrichment, c.ip_class_basis FROM ipintel.ip_inventory c
                       WHERE c.ip = r.ip OFFSET 0) i ON true
    WHERE r.batch_id = p_batch_id;
    IF v_fetched > 0 THEN
        EXECUTE format('SELECT array_agg(DISTINCT f.asn) FROM ipintel_staging.enrichment_results r '
                       'CROSS JOIN LATERAL %s(r.result) f WHERE r.batch_id = $1 AND f.asn IS NOT NULL',
                       v_facts_function)
        INTO v_asns USING p_batch_id;
        PERFORM ipintel.lock_for_merge(coalesce(v_ips, '{}'), coalesce(v_asns, '{}'));
        v_merged := ipintel.record_enrichment_state(v_source, p_batch_id);
        IF v_merge_function IS NOT NULL THEN
            EXECUTE format('SELECT %s($1, $2)', v_merge_function) USING p_run_id, p_batch_id;
        END IF;
        -- apply_answers writes only the rows of v_ips (the same filter): none, nothing to do
        -- (a TTL refresh of unchanged answers; revision 0053).
        IF v_ips IS NOT NULL THEN
            PERFORM ipintel.apply_answers(v_source, p_batch_id);
        END IF;
    END IF;

    -- Answered now: an open failure of these IPs for this source is over.
    UPDATE ipintel.enrichment_failures f SET resolved_at = now()
    FROM ipintel_staging.enrichment_results r
    WHERE r.batch_id = p_batch_id AND f.source = v_source AND f.ip = r.ip AND f.resolved_at IS NULL;
    DELETE FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id;
    v_failed := ipintel.record_failures(p_batch_id);

    UPDATE ipintel.enrichment_runs
    SET fetched = enrichment_runs.fetched + v_fetched, merged = enrichment_runs.merged + v_merged,
        failed = enrichment_runs.failed + v_failed
    WHERE run_id = p_run_id;
    RETURN QUERY SELECT v_fetched, v_merged, v_failed;
END;
$$;

-- CREATE OR REPLACE resets a function's attributes: the loader's entry point stays SECURITY DEFINER.
ALTER FUNCTION ipintel.merge_batch(bigint, bigint) SECURITY DEFINER;
