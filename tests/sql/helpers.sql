-- Helpers shared by the pgTAP files (not a test: run_pgtap.sh loads it once into the test
-- database, after the migrations). They drive the production SQL the way the loader does.
CREATE SCHEMA pgtap_helpers;

-- One pass of a source: its answers (a JSON object, ip -> document) staged as one batch of a new
-- run and merged by merge_batch; the run is then finished. Returns the IPs merged.
CREATE FUNCTION pgtap_helpers.answer(p_source text, p_answers jsonb, p_fetched_at timestamptz, p_build bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
AS $$
DECLARE
    v_run bigint := ipintel.start_run(p_source, '{}'::jsonb);
    v_batch bigint := nextval('ipintel_staging.batch_id_seq');
    v_merged bigint;
BEGIN
    INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result, build)
    SELECT v_run, v_batch, p_source, a.key::inet, p_fetched_at, a.value, p_build FROM jsonb_each(p_answers) a;
    SELECT m.merged INTO v_merged FROM ipintel.merge_batch(v_run, v_batch) m;
    PERFORM ipintel.finish_run(v_run, 'succeeded', NULL);
    RETURN v_merged;
END;
$$;

-- One routing-table snapshot: {{prefix, asn}, ...} staged and loaded as p_dataset's snapshot of
-- p_day. Returns whether it was loaded (false: that day was loaded before).
CREATE FUNCTION pgtap_helpers.load_routes(p_day date, p_pairs text[], p_dataset text DEFAULT 'routeviews')
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
DECLARE
    v_batch bigint := nextval('ipintel_staging.batch_id_seq');
    v_loaded boolean;
BEGIN
    INSERT INTO ipintel_staging.routing_prefixes (batch_id, prefix, asn)
    SELECT v_batch, p_pairs[i][1]::cidr, p_pairs[i][2]::bigint FROM generate_subscripts(p_pairs, 1) AS i;
    SELECT l.loaded INTO v_loaded FROM ipintel.load_routing_snapshot(p_dataset, p_day, 'pgtap', v_batch) l;
    RETURN v_loaded;
END;
$$;
