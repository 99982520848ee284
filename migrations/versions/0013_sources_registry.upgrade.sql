-- From migrations/versions/0013_sources_registry.upgrade.sql (sql/030, 070, 080, 095 as of this revision)
-- Sources as data: enrichment_policy is the registry (kind, pass_order, merge_function); the
-- lists of source names in CHECK constraints become foreign keys to it (added NOT VALID here,
-- validated in 0015); one staging table for every source's results; merge_batch is the one
-- SQL call per batch; run status changes are SQL functions.
-- enrichment_policy has one row per source (three): its NOT NULL and CHECK scans are instant.
-- squawk-ignore-file adding-not-nullable-field, constraint-missing-not-valid
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

ALTER TABLE ipintel.enrichment_policy
    ADD COLUMN kind text,
    ADD COLUMN pass_order bigint,
    ADD COLUMN merge_function text;
UPDATE ipintel.enrichment_policy p
SET kind = v.kind, pass_order = v.pass_order, merge_function = v.merge_function
FROM (VALUES ('maxmind', 'offline_database', 10, 'ipintel.merge_maxmind'),
             ('cymru', 'remote_service', 20, 'ipintel.merge_cymru'),
             ('greynoise', 'remote_service', 30, 'ipintel.merge_greynoise')) AS v(source, kind, pass_order, merge_function)
WHERE p.source = v.source;
ALTER TABLE ipintel.enrichment_policy
    ALTER COLUMN kind SET NOT NULL,
    ALTER COLUMN pass_order SET NOT NULL,
    ALTER COLUMN merge_function SET NOT NULL;
-- A three-row table: the unique index builds in no time.
-- squawk-ignore require-concurrent-index-creation, disallowed-unique-constraint
ALTER TABLE ipintel.enrichment_policy ADD CONSTRAINT enrichment_policy_pass_order_key UNIQUE (pass_order);
-- The list of names becomes a rule for names: new sources are rows, not schema changes.
-- squawk-ignore ban-drop-constraint
ALTER TABLE ipintel.enrichment_policy DROP CONSTRAINT enrichment_policy_source_is_known;
ALTER TABLE ipintel.enrichment_policy
    ADD CONSTRAINT enrichment_policy_source_is_a_lower_case_name CHECK (source ~ '^[a-z][a-z0-9_]*$'),
    ADD CONSTRAINT enrichment_policy_kind_is_known CHECK (kind IN ('offline_database', 'remote_service', 'reference_list'));
COMMENT ON TABLE ipintel.enrichment_policy IS
    'The source registry: one row per enrichment source, with its pass order and merge function, how long its result stays fresh, and which IPs it is asked about. Edit the policy columns to change the policy.';
COMMENT ON COLUMN ipintel.enrichment_policy.kind IS
    'offline_database (a local file, e.g. MaxMind .mmdb), remote_service (asked over the network, e.g. Team Cymru, GreyNoise) or reference_list (ranges or lists loaded from files).';
COMMENT ON COLUMN ipintel.enrichment_policy.pass_order IS '`ipintel enrich` runs the passes in this order (unique).';
COMMENT ON COLUMN ipintel.enrichment_policy.merge_function IS
    'Schema-qualified name of the SQL function (p_run_id bigint, p_batch_id bigint) RETURNS bigint that merge_batch calls to merge a staged batch of this source.';
COMMENT ON COLUMN ipintel.enrichment_policy.source IS 'Source name (lower case), e.g. maxmind, cymru, greynoise: the key every other table refers to.';
COMMENT ON COLUMN ipintel.enrichment_runs.source IS 'The source of this pass (enrichment_policy).';
COMMENT ON COLUMN ipintel.api_budget.source IS 'Source whose lookups are counted (enrichment_policy), e.g. greynoise.';

-- Source lists become foreign keys to the registry (validated in 0015).
-- squawk-ignore-file ban-drop-constraint
ALTER TABLE ipintel.enrichment_runs DROP CONSTRAINT enrichment_runs_source_is_known;
ALTER TABLE ipintel.enrichment_runs ADD CONSTRAINT enrichment_runs_source_fkey
    FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source) NOT VALID;
ALTER TABLE ipintel.enrichment_failures DROP CONSTRAINT enrichment_failures_source_is_known;
ALTER TABLE ipintel.enrichment_failures ADD CONSTRAINT enrichment_failures_source_fkey
    FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source) NOT VALID;
ALTER TABLE ipintel.api_budget DROP CONSTRAINT api_budget_source_is_known;
ALTER TABLE ipintel.api_budget ADD CONSTRAINT api_budget_source_fkey
    FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source) NOT VALID;
ALTER TABLE ipintel.ip_asn_history DROP CONSTRAINT ip_asn_history_source_is_known;
ALTER TABLE ipintel.ip_asn_history ADD CONSTRAINT ip_asn_history_source_fkey
    FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source) NOT VALID;
-- A list of document keys: the merge functions are the only writers of enrichment, each of its own key.
ALTER TABLE ipintel.ip_inventory DROP CONSTRAINT ip_inventory_enrichment_has_known_sources;

CREATE UNLOGGED TABLE ipintel_staging.enrichment_results (
    run_id      bigint      NOT NULL,
    batch_id    bigint      NOT NULL,
    source      text        NOT NULL,
    ip          inet        NOT NULL,
    fetched_at  timestamptz NOT NULL,
    result      jsonb       NOT NULL,
    CONSTRAINT enrichment_results_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source)
);
COMMENT ON TABLE ipintel_staging.enrichment_results IS
    'Staging for merge_batch: one result document per IP of a batch, of the source the batch''s run belongs to.';
-- A new, empty table.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX enrichment_results_batch_id_idx ON ipintel_staging.enrichment_results (batch_id);

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
        ARRAY(SELECT r.ip FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id),
        ARRAY(SELECT (r.result ->> 'asn')::bigint FROM ipintel_staging.enrichment_results r
              WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL));

    -- AS names from the MaxMind ASN file; Team Cymru's, when present, are kept (see merge_cymru).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, sources)
    SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
           (r.result ->> 'asn')::bigint, r.result ->> 'as_org',
           jsonb_build_object('maxmind', jsonb_build_object('as_org', r.result ->> 'as_org',
                                                            'fetched_at', r.fetched_at))
    FROM ipintel_staging.enrichment_results r
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
    FROM ipintel_staging.enrichment_results r
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
    FROM ipintel_staging.enrichment_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_merged;
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
        ARRAY(SELECT r.ip FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id),
        ARRAY(SELECT (r.result ->> 'asn')::bigint FROM ipintel_staging.enrichment_results r
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
        FROM ipintel_staging.enrichment_results r
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
    FROM ipintel_staging.enrichment_results r
    WHERE r.batch_id = p_batch_id AND (r.result ->> 'found')::boolean IS DISTINCT FROM false;

    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('cymru', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        current_asn = CASE WHEN (r.result ->> 'found')::boolean IS DISTINCT FROM false
                           THEN (r.result ->> 'asn')::bigint ELSE i.current_asn END,
        updated_at = now()
    FROM ipintel_staging.enrichment_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_merged;
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
        ARRAY(SELECT r.ip FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id), '{}');
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('greynoise', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        updated_at = now()
    FROM ipintel_staging.enrichment_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN v_merged;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_greynoise(bigint, bigint) IS
    'Merges a staged GreyNoise batch into enrichment->greynoise with its fetched_at (is_scanner, is_riot and ip_type follow). Returns the IPs merged.';

-- Replaced by merge_batch; the per-source staging tables by enrichment_results.
-- squawk-ignore-file ban-drop-function, ban-drop-table
DROP FUNCTION ipintel.finish_batch(text, bigint, bigint, bigint, bigint[]);
DROP TABLE ipintel_staging.maxmind_results;
DROP TABLE ipintel_staging.cymru_results;
DROP TABLE ipintel_staging.greynoise_results;

CREATE FUNCTION ipintel.start_run(p_source text, p_provenance jsonb, p_status text DEFAULT 'running',
                                  p_message text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    INSERT INTO ipintel.enrichment_runs (source, status, provenance, message, finished_at)
    VALUES (p_source, p_status, p_provenance, p_message, CASE WHEN p_status = 'running' THEN NULL ELSE now() END)
    RETURNING run_id;
END;
COMMENT ON FUNCTION ipintel.start_run(text, jsonb, text, text) IS
    'Records a source pass: running (the pass goes on), or already over (skipped: not configured; failed: refused its configuration). Returns the run_id.';

CREATE FUNCTION ipintel.run_due_ips(p_run_id bigint, p_limit bigint, p_force boolean, p_ips inet[], p_current_build bigint)
    RETURNS SETOF inet
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_source text;
    v_due inet[];
BEGIN
    SELECT r.source INTO STRICT v_source FROM ipintel.enrichment_runs r WHERE r.run_id = p_run_id;
    SELECT coalesce(array_agg(d.ip ORDER BY d.last_seen DESC NULLS LAST, d.ip), '{}')
    INTO v_due
    FROM ipintel.ips_due(v_source, p_limit, p_force, p_ips, p_current_build) AS d;
    UPDATE ipintel.enrichment_runs SET requested = cardinality(v_due) WHERE run_id = p_run_id;
    RETURN QUERY SELECT u.ip FROM unnest(v_due) WITH ORDINALITY AS u(ip, n) ORDER BY u.n;
END;
$$;
COMMENT ON FUNCTION ipintel.run_due_ips(bigint, bigint, boolean, inet[], bigint) IS
    'The IPs a running pass is to fetch (ips_due for its source, most recently seen first), recorded as the run''s requested count.';

CREATE FUNCTION ipintel.finish_run(p_run_id bigint, p_status text, p_message text)
    RETURNS void
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    UPDATE ipintel.enrichment_runs SET status = p_status, finished_at = now(), message = p_message
    WHERE run_id = p_run_id;
END;
COMMENT ON FUNCTION ipintel.finish_run(bigint, text, text) IS
    'Ends a run with its status (succeeded, finished_with_failures, stopped, failed, interrupted) and why.';

CREATE FUNCTION ipintel.interrupt_abandoned_runs()
    RETURNS bigint
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    WITH ended AS (
        UPDATE ipintel.enrichment_runs
        SET status = 'interrupted', finished_at = now(), message = 'the process ended without finishing the run'
        WHERE status = 'running'
        RETURNING 1)
    SELECT count(*) FROM ended;
END;
COMMENT ON FUNCTION ipintel.interrupt_abandoned_runs() IS
    'Marks runs still "running" as interrupted: called by a new enrich once it holds the enrich lock, so no other run can be alive. Returns how many.';

------------------------------------------------------------------------------------------
-- merge_batch: the one SQL call per fetched batch, whatever the source
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.merge_batch(p_run_id bigint, p_batch_id bigint)
    RETURNS TABLE (fetched bigint, merged bigint, failed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_source text;
    v_merge_function text;
    v_fetched bigint;
    v_merged bigint := 0;
    v_failed bigint;
BEGIN
    SELECT r.source, p.merge_function INTO STRICT v_source, v_merge_function
    FROM ipintel.enrichment_runs r
    JOIN ipintel.enrichment_policy p ON p.source = r.source
    WHERE r.run_id = p_run_id;

    SELECT count(*) INTO v_fetched FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id;
    IF v_fetched > 0 THEN
        -- The registry names the source's merge function; ::regproc checks that it exists and
        -- quotes it, so the call is never built from free text.
        EXECUTE format('SELECT %s($1, $2)', v_merge_function::regproc) INTO v_merged USING p_run_id, p_batch_id;
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
    'Merges one staged batch of a run: calls the source''s merge function (enrichment_policy.merge_function) on ipintel_staging.enrichment_results, resolves the failures of the IPs answered, records the staged failures, empties the batch and adds to the run''s fetched / merged / failed. Returns those three counts.';
