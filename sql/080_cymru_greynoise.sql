-- From sql/080_cymru_greynoise.sql
-- Team Cymru and GreyNoise: their merges, and the daily request budget of remote services.

------------------------------------------------------------------------------------------
-- merge_cymru
------------------------------------------------------------------------------------------
-- Precedence: Team Cymru reads live BGP, so once it has answered for an IP its origin ASN is
-- current_asn (NULL when the prefix is allocated but not announced, or unknown to Cymru);
-- MaxMind's ASN file, a periodic snapshot, only fills current_asn for IPs Cymru never answered.
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

------------------------------------------------------------------------------------------
-- merge_greynoise
------------------------------------------------------------------------------------------
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

------------------------------------------------------------------------------------------
-- API request budget (GreyNoise community quota is per day)
------------------------------------------------------------------------------------------
CREATE TABLE ipintel.api_budget (
    source  text   NOT NULL,
    day     date   NOT NULL,
    used    bigint NOT NULL DEFAULT 0,
    CONSTRAINT api_budget_pkey PRIMARY KEY (source, day),
    CONSTRAINT api_budget_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source),
    CONSTRAINT api_budget_used_is_not_negative CHECK (used >= 0)
);
COMMENT ON TABLE ipintel.api_budget IS
    'Lookups spent per source and UTC day, shared by every run, so two runs on one day share the daily budget.';
COMMENT ON COLUMN ipintel.api_budget.used IS 'Lookups granted so far this UTC day.';
COMMENT ON COLUMN ipintel.api_budget.source IS 'Source whose lookups are counted (enrichment_policy), e.g. greynoise.';
COMMENT ON COLUMN ipintel.api_budget.day IS 'UTC day.';

CREATE FUNCTION ipintel.spend_budget(p_source text, p_want bigint, p_daily_limit bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_used bigint;
    v_granted bigint;
BEGIN
    INSERT INTO ipintel.api_budget (source, day, used)
    VALUES (p_source, (now() AT TIME ZONE 'UTC')::date, 0)
    ON CONFLICT (source, day) DO NOTHING;
    -- The row lock serialises concurrent runs: together they never exceed the limit.
    SELECT b.used INTO v_used FROM ipintel.api_budget b
    WHERE b.source = p_source AND b.day = (now() AT TIME ZONE 'UTC')::date
    FOR UPDATE;
    v_granted := least(p_want, greatest(p_daily_limit - v_used, 0));
    UPDATE ipintel.api_budget b SET used = b.used + v_granted
    WHERE b.source = p_source AND b.day = (now() AT TIME ZONE 'UTC')::date;
    RETURN v_granted;
END;
$$;
COMMENT ON FUNCTION ipintel.spend_budget(text, bigint, bigint) IS
    'Grants up to p_want lookups from today''s (UTC) budget of p_daily_limit for a source and records them; returns how many were granted (0 when spent).';
