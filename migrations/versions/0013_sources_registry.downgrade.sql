-- From migrations/versions/0013_sources_registry.downgrade.sql: back to 0012.
-- A downgrade removes what 0013 added, by definition.
-- squawk-ignore-file ban-drop-function, ban-drop-table, ban-drop-column, ban-drop-constraint, constraint-missing-not-valid, require-concurrent-index-creation
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP FUNCTION ipintel.merge_batch(bigint, bigint);
DROP FUNCTION ipintel.interrupt_abandoned_runs();
DROP FUNCTION ipintel.finish_run(bigint, text, text);
DROP FUNCTION ipintel.run_due_ips(bigint, bigint, boolean, inet[], bigint);
DROP FUNCTION ipintel.start_run(text, jsonb, text, text);

CREATE UNLOGGED TABLE ipintel_staging.maxmind_results (
    run_id      bigint      NOT NULL,
    batch_id    bigint      NOT NULL,
    ip          inet        NOT NULL,
    fetched_at  timestamptz NOT NULL,
    result      jsonb       NOT NULL
);
COMMENT ON TABLE ipintel_staging.maxmind_results IS 'Staging for merge_maxmind: one MaxMind document per IP.';
CREATE INDEX maxmind_results_batch_id_idx ON ipintel_staging.maxmind_results (batch_id);

CREATE UNLOGGED TABLE ipintel_staging.cymru_results (
    run_id      bigint      NOT NULL,
    batch_id    bigint      NOT NULL,
    ip          inet        NOT NULL,
    fetched_at  timestamptz NOT NULL,
    result      jsonb       NOT NULL
);
COMMENT ON TABLE ipintel_staging.cymru_results IS 'Staging for merge_cymru: one Team Cymru document per IP.';
CREATE INDEX cymru_results_batch_id_idx ON ipintel_staging.cymru_results (batch_id);

CREATE UNLOGGED TABLE ipintel_staging.greynoise_results (
    run_id      bigint      NOT NULL,
    batch_id    bigint      NOT NULL,
    ip          inet        NOT NULL,
    fetched_at  timestamptz NOT NULL,
    result      jsonb       NOT NULL
);
COMMENT ON TABLE ipintel_staging.greynoise_results IS 'Staging for merge_greynoise: one GreyNoise document per IP.';
CREATE INDEX greynoise_results_batch_id_idx ON ipintel_staging.greynoise_results (batch_id);

-- The common end of every merge: recount the ASNs whose IPs moved, resolve the failures of the
-- IPs just answered, empty the batch from the source's staging table, count what was merged.
CREATE FUNCTION ipintel.finish_batch(p_source text, p_run_id bigint, p_batch_id bigint, p_merged bigint,
                                     p_moved_asns bigint[] DEFAULT '{}')
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    PERFORM ipintel.refresh_asn_counts(p_moved_asns);
    EXECUTE format(
        'UPDATE ipintel.enrichment_failures f SET resolved_at = now() FROM ipintel_staging.%I r '
        'WHERE r.batch_id = $1 AND f.source = $2 AND f.ip = r.ip AND f.resolved_at IS NULL',
        p_source || '_results') USING p_batch_id, p_source;
    EXECUTE format('DELETE FROM ipintel_staging.%I r WHERE r.batch_id = $1', p_source || '_results')
        USING p_batch_id;
    UPDATE ipintel.enrichment_runs SET merged = merged + p_merged WHERE run_id = p_run_id;
    RETURN p_merged;
END;
$$;
COMMENT ON FUNCTION ipintel.finish_batch(text, bigint, bigint, bigint, bigint[]) IS
    'End of a merge: recounts p_moved_asns (refresh_asn_counts), resolves open failures of the IPs in the batch, deletes the batch from ipintel_staging.<source>_results, adds p_merged to the run. Returns p_merged.';

CREATE OR REPLACE FUNCTION ipintel.merge_maxmind(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
    v_asns bigint[];
BEGIN
    PERFORM ipintel.lock_for_merge(
        ARRAY(SELECT r.ip FROM ipintel_staging.maxmind_results r WHERE r.batch_id = p_batch_id),
        ARRAY(SELECT (r.result ->> 'asn')::bigint FROM ipintel_staging.maxmind_results r
              WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL));

    -- AS names from the MaxMind ASN file; Team Cymru's, when present, are kept (see merge_cymru).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, sources)
    SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
           (r.result ->> 'asn')::bigint, r.result ->> 'as_org',
           jsonb_build_object('maxmind', jsonb_build_object('as_org', r.result ->> 'as_org',
                                                            'fetched_at', r.fetched_at))
    FROM ipintel_staging.maxmind_results r
    WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL
    ORDER BY (r.result ->> 'asn')::bigint, r.fetched_at DESC
    ON CONFLICT (asn) DO UPDATE SET
        as_name = coalesce(a.sources #>> '{cymru,as_name}', excluded.as_name, a.as_name),
        sources = a.sources || excluded.sources,
        updated_at = now();

    -- MaxMind's ASN sets current_asn only where Team Cymru (live BGP) has not answered, only when
    -- an ASN database was read (the City file alone says nothing about ASNs), and only where the
    -- file knows the IP: "not in MaxMind's ASN file" is not "unrouted", so it is no observation.
    SELECT ipintel.record_asn_history('maxmind', array_agg(r.ip), array_agg((r.result ->> 'asn')::bigint),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.maxmind_results r
    JOIN ipintel.ip_inventory i ON i.ip = r.ip
    WHERE r.batch_id = p_batch_id
      AND jsonb_typeof(r.result -> 'asn_db') = 'object'
      AND r.result ->> 'asn' IS NOT NULL
      AND NOT (i.enrichment ? 'cymru');

    -- One write per row: the document and, with the same rule as above, current_asn.
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('maxmind', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        current_asn = CASE WHEN jsonb_typeof(r.result -> 'asn_db') = 'object' AND r.result ->> 'asn' IS NOT NULL
                                AND NOT (i.enrichment ? 'cymru')
                           THEN (r.result ->> 'asn')::bigint ELSE i.current_asn END,
        updated_at = now()
    FROM ipintel_staging.maxmind_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN ipintel.finish_batch('maxmind', p_run_id, p_batch_id, v_merged, v_asns);
END;
$$;
COMMENT ON FUNCTION ipintel.merge_maxmind(bigint, bigint) IS
    'Merges a staged MaxMind batch: enrichment->maxmind with its fetched_at, asn_inventory, current_asn (when Team Cymru has not answered and the ASN file knows the IP) and ip_asn_history (real observations only). Returns the IPs merged.';

CREATE OR REPLACE FUNCTION ipintel.merge_cymru(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
    v_asns bigint[];
BEGIN
    PERFORM ipintel.lock_for_merge(
        ARRAY(SELECT r.ip FROM ipintel_staging.cymru_results r WHERE r.batch_id = p_batch_id),
        ARRAY(SELECT (r.result ->> 'asn')::bigint FROM ipintel_staging.cymru_results r
              WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL));

    -- One row per origin ASN seen in the batch; rows whose facts did not change are skipped here
    -- in the SELECT (ON CONFLICT ... WHERE would still lock every conflicting row).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, as_country, rir, allocated, sources)
    SELECT n.asn, n.as_name, n.as_country, n.rir, n.allocated, jsonb_build_object('cymru', n.facts)
    FROM (
        SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
               (r.result ->> 'asn')::bigint AS asn,
               nullif(r.result ->> 'as_name', '') AS as_name,
               CASE WHEN upper(r.result ->> 'registered_country') ~ '^[A-Z]{2}$'
                    THEN upper(r.result ->> 'registered_country') END AS as_country,
               CASE WHEN lower(r.result ->> 'registry') ~ '^[a-z]+$' THEN lower(r.result ->> 'registry') END AS rir,
               (r.result ->> 'allocated')::date AS allocated,
               jsonb_build_object('as_name', r.result ->> 'as_name',
                                  'registered_country', r.result ->> 'registered_country',
                                  'registry', r.result ->> 'registry',
                                  'allocated', r.result ->> 'allocated') AS facts
        FROM ipintel_staging.cymru_results r
        WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL
        ORDER BY (r.result ->> 'asn')::bigint, r.fetched_at DESC
    ) n
    LEFT JOIN ipintel.asn_inventory cur ON cur.asn = n.asn
    WHERE cur.asn IS NULL
       OR (cur.as_name, cur.as_country, cur.rir, cur.allocated, cur.sources -> 'cymru')
          IS DISTINCT FROM (n.as_name, n.as_country, n.rir, n.allocated, n.facts)
    ORDER BY n.asn
    ON CONFLICT (asn) DO UPDATE SET
        as_name = excluded.as_name,
        as_country = excluded.as_country,
        rir = excluded.rir,
        allocated = excluded.allocated,
        sources = a.sources || excluded.sources,
        updated_at = now();

    -- History from real observations only: an origin ASN, or NA (allocated but not routed).
    -- "No match" (found: false) means Cymru knows nothing of the address: no observation.
    SELECT ipintel.record_asn_history('cymru', array_agg(r.ip), array_agg((r.result ->> 'asn')::bigint),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.cymru_results r
    WHERE r.batch_id = p_batch_id AND (r.result ->> 'found')::boolean IS DISTINCT FROM false;

    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('cymru', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        current_asn = CASE WHEN (r.result ->> 'found')::boolean IS DISTINCT FROM false
                           THEN (r.result ->> 'asn')::bigint ELSE i.current_asn END,
        updated_at = now()
    FROM ipintel_staging.cymru_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN ipintel.finish_batch('cymru', p_run_id, p_batch_id, v_merged, v_asns);
END;
$$;
COMMENT ON FUNCTION ipintel.merge_cymru(bigint, bigint) IS
    'Merges a staged Team Cymru batch: asn_inventory (name, registration country, RIR, allocation date; unchanged rows skipped), enrichment->cymru with its fetched_at, current_asn (Cymru takes precedence over MaxMind; a "no match" answer changes nothing) and ip_asn_history (real observations only). Returns the IPs merged.';

CREATE OR REPLACE FUNCTION ipintel.merge_greynoise(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
BEGIN
    PERFORM ipintel.lock_for_merge(
        ARRAY(SELECT r.ip FROM ipintel_staging.greynoise_results r WHERE r.batch_id = p_batch_id), '{}');
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('greynoise', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        updated_at = now()
    FROM ipintel_staging.greynoise_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN ipintel.finish_batch('greynoise', p_run_id, p_batch_id, v_merged);
END;
$$;
COMMENT ON FUNCTION ipintel.merge_greynoise(bigint, bigint) IS
    'Merges a staged GreyNoise batch into enrichment->greynoise with its fetched_at (is_scanner, is_riot and ip_type follow). Returns the IPs merged.';

DROP TABLE ipintel_staging.enrichment_results;

ALTER TABLE ipintel.ip_inventory ADD CONSTRAINT ip_inventory_enrichment_has_known_sources
    CHECK (enrichment - ARRAY['maxmind', 'cymru', 'greynoise'] = '{}'::jsonb) NOT VALID;
ALTER TABLE ipintel.ip_asn_history DROP CONSTRAINT ip_asn_history_source_fkey;
ALTER TABLE ipintel.ip_asn_history ADD CONSTRAINT ip_asn_history_source_is_known CHECK (source IN ('maxmind', 'cymru')) NOT VALID;
ALTER TABLE ipintel.api_budget DROP CONSTRAINT api_budget_source_fkey;
ALTER TABLE ipintel.api_budget ADD CONSTRAINT api_budget_source_is_known CHECK (source IN ('greynoise'));
ALTER TABLE ipintel.enrichment_failures DROP CONSTRAINT enrichment_failures_source_fkey;
ALTER TABLE ipintel.enrichment_failures ADD CONSTRAINT enrichment_failures_source_is_known
    CHECK (source IN ('maxmind', 'cymru', 'greynoise')) NOT VALID;
ALTER TABLE ipintel.enrichment_runs DROP CONSTRAINT enrichment_runs_source_fkey;
ALTER TABLE ipintel.enrichment_runs ADD CONSTRAINT enrichment_runs_source_is_known
    CHECK (source IN ('maxmind', 'cymru', 'greynoise')) NOT VALID;
ALTER TABLE ipintel.enrichment_policy DROP CONSTRAINT enrichment_policy_source_is_a_lower_case_name;
ALTER TABLE ipintel.enrichment_policy DROP CONSTRAINT enrichment_policy_kind_is_known;
ALTER TABLE ipintel.enrichment_policy DROP CONSTRAINT enrichment_policy_pass_order_key;
ALTER TABLE ipintel.enrichment_policy ADD CONSTRAINT enrichment_policy_source_is_known
    CHECK (source IN ('maxmind', 'cymru', 'greynoise'));
ALTER TABLE ipintel.enrichment_policy DROP COLUMN kind, DROP COLUMN pass_order, DROP COLUMN merge_function;
COMMENT ON TABLE ipintel.enrichment_policy IS
    'How long each source''s result stays fresh, and which IPs a source is asked about. Edit the rows to change the policy.';
COMMENT ON COLUMN ipintel.enrichment_policy.source IS 'maxmind, cymru or greynoise.';
COMMENT ON COLUMN ipintel.enrichment_runs.source IS 'maxmind, cymru or greynoise.';
COMMENT ON COLUMN ipintel.api_budget.source IS 'Source whose lookups are counted (greynoise).';
