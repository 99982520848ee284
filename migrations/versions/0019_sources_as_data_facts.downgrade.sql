-- From migrations/versions/0019_sources_as_data_facts.downgrade.sql: back to 0018's schema and functions.
-- What 0019 added is removed, by definition; 0018's definitions come back.
-- squawk-ignore-file ban-drop-function, ban-drop-view, ban-drop-column, ban-drop-constraint, ban-drop-default, renaming-column
-- Regenerating the columns rewrites ip_inventory and checks the country constraint at once: a
-- downgrade is a maintenance-window operation.
-- squawk-ignore-file adding-field-with-default, constraint-missing-not-valid
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '0';

DROP TRIGGER ip_inventory_bogon_is_typed ON ipintel.ip_inventory;
DROP FUNCTION ipintel.classify_bogon();
DROP FUNCTION ipintel.take_snapshots();
DROP VIEW ipintel.snapshot_backlog;
DROP VIEW ipintel.snapshot_waits;
DROP VIEW ipintel.snapshot_pending_sources;
DROP FUNCTION ipintel.merge_batch(bigint, bigint);
DROP FUNCTION ipintel.merge_maxmind(bigint, bigint);
DROP FUNCTION ipintel.merge_cymru(bigint, bigint);
DROP FUNCTION ipintel.maxmind_facts(jsonb);
DROP FUNCTION ipintel.cymru_facts(jsonb);
DROP FUNCTION ipintel.greynoise_facts(jsonb);
DROP FUNCTION ipintel.apply_answers(text, bigint);
DROP FUNCTION ipintel.ranked_as_name(jsonb);
DROP FUNCTION ipintel.resolved_facts(inet);
DROP FUNCTION ipintel.record_asn_history(text[], inet[], bigint[], timestamptz[]);
DROP FUNCTION ipintel.record_enrichment_state(text, bigint);
DROP FUNCTION ipintel.ips_due(text, bigint, boolean, inet[], bigint);
DROP FUNCTION ipintel.skipped_for_known_asn(ipintel.enrichment_policy, ipintel.ip_inventory);

ALTER TABLE ipintel.ip_inventory
    DROP CONSTRAINT ip_inventory_current_asn_source_fkey,
    DROP CONSTRAINT ip_inventory_geo_country_source_fkey,
    DROP CONSTRAINT ip_inventory_is_scanner_source_fkey,
    DROP CONSTRAINT ip_inventory_ip_type_source_fkey,
    DROP COLUMN current_asn_source,
    DROP COLUMN geo_country_source,
    DROP COLUMN is_scanner_source,
    DROP COLUMN ip_type_source,
    ALTER COLUMN geo_country DROP DEFAULT,
    ALTER COLUMN ip_type DROP DEFAULT;
-- The four columns are generated again, as in 0018 (this rewrites ip_inventory: a downgrade only).
DROP FUNCTION ipintel.report_top_asns(timestamptz, timestamptz, bigint);
DROP FUNCTION ipintel.report_top_countries(timestamptz, timestamptz, bigint);
DROP FUNCTION ipintel.report_ip_types(timestamptz, timestamptz, bigint);
DROP VIEW ipintel.session_attribution;
ALTER TABLE ipintel.ip_inventory
    DROP COLUMN geo_country,
    DROP COLUMN is_scanner,
    DROP COLUMN is_riot,
    DROP COLUMN ip_type;
ALTER TABLE ipintel.ip_inventory
    ADD COLUMN geo_country text NOT NULL GENERATED ALWAYS AS (
        coalesce(enrichment #>> '{maxmind,country}', enrichment #>> '{cymru,registered_country}', 'XX')
    ) STORED,
    ADD COLUMN is_scanner boolean GENERATED ALWAYS AS ((enrichment #>> '{greynoise,noise}')::boolean) STORED,
    ADD COLUMN is_riot boolean GENERATED ALWAYS AS ((enrichment #>> '{greynoise,riot}')::boolean) STORED,
    ADD COLUMN ip_type text NOT NULL GENERATED ALWAYS AS (
        CASE
            WHEN ipintel.is_bogon(ip) THEN 'bogon'
            WHEN (enrichment #>> '{greynoise,riot}')::boolean THEN 'riot'
            WHEN (enrichment #>> '{greynoise,noise}')::boolean THEN 'scanner'
            WHEN (enrichment #>> '{maxmind,is_anonymous_proxy}')::boolean THEN 'anonymizer'
            WHEN enrichment ? 'cymru' AND enrichment #> '{cymru,asn}' = 'null'::jsonb THEN 'unrouted'
            WHEN jsonb_typeof(enrichment #> '{cymru,asn}') = 'number'
              OR jsonb_typeof(enrichment #> '{maxmind,asn}') = 'number' THEN 'routed'
            ELSE 'unknown'
        END
    ) STORED;
ALTER TABLE ipintel.ip_inventory ADD CONSTRAINT ip_inventory_geo_country_is_iso_alpha2 CHECK (geo_country ~ '^[A-Z]{2}$');
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX ip_inventory_geo_country_idx ON ipintel.ip_inventory (geo_country);
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX ip_inventory_is_scanner_idx ON ipintel.ip_inventory (ip) WHERE is_scanner;
COMMENT ON INDEX ipintel.ip_inventory_is_scanner_idx IS 'Small partial index: the known scanners.';
COMMENT ON COLUMN ipintel.ip_inventory.geo_country IS
    'Generated: MaxMind geolocation country, else Team Cymru registration country, else XX (unknown).';
COMMENT ON COLUMN ipintel.ip_inventory.is_scanner IS 'Generated: GreyNoise saw this IP scanning the internet (noise). NULL when GreyNoise was never asked.';
COMMENT ON COLUMN ipintel.ip_inventory.is_riot IS 'Generated: GreyNoise RIOT, a known benign business service (CDN, search crawler...). NULL when never asked.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_type IS
    'Generated first classification: bogon, riot (benign service), scanner (GreyNoise noise), anonymizer (MaxMind anonymous proxy), unrouted (Team Cymru: allocated, no BGP origin), routed (a source gave an origin ASN, none of the above) or unknown.';

ALTER TABLE ipintel.enrichment_state
    DROP COLUMN asn, DROP COLUMN asn_observed, DROP COLUMN country, DROP COLUMN is_scanner, DROP COLUMN is_riot,
    DROP COLUMN ip_type;

UPDATE ipintel.enrichment_policy SET merge_function = 'ipintel.merge_greynoise' WHERE source = 'greynoise';
ALTER TABLE ipintel.enrichment_policy
    DROP COLUMN facts_function, DROP COLUMN asn_rank, DROP COLUMN country_rank, DROP COLUMN is_scanner_rank,
    DROP COLUMN is_riot_rank, DROP COLUMN ip_type_rank, DROP COLUMN as_name_rank;
-- squawk-ignore adding-not-nullable-field
ALTER TABLE ipintel.enrichment_policy ALTER COLUMN merge_function SET NOT NULL;
ALTER TABLE ipintel.enrichment_policy RENAME COLUMN skip_when_asn_known TO skip_when_maxmind_asn;

CREATE FUNCTION ipintel.skipped_for_maxmind_asn(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.skip_when_maxmind_asn AND jsonb_typeof(p_ip.enrichment #> '{maxmind,asn}') IS NOT DISTINCT FROM 'number';
COMMENT ON FUNCTION ipintel.skipped_for_maxmind_asn(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the policy skips the IP because MaxMind already gave it an ASN (skip_when_maxmind_asn).';

CREATE FUNCTION ipintel.ips_due(
    p_source text,
    p_limit bigint DEFAULT NULL,
    p_force boolean DEFAULT false,
    p_ips inet[] DEFAULT NULL,
    p_current_build bigint DEFAULT NULL)
    RETURNS TABLE (ip inet, last_seen timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT i.ip, i.last_seen
    FROM ipintel.ip_inventory i
    CROSS JOIN ipintel.enrichment_policy p
    LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
    WHERE p.source = p_source
      AND NOT i.is_bogon
      AND (p_ips IS NULL OR i.ip = ANY (p_ips))
      AND (p_force OR (
          -- never fetched, stale, or fetched from an older database build
          (e.ip IS NULL
           OR ipintel.answer_is_stale(p, e.fetched_at)
           OR e.build < p_current_build)
          AND NOT (e.ip IS NULL AND ipintel.skipped_for_maxmind_asn(p, i))
          AND NOT ipintel.below_session_threshold(p, i)
          -- a failure that asking again cannot fix, or one asked to wait
          AND NOT EXISTS (
              SELECT 1 FROM ipintel.enrichment_failures f
              WHERE f.source = p_source AND f.ip = i.ip AND f.resolved_at IS NULL
                AND (NOT f.retryable OR f.retry_after > now()))))
    ORDER BY i.last_seen DESC NULLS LAST, i.ip
    LIMIT p_limit;
END;
COMMENT ON FUNCTION ipintel.ips_due(text, bigint, boolean, inet[], bigint) IS
    'IPs due for a source, most recently seen first: never fetched (no enrichment_state row), older than the policy TTL (never for an offline_database source), or fetched from an older data build than p_current_build; never bogons. p_ips restricts to those IPs; p_force ignores freshness and policy filters.';

CREATE OR REPLACE FUNCTION ipintel.lock_for_merge(p_ips inet[], p_asns bigint[])
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    PERFORM 1 FROM ipintel.ip_inventory i
    WHERE i.ip = ANY (p_ips)
    ORDER BY i.ip
    FOR NO KEY UPDATE;
    PERFORM 1 FROM ipintel.asn_inventory a
    WHERE a.asn = ANY (p_asns)
       OR a.asn IN (SELECT i.current_asn FROM ipintel.ip_inventory i WHERE i.ip = ANY (p_ips))
    ORDER BY a.asn
    FOR NO KEY UPDATE;
END;
$$;
COMMENT ON FUNCTION ipintel.lock_for_merge(inet[], bigint[]) IS
    'Locks the ip_inventory rows of p_ips (ip order), then the asn_inventory rows of p_asns and of their current ASNs (asn order): the one lock order of ingest and every merge, so concurrent runs cannot deadlock.';

CREATE FUNCTION ipintel.record_enrichment_state(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    WITH recorded AS (
        INSERT INTO ipintel.enrichment_state AS e (ip, source, fetched_at, build, changed_at)
        SELECT r.ip, p_source, r.fetched_at, r.build,
               CASE WHEN cur.ip IS NULL OR i.enrichment -> p_source IS DISTINCT FROM r.result THEN r.fetched_at
                    ELSE least(cur.changed_at, r.fetched_at) END
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory i ON i.ip = r.ip
        LEFT JOIN ipintel.enrichment_state cur ON cur.ip = r.ip AND cur.source = p_source
        WHERE r.batch_id = p_batch_id
        ORDER BY r.ip
        ON CONFLICT (ip, source) DO UPDATE SET
            fetched_at = excluded.fetched_at,
            build = excluded.build,
            changed_at = excluded.changed_at
        RETURNING 1)
    SELECT count(*) FROM recorded;
END;
COMMENT ON FUNCTION ipintel.record_enrichment_state(text, bigint) IS
    'Records in enrichment_state that the IPs of a staged batch were answered by p_source (fetched_at, build; changed_at where the facts differ from the stored document); call before writing the documents. Returns the IPs recorded.';

CREATE FUNCTION ipintel.record_asn_history(p_source text, p_ips inet[], p_asns bigint[], p_observed_at timestamptz[])
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
    SET asn = o.asn, source = p_source, recorded_at = now()
    FROM unnest(p_ips, p_asns, p_observed_at) AS o(ip, asn, observed_at)
    WHERE h.ip = o.ip AND upper_inf(h.valid) AND h.asn IS DISTINCT FROM o.asn
      AND o.observed_at <= lower(h.valid);

    INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
    SELECT o.ip, o.asn, tstzrange(o.observed_at, NULL, '[)'), p_source
    FROM unnest(p_ips, p_asns, p_observed_at) AS o(ip, asn, observed_at)
    WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_asn_history h WHERE h.ip = o.ip AND upper_inf(h.valid));

    RETURN coalesce(v_asns, '{}');
END;
$$;
COMMENT ON FUNCTION ipintel.record_asn_history(text, inet[], bigint[], timestamptz[]) IS
    'Records real ASN observations (parallel arrays) in ip_asn_history, closing and opening ranges where the ASN changed; call before setting current_asn. Returns the ASNs whose counts may change.';

CREATE FUNCTION ipintel.merge_maxmind(p_run_id bigint, p_batch_id bigint)
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
    v_merged := ipintel.record_enrichment_state('maxmind', p_batch_id);

    -- AS names from the MaxMind ASN file; Team Cymru's, when present, are kept (see merge_cymru).
    -- Rows that would not change are skipped here in the SELECT (ON CONFLICT ... WHERE would
    -- still lock every conflicting row).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, sources)
    SELECT n.asn, n.as_org, jsonb_build_object('maxmind', n.facts)
    FROM (
        SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
               (r.result ->> 'asn')::bigint AS asn, r.result ->> 'as_org' AS as_org,
               jsonb_build_object('as_org', r.result ->> 'as_org') AS facts
        FROM ipintel_staging.enrichment_results r
        WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL
        ORDER BY (r.result ->> 'asn')::bigint, r.fetched_at DESC
    ) n
    LEFT JOIN ipintel.asn_inventory cur ON cur.asn = n.asn
    WHERE cur.asn IS NULL
       OR (cur.as_name, cur.sources -> 'maxmind')
          IS DISTINCT FROM (coalesce(cur.sources #>> '{cymru,as_name}', n.as_org, cur.as_name), n.facts)
    ORDER BY n.asn
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

    -- One write per row, and only for a row that changes: the document and, with the same rule
    -- as above, current_asn. The freshness of an unchanged answer is in enrichment_state.
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('maxmind', r.result),
        current_asn = CASE WHEN jsonb_typeof(r.result -> 'asn_db') = 'object' AND r.result ->> 'asn' IS NOT NULL
                                AND NOT (i.enrichment ? 'cymru')
                           THEN (r.result ->> 'asn')::bigint ELSE i.current_asn END,
        updated_at = now()
    FROM ipintel_staging.enrichment_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip
      AND (i.enrichment -> 'maxmind' IS DISTINCT FROM r.result
           OR (jsonb_typeof(r.result -> 'asn_db') = 'object' AND r.result ->> 'asn' IS NOT NULL
               AND NOT (i.enrichment ? 'cymru')
               AND i.current_asn IS DISTINCT FROM (r.result ->> 'asn')::bigint));
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_merged;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_maxmind(bigint, bigint) IS
    'Merges a staged MaxMind batch: enrichment_state (fetched_at, build) for every IP; enrichment->maxmind and current_asn (when Team Cymru has not answered and the ASN file knows the IP) only where they change; asn_inventory (unchanged rows skipped) and ip_asn_history (real observations only). Returns the IPs merged.';

CREATE FUNCTION ipintel.merge_cymru(p_run_id bigint, p_batch_id bigint)
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
    v_merged := ipintel.record_enrichment_state('cymru', p_batch_id);

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

    -- Only rows that change: the document, or current_asn (same rule as the history above).
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('cymru', r.result),
        current_asn = CASE WHEN (r.result ->> 'found')::boolean IS DISTINCT FROM false
                           THEN (r.result ->> 'asn')::bigint ELSE i.current_asn END,
        updated_at = now()
    FROM ipintel_staging.enrichment_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip
      AND (i.enrichment -> 'cymru' IS DISTINCT FROM r.result
           OR ((r.result ->> 'found')::boolean IS DISTINCT FROM false
               AND i.current_asn IS DISTINCT FROM (r.result ->> 'asn')::bigint));
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_merged;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_cymru(bigint, bigint) IS
    'Merges a staged Team Cymru batch: enrichment_state (fetched_at) for every IP; asn_inventory (name, registration country, RIR, allocation date), enrichment->cymru and current_asn (Cymru takes precedence over MaxMind; a "no match" answer changes nothing) only where they change; ip_asn_history (real observations only). Returns the IPs merged.';

CREATE FUNCTION ipintel.merge_greynoise(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
BEGIN
    PERFORM ipintel.lock_for_merge(
        ARRAY(SELECT r.ip FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id), '{}');
    v_merged := ipintel.record_enrichment_state('greynoise', p_batch_id);
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('greynoise', r.result),
        updated_at = now()
    FROM ipintel_staging.enrichment_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip
      AND i.enrichment -> 'greynoise' IS DISTINCT FROM r.result;
    RETURN v_merged;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_greynoise(bigint, bigint) IS
    'Merges a staged GreyNoise batch: enrichment_state (fetched_at) for every IP, enrichment->greynoise where it changes (is_scanner, is_riot and ip_type follow). Returns the IPs merged.';

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

CREATE FUNCTION ipintel.source_declines(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN ipintel.skipped_for_maxmind_asn(p_policy, p_ip)
    OR ipintel.below_session_threshold(p_policy, p_ip)
    OR EXISTS (
        SELECT 1 FROM ipintel.enrichment_failures f
        WHERE f.source = p_policy.source AND f.ip = p_ip.ip
          AND f.resolved_at IS NULL AND NOT f.retryable);
COMMENT ON FUNCTION ipintel.source_declines(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the source will not be asked about the IP: the policy skips it (skip_when_maxmind_asn, min_session_count) or an open failure says asking again cannot help. A definitive answer for snapshots.';

CREATE VIEW ipintel.snapshot_backlog AS
SELECT s.session_id,
       s.source_ip,
       s.first_event_at,
       s.created_at AS ingested_at,
       s.snapshot_at,
       w.waiting_for,
       w.window_closes_at
FROM ipintel.session_summaries s
JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(p.source ORDER BY p.source), '{}'::text[]) AS waiting_for,
           max(s.created_at + p.snapshot_window) AS window_closes_at
    FROM ipintel.enrichment_policy p
    LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
    WHERE p.enabled
      AND s.created_at + p.snapshot_window > now()
      AND NOT i.is_bogon
      -- never answered, or its answer is stale (due again): a new session waits for a fresh one
      AND (e.ip IS NULL OR ipintel.answer_is_stale(p, e.fetched_at))
      AND NOT ipintel.source_declines(p, i)) w
WHERE s.snapshot_complete_at IS NULL;
COMMENT ON VIEW ipintel.snapshot_backlog IS
    'Sessions whose snapshot is still incomplete, with the sources still awaited (waiting_for; empty: complete at the next take_snapshots) and when the last of their windows closes.';
COMMENT ON COLUMN ipintel.snapshot_backlog.ingested_at IS 'session_summaries.created_at: each source''s snapshot_window starts here.';
COMMENT ON COLUMN ipintel.snapshot_backlog.waiting_for IS 'Enabled sources that have neither answered nor declined for the IP while their window is open.';
COMMENT ON COLUMN ipintel.snapshot_backlog.window_closes_at IS 'When the last awaited source''s window closes; the snapshot is then completed with what is known.';

CREATE FUNCTION ipintel.take_snapshots()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
BEGIN
    WITH ready AS (
        SELECT b.session_id,
               NOT (b.waiting_for && ARRAY['maxmind', 'cymru']) AS asn_ready,
               NOT ('maxmind' = ANY (b.waiting_for))
                   AND (i.enrichment #>> '{maxmind,country}' IS NOT NULL OR NOT ('cymru' = ANY (b.waiting_for))) AS country_ready,
               NOT ('greynoise' = ANY (b.waiting_for)) AS scanner_ready,
               b.waiting_for = '{}' AS all_ready,
               CASE WHEN h.ip IS NOT NULL THEN h.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN h.ip IS NOT NULL THEN h.source
                    WHEN i.current_asn IS NOT NULL AND i.enrichment #>> '{cymru,found}' = 'true' THEN 'cymru'
                    WHEN i.current_asn IS NOT NULL THEN 'maxmind'
                    ELSE 'none' END AS asn_source,
               i.geo_country AS country,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN i.enrichment #>> '{maxmind,country}' IS NOT NULL THEN 'maxmind'
                    WHEN i.enrichment #>> '{cymru,registered_country}' IS NOT NULL THEN 'cymru'
                    ELSE 'none' END AS country_source,
               i.is_scanner,
               CASE WHEN i.is_bogon THEN 'bogon' WHEN i.enrichment ? 'greynoise' THEN 'greynoise' ELSE 'none' END
                   AS is_scanner_source,
               i.ip_type,
               CASE i.ip_type
                    WHEN 'bogon' THEN 'bogon'
                    WHEN 'riot' THEN 'greynoise'
                    WHEN 'scanner' THEN 'greynoise'
                    WHEN 'anonymizer' THEN 'maxmind'
                    WHEN 'unrouted' THEN 'cymru'
                    WHEN 'routed' THEN CASE WHEN jsonb_typeof(i.enrichment #> '{cymru,asn}') = 'number' THEN 'cymru' ELSE 'maxmind' END
                    ELSE 'none' END AS ip_type_source,
               i.enrichment
        FROM ipintel.snapshot_backlog b
        JOIN ipintel.ip_inventory i ON i.ip = b.source_ip
        LEFT JOIN ipintel.ip_asn_history h ON h.ip = b.source_ip AND h.valid @> b.first_event_at
    ), todo AS (
        SELECT r.*
        FROM ready r
        JOIN ipintel.session_summaries s ON s.session_id = r.session_id
        WHERE r.all_ready
           OR (r.asn_ready AND s.snapshot_asn_source IS NULL)
           OR (r.country_ready AND s.snapshot_country_source IS NULL)
           OR (r.scanner_ready AND s.snapshot_is_scanner_source IS NULL)
    ), locked AS (
        -- A session an ingest chunk is updating right now is left for the next run (SKIP LOCKED):
        -- snapshots never wait for ingest, so the two can never deadlock.
        SELECT s.session_id
        FROM ipintel.session_summaries s
        WHERE s.session_id IN (SELECT t.session_id FROM todo t)
        ORDER BY s.session_id
        FOR NO KEY UPDATE SKIP LOCKED
    ), filled AS (
        UPDATE ipintel.session_summaries s
        SET snapshot_asn = CASE WHEN s.snapshot_asn_source IS NULL AND t.asn_ready THEN t.asn ELSE s.snapshot_asn END,
            snapshot_asn_source = CASE WHEN s.snapshot_asn_source IS NULL AND t.asn_ready THEN t.asn_source
                                       ELSE s.snapshot_asn_source END,
            snapshot_country = CASE WHEN s.snapshot_country_source IS NULL AND t.country_ready THEN t.country
                                    ELSE s.snapshot_country END,
            snapshot_country_source = CASE WHEN s.snapshot_country_source IS NULL AND t.country_ready THEN t.country_source
                                           ELSE s.snapshot_country_source END,
            snapshot_is_scanner = CASE WHEN s.snapshot_is_scanner_source IS NULL AND t.scanner_ready THEN t.is_scanner
                                       ELSE s.snapshot_is_scanner END,
            snapshot_is_scanner_source = CASE WHEN s.snapshot_is_scanner_source IS NULL AND t.scanner_ready
                                              THEN t.is_scanner_source ELSE s.snapshot_is_scanner_source END,
            snapshot_ip_type = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.all_ready THEN t.ip_type
                                    ELSE s.snapshot_ip_type END,
            snapshot_ip_type_source = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.all_ready THEN t.ip_type_source
                                           ELSE s.snapshot_ip_type_source END,
            snapshot_enrichment = t.enrichment,
            snapshot_at = coalesce(s.snapshot_at, now()),
            snapshot_complete_at = CASE WHEN t.all_ready THEN now() END,
            updated_at = now()
        FROM todo t
        JOIN locked l ON l.session_id = t.session_id
        WHERE s.session_id = t.session_id
        RETURNING 1)
    SELECT count(*) INTO v_changed FROM filled;
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.take_snapshots() IS
    'Fills the unknown snapshot_* fields of incomplete sessions whose sources are no longer awaited (see ipintel.snapshot_backlog), and marks a snapshot complete once no source is awaited. Never changes a known field. Returns the sessions changed.';

CREATE VIEW ipintel.session_attribution AS
SELECT s.session_id,
       s.sensor,
       s.first_event_at,
       s.last_event_at,
       s.protocol,
       s.source_ip,
       CASE WHEN s.snapshot_asn_source IS NOT NULL THEN s.snapshot_asn ELSE i.current_asn END AS asn,
       a.as_name,
       CASE WHEN s.snapshot_country_source IS NOT NULL THEN s.snapshot_country ELSE i.geo_country END AS country,
       CASE WHEN s.snapshot_ip_type_source IS NOT NULL THEN s.snapshot_ip_type ELSE i.ip_type END AS ip_type,
       CASE WHEN s.snapshot_is_scanner_source IS NOT NULL THEN s.snapshot_is_scanner ELSE i.is_scanner END AS is_scanner,
       s.snapshot_complete_at IS NOT NULL AS from_snapshot,
       s.login_attempts,
       s.login_successes,
       s.command_count,
       s.download_count
FROM ipintel.session_summaries s
JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
LEFT JOIN ipintel.asn_inventory a
       ON a.asn = CASE WHEN s.snapshot_asn_source IS NOT NULL THEN s.snapshot_asn ELSE i.current_asn END;
COMMENT ON VIEW ipintel.session_attribution IS
    'One row per session with who it came from: each field is the point-in-time snapshot once known, else what ip_inventory knows now.';
COMMENT ON COLUMN ipintel.session_attribution.asn IS 'snapshot_asn once known (snapshot_asn_source set), else current_asn.';
COMMENT ON COLUMN ipintel.session_attribution.as_name IS 'Name of that AS (asn_inventory, current name).';
COMMENT ON COLUMN ipintel.session_attribution.country IS 'snapshot_country once known, else geo_country.';
COMMENT ON COLUMN ipintel.session_attribution.ip_type IS 'snapshot_ip_type once known, else ip_type.';
COMMENT ON COLUMN ipintel.session_attribution.is_scanner IS 'snapshot_is_scanner once known, else is_scanner.';
COMMENT ON COLUMN ipintel.session_attribution.from_snapshot IS 'true: the snapshot is complete and every attribution column comes from it.';

CREATE FUNCTION ipintel.report_top_asns(p_since timestamptz, p_until timestamptz, p_top bigint)
    RETURNS TABLE (asn text, name text, sessions bigint, ips bigint, logins bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT coalesce(a.asn::text, '-'), coalesce(a.as_name, '(unknown)'), count(*),
           count(DISTINCT a.source_ip), sum(a.login_successes)::bigint
    FROM ipintel.session_attribution a
    WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
    GROUP BY 1, 2
    ORDER BY 3 DESC, 1
    LIMIT p_top;
END;
COMMENT ON FUNCTION ipintel.report_top_asns(timestamptz, timestamptz, bigint) IS
    'Networks with the most sessions that started in [p_since, p_until), attributed as of each session (session_attribution), at most p_top rows. Columns: asn (AS number, ''-'' when unknown), name (AS name, ''(unknown)'' when none), sessions, ips (distinct source IPs), logins (successful logins).';

CREATE FUNCTION ipintel.report_top_countries(p_since timestamptz, p_until timestamptz, p_top bigint)
    RETURNS TABLE (country text, sessions bigint, ips bigint, logins bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.country, count(*), count(DISTINCT a.source_ip), sum(a.login_successes)::bigint
    FROM ipintel.session_attribution a
    WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
    GROUP BY 1
    ORDER BY 2 DESC, 1
    LIMIT p_top;
END;
COMMENT ON FUNCTION ipintel.report_top_countries(timestamptz, timestamptz, bigint) IS
    'Countries with the most sessions that started in [p_since, p_until), attributed as of each session, at most p_top rows. Columns: country (ISO code; XX when no source knows it), sessions, ips (distinct source IPs), logins (successful logins).';

CREATE FUNCTION ipintel.report_ip_types(p_since timestamptz, p_until timestamptz, p_top bigint)
    RETURNS TABLE (ip_type text, greynoise_scanner text, sessions bigint, ips bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.ip_type, coalesce(a.is_scanner::text, 'unknown'), count(*), count(DISTINCT a.source_ip)
    FROM ipintel.session_attribution a
    WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
    GROUP BY 1, 2
    ORDER BY 3 DESC, 1, 2
    LIMIT p_top;
END;
COMMENT ON FUNCTION ipintel.report_ip_types(timestamptz, timestamptz, bigint) IS
    'Sessions that started in [p_since, p_until) by kind of source IP, attributed as of each session, at most p_top rows. Columns: ip_type (bogon, riot, scanner, anonymizer, unrouted, routed or unknown, as in ip_inventory.ip_type), greynoise_scanner (true, false, or unknown when GreyNoise was never asked), sessions, ips (distinct source IPs).';
