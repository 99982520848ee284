-- From migrations/versions/0043_lock_written_rows.downgrade.sql
-- Back to 0042: merge_batch locks the ip_inventory row of every staged IP. No table touched.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

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

    SELECT count(*), array_agg(r.ip) INTO v_fetched, v_ips
    FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id;
    IF v_fetched > 0 THEN
        EXECUTE format('SELECT array_agg(DISTINCT f.asn) FROM ipintel_staging.enrichment_results r '
                       'CROSS JOIN LATERAL %s(r.result) f WHERE r.batch_id = $1 AND f.asn IS NOT NULL',
                       v_facts_function)
        INTO v_asns USING p_batch_id;
        PERFORM ipintel.lock_for_merge(v_ips, coalesce(v_asns, '{}'));
        v_merged := ipintel.record_enrichment_state(v_source, p_batch_id);
        IF v_merge_function IS NOT NULL THEN
            EXECUTE format('SELECT %s($1, $2)', v_merge_function) USING p_run_id, p_batch_id;
        END IF;
        PERFORM ipintel.apply_answers(v_source, p_batch_id);
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
    'Merges one staged batch of a run, whatever its source: locks (lock_for_merge), records the answers and their facts in enrichment_state (record_enrichment_state), calls the source''s own merge step (enrichment_policy.merge_function, if any), writes the documents and resolved facts into ip_inventory (apply_answers), resolves the failures of the IPs answered, records the staged failures, empties the batch and adds to the run''s fetched / merged / failed. Returns those three counts.';

-- CREATE OR REPLACE resets a function's attributes: the loader's entry point stays SECURITY DEFINER.
ALTER FUNCTION ipintel.merge_batch(bigint, bigint) SECURITY DEFINER;
