-- From migrations/versions/0053_refresh_writes_freshness_only.upgrade.sql (sql/070_enrichment.sql)
-- A re-merge of unchanged answers (a TTL refresh) writes only what changed: their freshness
-- (issue 15).
-- - record_enrichment_state: an answer repeating the stored document gets a plain UPDATE of its
--   fetch time and build (its facts are those already recorded, made by the facts function from
--   that same document); the INSERT ... ON CONFLICT that computes facts takes only new and
--   changed documents, and is skipped when there are none.
-- - merge_batch: apply_answers is not called when no ip_inventory row of the batch may change
--   (it filtered every staged row out, probing ip_inventory once per answer).
-- - ipintel_staging.enrichment_results loses its foreign key on source: merge_batch takes the
--   source from the run; the per-row check was about 40% of the COPY of each batch.
-- Locks: the staging table AccessExclusive and enrichment_policy ShareRowExclusive for an
-- instant (the constraint and its triggers dropped; the staging table is empty between batches,
-- and lock_timeout bounds the wait for a running enrichment's batch); two functions replaced.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- A staging table's check that no client relies on (see above).
-- squawk-ignore ban-drop-constraint
ALTER TABLE ipintel_staging.enrichment_results DROP CONSTRAINT enrichment_results_source_fkey;

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
    UPDATE ipintel.enrichment_state e
    SET fetched_at = r.fetched_at, build = r.build, changed_at = least(e.changed_at, r.fetched_at)
    FROM ipintel_staging.enrichment_results r
    JOIN ipintel.ip_inventory i ON i.ip = r.ip
    WHERE r.batch_id = p_batch_id AND e.ip = r.ip AND e.source = p_source
      AND i.enrichment -> p_source = r.result;
    GET DIAGNOSTICS v_refreshed = ROW_COUNT;
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
        JOIN ipintel.ip_inventory i ON i.ip = r.ip
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
COMMENT ON FUNCTION ipintel.record_enrichment_state(text, bigint) IS
    'Records in enrichment_state that the IPs of a staged batch were answered by p_source: fetched_at, build, the typed facts of each answer (the source''s facts_function) and changed_at where the document differs from the stored one; call before writing the documents. An answer repeating the stored document (its facts are those already recorded) has only its fetch time and build written. Returns the IPs recorded.';

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
    LEFT JOIN ipintel.ip_inventory i ON i.ip = r.ip
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
COMMENT ON FUNCTION ipintel.merge_batch(bigint, bigint) IS
    'Merges one staged batch of a run, whatever its source: locks (lock_for_merge: the ip_inventory rows it may write, those with a new or changed document or no class yet, and the ASNs of the answers), records the answers and their facts in enrichment_state (record_enrichment_state), calls the source''s own merge step (enrichment_policy.merge_function, if any), writes the documents and resolved facts into ip_inventory (apply_answers), resolves the failures of the IPs answered, records the staged failures, empties the batch and adds to the run''s fetched / merged / failed. Returns those three counts.';
-- CREATE OR REPLACE resets a function's attributes: the loader's entry point stays SECURITY DEFINER.
ALTER FUNCTION ipintel.merge_batch(bigint, bigint) SECURITY DEFINER;
