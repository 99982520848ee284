-- From migrations/versions/0016_enrichment_state.downgrade.sql: back to 0015.
-- 0015's definitions, which read freshness from the documents again (0017's downgrade put
-- fetched_at and build_epoch back into them), then what 0016 added is removed, by definition.
-- squawk-ignore-file ban-drop-function, ban-drop-table, ban-drop-column
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.ips_due(
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
    WHERE p.source = p_source
      AND NOT i.is_bogon
      AND (p_ips IS NULL OR i.ip = ANY (p_ips))
      AND (p_force OR (
          -- never fetched, stale, or fetched from an older database build
          (NOT (i.enrichment ? p_source)
           OR (i.enrichment -> p_source ->> 'fetched_at')::timestamptz < now() - p.ttl
           OR (i.enrichment -> p_source ->> 'build_epoch')::bigint < p_current_build)
          AND NOT (p.skip_when_maxmind_asn AND NOT (i.enrichment ? p_source)
                   AND i.enrichment #> '{maxmind,asn}' IS NOT NULL
                   AND i.enrichment #> '{maxmind,asn}' <> 'null'::jsonb)
          AND (p.min_session_count IS NULL OR i.session_count >= p.min_session_count
               OR (p.or_login_success AND EXISTS (
                   SELECT 1 FROM ipintel.session_summaries s
                   WHERE s.source_ip = i.ip AND s.login_successes > 0)))
          -- a failure that asking again cannot fix, or one asked to wait
          AND NOT EXISTS (
              SELECT 1 FROM ipintel.enrichment_failures f
              WHERE f.source = p_source AND f.ip = i.ip AND f.resolved_at IS NULL
                AND (NOT f.retryable OR f.retry_after > now()))))
    ORDER BY i.last_seen DESC NULLS LAST, i.ip
    LIMIT p_limit;
END;
COMMENT ON FUNCTION ipintel.ips_due(text, bigint, boolean, inet[], bigint) IS
    'IPs due for a source, most recently seen first: never fetched, older than the policy TTL, or (p_current_build) fetched from an older database build; never bogons. p_ips restricts to those IPs; p_force ignores freshness and policy filters.';

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

CREATE OR REPLACE VIEW ipintel.snapshot_backlog AS
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
    WHERE p.enabled
      AND s.created_at + p.snapshot_window > now()
      AND NOT i.is_bogon
      -- never answered, or its answer is stale (due again): a new session waits for a fresh one
      AND (NOT (i.enrichment ? p.source)
           OR (i.enrichment -> p.source ->> 'fetched_at')::timestamptz < now() - p.ttl)
      AND NOT ipintel.source_declines(p, i)) w
WHERE s.snapshot_complete_at IS NULL;
COMMENT ON VIEW ipintel.snapshot_backlog IS
    'Sessions whose snapshot is still incomplete, with the sources still awaited (waiting_for; empty: complete at the next take_snapshots) and when the last of their windows closes.';

CREATE OR REPLACE VIEW ipintel.enrichment_coverage AS
SELECT p.source,
       p.enabled,
       p.ttl,
       count(*) FILTER (WHERE NOT i.is_bogon) AS ips,
       count(*) FILTER (WHERE NOT i.is_bogon AND i.enrichment ? p.source
                          AND (i.enrichment -> p.source ->> 'fetched_at')::timestamptz >= now() - p.ttl) AS fresh,
       count(*) FILTER (WHERE NOT i.is_bogon AND i.enrichment ? p.source
                          AND (i.enrichment -> p.source ->> 'fetched_at')::timestamptz < now() - p.ttl) AS stale,
       count(*) FILTER (WHERE NOT i.is_bogon AND NOT (i.enrichment ? p.source)) AS never_fetched,
       (SELECT count(DISTINCT f.ip) FROM ipintel.enrichment_failures f
        WHERE f.source = p.source AND f.resolved_at IS NULL) AS failed,
       count(*) FILTER (WHERE i.is_bogon) AS bogons_never_sent,
       max((i.enrichment -> p.source ->> 'fetched_at')::timestamptz) AS last_fetched_at
FROM ipintel.enrichment_policy p
LEFT JOIN ipintel.ip_inventory i ON true
GROUP BY p.source, p.enabled, p.ttl;
COMMENT ON VIEW ipintel.enrichment_coverage IS
    'Per source: IPs (bogons excluded) with a fresh result, a stale one, none yet, open failures; bogons are never sent.';

COMMENT ON COLUMN ipintel.enrichment_policy.ttl IS 'A result older than this is stale and fetched again.';
COMMENT ON COLUMN ipintel.enrichment_runs.merged IS 'IPs whose result was merged into ip_inventory.';
COMMENT ON COLUMN ipintel.ip_inventory.enrichment IS
    'Latest result of each source under its key (maxmind, cymru, greynoise); each value carries its own fetched_at (ISO 8601). A missing key means never fetched.';
COMMENT ON COLUMN ipintel.asn_inventory.sources IS 'Latest per-source AS facts, keyed by source (maxmind, cymru), each with its fetched_at.';
COMMENT ON TABLE ipintel_staging.enrichment_results IS
    'Staging for merge_batch: one result document per IP of a batch, of the source the batch''s run belongs to.';
COMMENT ON COLUMN ipintel_staging.enrichment_results.fetched_at IS NULL;
COMMENT ON COLUMN ipintel_staging.enrichment_results.result IS NULL;

CREATE OR REPLACE FUNCTION ipintel.source_declines(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN (p_policy.skip_when_maxmind_asn AND jsonb_typeof(p_ip.enrichment #> '{maxmind,asn}') IS NOT DISTINCT FROM 'number')
    OR (p_policy.min_session_count IS NOT NULL AND p_ip.session_count < p_policy.min_session_count
        AND NOT (p_policy.or_login_success AND EXISTS (
            SELECT 1 FROM ipintel.session_summaries s
            WHERE s.source_ip = p_ip.ip AND s.login_successes > 0)))
    OR EXISTS (
        SELECT 1 FROM ipintel.enrichment_failures f
        WHERE f.source = p_policy.source AND f.ip = p_ip.ip
          AND f.resolved_at IS NULL AND NOT f.retryable);
COMMENT ON FUNCTION ipintel.source_declines(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the source will not be asked about the IP: the policy skips it (skip_when_maxmind_asn, min_session_count) or an open failure says asking again cannot help. A definitive answer for snapshots.';
DROP FUNCTION ipintel.below_session_threshold(ipintel.enrichment_policy, ipintel.ip_inventory);
DROP FUNCTION ipintel.skipped_for_maxmind_asn(ipintel.enrichment_policy, ipintel.ip_inventory);
DROP FUNCTION ipintel.record_enrichment_state(text, bigint);
DROP FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz);
DROP TABLE ipintel.enrichment_state;
ALTER TABLE ipintel_staging.enrichment_results DROP COLUMN build;
