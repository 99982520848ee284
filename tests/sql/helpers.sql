-- From tests/sql/helpers.sql: test helpers shared by the pgTAP files (the pgflow practice), in a
-- schema of their own. tests/run_pgtap.sh installs them in the migrated test database once,
-- before pg_prove runs the *.test.sql files (each in a transaction it rolls back).
CREATE SCHEMA ipintel_tests;

-- One pass of a source: its answers (ip -> document) staged as one batch of a new run, merged
-- through the real path (merge_batch), the run finished. Returns the IPs merged.
CREATE FUNCTION ipintel_tests.answer(p_source text, p_answers jsonb, p_fetched_at timestamptz, p_build bigint DEFAULT NULL)
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

-- What `ipintel enrich` records for a source it skipped (not configured: an offline database
-- none of whose files is installed, GreyNoise without a key). Returns the run.
CREATE FUNCTION ipintel_tests.skipped_pass(p_source text)
    RETURNS bigint
    LANGUAGE sql
RETURN ipintel.start_run(p_source, '{}'::jsonb, 'skipped', 'not configured');

-- One routing-table snapshot: {{prefix, asn}, ...} staged and loaded as p_dataset's snapshot of
-- p_day. Returns whether it was loaded (false: that day was loaded before).
CREATE FUNCTION ipintel_tests.load_routes(p_day date, p_pairs text[], p_dataset text DEFAULT 'routeviews')
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

-- One geolocation build of p_edition (a file of p_source's) made at noon (UTC) of p_day: its
-- ranges {{range, country, asn}, ...} (country or asn NULL where the range has none) staged as its
-- country and ASN ranges, and loaded. Returns whether it was loaded (false: loaded before).
CREATE FUNCTION ipintel_tests.load_geo(p_edition text, p_source text, p_day date, p_ranges text[])
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
DECLARE
    v_batch bigint := nextval('ipintel_staging.batch_id_seq');
    v_loaded boolean;
BEGIN
    INSERT INTO ipintel_staging.geo_ranges (batch_id, first_ip, last_ip, country, asn)
    SELECT v_batch, lower(x.r)::text::inet, upper(x.r)::text::inet, v.country, v.asn
    FROM (SELECT p_ranges[i][1]::public.iprange, p_ranges[i][2], p_ranges[i][3]::bigint
          FROM generate_subscripts(p_ranges, 1) AS i) AS x(r, country, asn)
    CROSS JOIN LATERAL (VALUES (x.country, NULL::bigint), (NULL, x.asn)) AS v(country, asn)
    WHERE v.country IS NOT NULL OR v.asn IS NOT NULL;
    SELECT l.loaded INTO v_loaded
    FROM ipintel.load_geo_build(p_edition, p_source, extract(epoch FROM p_day + time '12:00')::bigint, 'pgtap',
                                'pgtap-' || p_day, md5(p_day::text) || md5(p_edition), v_batch) l;
    RETURN v_loaded;
END;
$$;

-- One range-list snapshot: {{prefix, service, region}, ...} staged and loaded as p_list's snapshot
-- of p_day. Returns whether it was loaded (false: that day was loaded before).
CREATE FUNCTION ipintel_tests.load_ranges(p_list text, p_day date, p_ranges text[])
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
DECLARE
    v_batch bigint := nextval('ipintel_staging.batch_id_seq');
    v_loaded boolean;
BEGIN
    INSERT INTO ipintel_staging.listed_ranges (batch_id, prefix, service, region)
    SELECT v_batch, p_ranges[i][1]::cidr, p_ranges[i][2], p_ranges[i][3] FROM generate_subscripts(p_ranges, 1) AS i;
    SELECT l.loaded INTO v_loaded FROM ipintel.load_range_snapshot(p_list, p_day, 'pgtap', v_batch) l;
    RETURN v_loaded;
END;
$$;

-- One ASN-list snapshot: {{asn, name, source}, ...} as p_list's snapshot of p_day.
CREATE FUNCTION ipintel_tests.load_asns(p_list text, p_day date, p_asns text[])
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
DECLARE
    v_batch bigint := nextval('ipintel_staging.batch_id_seq');
    v_loaded boolean;
BEGIN
    INSERT INTO ipintel_staging.listed_asns (batch_id, asn, name, source)
    SELECT v_batch, p_asns[i][1]::bigint, p_asns[i][2], p_asns[i][3] FROM generate_subscripts(p_asns, 1) AS i;
    SELECT l.loaded INTO v_loaded FROM ipintel.load_range_snapshot(p_list, p_day, 'pgtap', v_batch) l;
    RETURN v_loaded;
END;
$$;

-- A snapshot's document as fixtures write it: p_document stored in enrichment_documents (once:
-- an equal document already stored is reused), its document_id returned for snapshot_document.
CREATE FUNCTION ipintel_tests.document(p_document jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO ipintel.enrichment_documents (document) VALUES (p_document)
    ON CONFLICT (digest) DO NOTHING RETURNING document_id INTO v_id;
    RETURN coalesce(v_id, (SELECT d.document_id FROM ipintel.enrichment_documents d
                           WHERE d.digest = ipintel.enrichment_digest(p_document)));
END;
$$;

-- The plan of p_query as text (EXPLAIN (VERBOSE, COSTS OFF)), for tests that look for what a
-- plan calls or forms: an inlined function's name, a whole-row reference.
CREATE FUNCTION ipintel_tests.plan_of(p_query text)
    RETURNS text
    LANGUAGE plpgsql
AS $$
DECLARE
    v_line text;
    v_plan text := '';
BEGIN
    FOR v_line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || p_query LOOP
        v_plan := v_plan || v_line || E'\n';
    END LOOP;
    RETURN v_plan;
END;
$$;
