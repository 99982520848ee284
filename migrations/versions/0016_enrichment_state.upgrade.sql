-- From migrations/versions/0016_enrichment_state.upgrade.sql (sql/030, 070, 080 as of this revision)
-- Freshness is state, not part of the document: enrichment_state records when each source last
-- answered for each IP and from which data build; the merges record it for every answer and
-- write a document only when its facts change; ips_due, enrichment_coverage and
-- snapshot_backlog read it, and an offline database's answers no longer go stale by time.
-- The documents' own fetched_at / build_epoch move into it in the post step, 0017.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- A new, empty table: its foreign keys have nothing to validate (creating them takes SHARE ROW
-- EXCLUSIVE on ip_inventory and enrichment_policy for an instant, within lock_timeout).
-- Every refresh rewrites the state rows of its batch: half of each page is left free so that
-- the new version fits beside the old one (a HOT update: no new index entry, half the WAL).
CREATE TABLE ipintel.enrichment_state (
    ip          inet        NOT NULL,
    source      text        NOT NULL,
    fetched_at  timestamptz NOT NULL,
    build       bigint,
    changed_at  timestamptz NOT NULL,
    CONSTRAINT enrichment_state_pkey PRIMARY KEY (ip, source),
    CONSTRAINT enrichment_state_ip_fkey FOREIGN KEY (ip) REFERENCES ipintel.ip_inventory (ip),
    CONSTRAINT enrichment_state_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source),
    CONSTRAINT enrichment_state_changed_no_later_than_fetched CHECK (changed_at <= fetched_at)
) WITH (fillfactor = 50);
COMMENT ON TABLE ipintel.enrichment_state IS
    'When each source last answered for each IP: one row per IP and source that has answered (no row: never fetched). The answer itself is ip_inventory.enrichment -> source, rewritten only when its facts change. Read by ips_due, enrichment_coverage and snapshot_backlog.';
COMMENT ON COLUMN ipintel.enrichment_state.ip IS 'The IP answered for (ip_inventory).';
COMMENT ON COLUMN ipintel.enrichment_state.source IS 'The source that answered (enrichment_policy).';
COMMENT ON COLUMN ipintel.enrichment_state.fetched_at IS
    'When the source last answered for the IP, whether or not the facts changed. Older than the source''s ttl: stale (never for an offline_database source).';
COMMENT ON COLUMN ipintel.enrichment_state.build IS
    'Data build of the last answer, for offline databases (MaxMind: the newer build_epoch of the files read, seconds since 1970); NULL for live services. Answers from an older build than the installed files are due again.';
COMMENT ON COLUMN ipintel.enrichment_state.changed_at IS
    'When the answer''s facts (the document in ip_inventory.enrichment) last changed: the fetch that first gave them as they are now.';
COMMENT ON CONSTRAINT enrichment_state_changed_no_later_than_fetched ON ipintel.enrichment_state IS
    'The facts of the last answer were known by the time it was fetched.';

-- The staged answer's build, beside its fetched_at: the document (result) holds facts only.
ALTER TABLE ipintel_staging.enrichment_results ADD COLUMN build bigint;
COMMENT ON TABLE ipintel_staging.enrichment_results IS
    'Staging for merge_batch: one answer per IP of a batch, of the source the batch''s run belongs to: its facts (result) and its freshness (fetched_at, build), which the merge records in enrichment_state.';
COMMENT ON COLUMN ipintel_staging.enrichment_results.fetched_at IS 'When the source answered.';
COMMENT ON COLUMN ipintel_staging.enrichment_results.result IS
    'The answer''s facts, the document stored under the source''s key in ip_inventory.enrichment (no fetch time, no build).';
COMMENT ON COLUMN ipintel_staging.enrichment_results.build IS
    'Data build the answer came from, for offline databases (MaxMind: build_epoch); NULL for live services.';

CREATE FUNCTION ipintel.answer_is_stale(p_policy ipintel.enrichment_policy, p_fetched_at timestamptz)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.kind <> 'offline_database' AND p_fetched_at < now() - p_policy.ttl;
COMMENT ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz) IS
    'True when an answer fetched at p_fetched_at is older than the source''s ttl; never for an offline_database source (due again only for a newer build). NULL when p_fetched_at is NULL (never fetched).';

-- The policy's two filters, shared by ips_due (is the IP asked?) and source_declines (does a
-- snapshot still wait for the source?), so both always read the policy the same way.
CREATE FUNCTION ipintel.skipped_for_maxmind_asn(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.skip_when_maxmind_asn AND jsonb_typeof(p_ip.enrichment #> '{maxmind,asn}') IS NOT DISTINCT FROM 'number';
COMMENT ON FUNCTION ipintel.skipped_for_maxmind_asn(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the policy skips the IP because MaxMind already gave it an ASN (skip_when_maxmind_asn).';

CREATE FUNCTION ipintel.below_session_threshold(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.min_session_count IS NOT NULL AND p_ip.session_count < p_policy.min_session_count
    AND NOT (p_policy.or_login_success AND EXISTS (
        SELECT 1 FROM ipintel.session_summaries s
        WHERE s.source_ip = p_ip.ip AND s.login_successes > 0));
COMMENT ON FUNCTION ipintel.below_session_threshold(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the policy does not ask about the IP: fewer sessions than min_session_count (and, with or_login_success, no successful login).';

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

CREATE OR REPLACE FUNCTION ipintel.source_declines(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
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

CREATE OR REPLACE VIEW ipintel.enrichment_coverage AS
SELECT p.source,
       p.enabled,
       p.ttl,
       count(*) FILTER (WHERE NOT i.is_bogon) AS ips,
       count(*) FILTER (WHERE NOT i.is_bogon AND e.ip IS NOT NULL AND NOT ipintel.answer_is_stale(p, e.fetched_at)) AS fresh,
       count(*) FILTER (WHERE NOT i.is_bogon AND ipintel.answer_is_stale(p, e.fetched_at)) AS stale,
       count(*) FILTER (WHERE NOT i.is_bogon AND e.ip IS NULL) AS never_fetched,
       (SELECT count(DISTINCT f.ip) FROM ipintel.enrichment_failures f
        WHERE f.source = p.source AND f.resolved_at IS NULL) AS failed,
       count(*) FILTER (WHERE i.is_bogon) AS bogons_never_sent,
       max(e.fetched_at) AS last_fetched_at
FROM ipintel.enrichment_policy p
LEFT JOIN ipintel.ip_inventory i ON true
LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
GROUP BY p.source, p.enabled, p.ttl;
COMMENT ON VIEW ipintel.enrichment_coverage IS
    'Per source: IPs (bogons excluded) with a fresh answer, a stale one (older than the ttl; an offline database''s answers never go stale by time), none yet, open failures; bogons are never sent. Freshness from enrichment_state.';

COMMENT ON COLUMN ipintel.enrichment_policy.ttl IS
    'An answer older than this (enrichment_state.fetched_at) is stale and fetched again. Not for an offline_database source: re-reading the same build cannot say anything new, so its answers are due again only when a newer build is installed.';
COMMENT ON COLUMN ipintel.enrichment_runs.merged IS
    'IPs whose answer was merged: recorded in enrichment_state, and written into ip_inventory where its facts changed.';
COMMENT ON COLUMN ipintel.ip_inventory.enrichment IS
    'Latest answer of each source under its key (maxmind, cymru, greynoise): its facts only, rewritten only when they change. When each source last answered, and from which data build, is in enrichment_state. A missing key means never answered.';
COMMENT ON COLUMN ipintel.asn_inventory.sources IS 'Latest per-source AS facts, keyed by source (maxmind, cymru).';
