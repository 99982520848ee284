-- From sql/070_enrichment.sql
-- The enrichment engine: the source registry (enrichment_policy), runs and failures as rows,
-- the staging table the passes COPY into, merge_batch and the set-based merge of each source,
-- ASN history and session snapshots.

------------------------------------------------------------------------------------------
-- The source registry, runs, failures
------------------------------------------------------------------------------------------
-- enrichment_policy is the one list of sources: runs, failures, the API budget, staging and
-- ASN history refer to it by foreign key, `ipintel enrich` runs its rows in pass_order, and
-- merge_batch calls each row's merge_function.
CREATE TABLE ipintel.enrichment_policy (
    source                  text     NOT NULL,
    ttl                     interval NOT NULL,
    enabled                 boolean  NOT NULL DEFAULT true,
    skip_when_maxmind_asn   boolean  NOT NULL DEFAULT false,
    min_session_count       bigint,
    or_login_success        boolean  NOT NULL DEFAULT false,
    snapshot_window         interval NOT NULL DEFAULT interval '30 days',
    kind                    text     NOT NULL,
    pass_order              bigint   NOT NULL,
    merge_function          text     NOT NULL,
    CONSTRAINT enrichment_policy_pkey PRIMARY KEY (source),
    CONSTRAINT enrichment_policy_pass_order_key UNIQUE (pass_order),
    CONSTRAINT enrichment_policy_source_is_a_lower_case_name CHECK (source ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT enrichment_policy_kind_is_known CHECK (kind IN ('offline_database', 'remote_service', 'reference_list')),
    CONSTRAINT enrichment_policy_ttl_is_positive CHECK (ttl > interval '0'),
    CONSTRAINT enrichment_policy_min_session_count_is_positive CHECK (min_session_count > 0),
    CONSTRAINT enrichment_policy_snapshot_window_is_not_negative CHECK (snapshot_window >= interval '0')
);
COMMENT ON TABLE ipintel.enrichment_policy IS
    'The source registry: one row per enrichment source, with its pass order and merge function, how long its result stays fresh, and which IPs it is asked about. Edit the policy columns to change the policy.';
INSERT INTO ipintel.enrichment_policy (source, ttl, skip_when_maxmind_asn, kind, pass_order, merge_function) VALUES
    -- ttl unused: an offline database's answers are due again when a newer build is installed
    ('maxmind', interval '7 days', false, 'offline_database', 10, 'ipintel.merge_maxmind'),
    -- by default only for IPs MaxMind gave no ASN
    ('cymru', interval '30 days', true, 'remote_service', 20, 'ipintel.merge_cymru'),
    ('greynoise', interval '7 days', false, 'remote_service', 30, 'ipintel.merge_greynoise');

COMMENT ON COLUMN ipintel.enrichment_policy.ttl IS
    'An answer older than this (enrichment_state.fetched_at) is stale and fetched again. Not for an offline_database source: re-reading the same build cannot say anything new, so its answers are due again only when a newer build is installed.';
COMMENT ON COLUMN ipintel.enrichment_policy.enabled IS 'A disabled source is never run by `ipintel enrich`.';
COMMENT ON COLUMN ipintel.enrichment_policy.skip_when_maxmind_asn IS
    'Never-fetched IPs that MaxMind already gave an ASN are not asked (default for cymru); stale results are refreshed regardless.';
COMMENT ON COLUMN ipintel.enrichment_policy.min_session_count IS
    'When set, only IPs with at least this many sessions are asked (or, with or_login_success, IPs with a successful login). For small quotas.';
COMMENT ON COLUMN ipintel.enrichment_policy.or_login_success IS
    'With min_session_count: IPs with a successful login are asked whatever their session count.';
COMMENT ON COLUMN ipintel.enrichment_policy.kind IS
    'offline_database (a local file, e.g. MaxMind .mmdb), remote_service (asked over the network, e.g. Team Cymru, GreyNoise) or reference_list (ranges or lists loaded from files).';
COMMENT ON COLUMN ipintel.enrichment_policy.pass_order IS '`ipintel enrich` runs the passes in this order (unique).';
COMMENT ON COLUMN ipintel.enrichment_policy.merge_function IS
    'Schema-qualified name of the SQL function (p_run_id bigint, p_batch_id bigint) RETURNS bigint that merge_batch calls to merge a staged batch of this source.';
COMMENT ON COLUMN ipintel.enrichment_policy.snapshot_window IS
    'How long after a session is ingested (session_summaries.created_at) its snapshot still waits for this source: an unknown snapshot field is filled when the source first answers within the window; after it, the field is settled with what is known.';
COMMENT ON COLUMN ipintel.enrichment_policy.source IS 'Source name (lower case), e.g. maxmind, cymru, greynoise: the key every other table refers to.';

CREATE TABLE ipintel.enrichment_runs (
    run_id       bigint      GENERATED ALWAYS AS IDENTITY,
    source       text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text        NOT NULL DEFAULT 'running',
    requested    bigint      NOT NULL DEFAULT 0,
    fetched      bigint      NOT NULL DEFAULT 0,
    merged       bigint      NOT NULL DEFAULT 0,
    failed       bigint      NOT NULL DEFAULT 0,
    provenance   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    message      text,
    CONSTRAINT enrichment_runs_pkey PRIMARY KEY (run_id),
    CONSTRAINT enrichment_runs_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source),
    CONSTRAINT enrichment_runs_status_is_known CHECK (status IN (
        'running', 'succeeded', 'finished_with_failures', 'stopped', 'failed', 'interrupted', 'skipped')),
    CONSTRAINT enrichment_runs_finished_after_start CHECK (finished_at >= started_at),
    CONSTRAINT enrichment_runs_counts_are_not_negative CHECK (requested >= 0 AND fetched >= 0 AND merged >= 0 AND failed >= 0)
);
COMMENT ON TABLE ipintel.enrichment_runs IS 'One row per source pass of `ipintel enrich`.';
COMMENT ON COLUMN ipintel.enrichment_runs.status IS
    'running, succeeded, finished_with_failures, stopped (quota or budget spent: the rest stays due), failed (pass aborted, e.g. a broken database file), interrupted (killed; set by the next run) or skipped (not configured).';
COMMENT ON COLUMN ipintel.enrichment_runs.requested IS 'IPs due for this source when the pass started.';
COMMENT ON COLUMN ipintel.enrichment_runs.fetched IS 'IPs the source answered for (a "not found" answer included).';
COMMENT ON COLUMN ipintel.enrichment_runs.merged IS
    'IPs whose answer was merged: recorded in enrichment_state, and written into ip_inventory where its facts changed.';
COMMENT ON COLUMN ipintel.enrichment_runs.failed IS 'IPs recorded in enrichment_failures by this run.';
COMMENT ON COLUMN ipintel.enrichment_runs.provenance IS 'Where the data came from: database types, paths and build epochs, service address, API tier. Never a secret.';
COMMENT ON COLUMN ipintel.enrichment_runs.message IS 'Why the pass stopped, failed or was skipped.';
COMMENT ON COLUMN ipintel.enrichment_runs.run_id IS 'Enrichment run number (one per source pass).';
COMMENT ON COLUMN ipintel.enrichment_runs.source IS 'The source of this pass (enrichment_policy).';
COMMENT ON COLUMN ipintel.enrichment_runs.started_at IS 'When the pass started.';
COMMENT ON COLUMN ipintel.enrichment_runs.finished_at IS 'When the pass ended; NULL while running.';
CREATE INDEX enrichment_runs_source_started_at_idx ON ipintel.enrichment_runs (source, started_at DESC);

CREATE TABLE ipintel.enrichment_failures (
    failure_id   bigint      GENERATED ALWAYS AS IDENTITY,
    run_id       bigint      NOT NULL,
    source       text        NOT NULL,
    ip           inet        NOT NULL,
    error        text        NOT NULL,
    retryable    boolean     NOT NULL DEFAULT true,
    retry_after  timestamptz,
    attempts     bigint      NOT NULL DEFAULT 1,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    CONSTRAINT enrichment_failures_pkey PRIMARY KEY (failure_id),
    CONSTRAINT enrichment_failures_attempts_are_positive CHECK (attempts > 0),
    CONSTRAINT enrichment_failures_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source),
    CONSTRAINT enrichment_failures_run_id_fkey FOREIGN KEY (run_id) REFERENCES ipintel.enrichment_runs (run_id),
    CONSTRAINT enrichment_failures_ip_fkey FOREIGN KEY (ip) REFERENCES ipintel.ip_inventory (ip)
);
COMMENT ON TABLE ipintel.enrichment_failures IS
    'IPs a source could not answer for, one open row (resolved_at NULL) per source and IP. Open retryable failures stay due and are retried by later runs; a later success resolves them.';
COMMENT ON COLUMN ipintel.enrichment_failures.error IS 'What went wrong (no secrets).';
COMMENT ON COLUMN ipintel.enrichment_failures.retryable IS 'false: asking again cannot help (e.g. GreyNoise 400, not a routable IPv4); the IP is no longer due for that source.';
COMMENT ON COLUMN ipintel.enrichment_failures.retry_after IS 'Not retried before this time (e.g. from a Retry-After header).';
COMMENT ON COLUMN ipintel.enrichment_failures.attempts IS 'Runs that failed on this IP since it was last answered (one open row per source and IP).';
COMMENT ON COLUMN ipintel.enrichment_failures.resolved_at IS 'When a later run fetched the IP successfully.';
COMMENT ON COLUMN ipintel.enrichment_failures.failure_id IS 'Failure number.';
COMMENT ON COLUMN ipintel.enrichment_failures.run_id IS 'Run that recorded the failure.';
COMMENT ON COLUMN ipintel.enrichment_failures.source IS 'Source that could not answer.';
COMMENT ON COLUMN ipintel.enrichment_failures.ip IS 'The IP it could not answer for.';
CREATE INDEX enrichment_failures_run_id_idx ON ipintel.enrichment_failures (run_id);
CREATE UNIQUE INDEX enrichment_failures_open_key ON ipintel.enrichment_failures (source, ip) WHERE resolved_at IS NULL;
COMMENT ON INDEX ipintel.enrichment_failures_open_key IS 'At most one open failure per source and IP: a repeated failure updates it.';

------------------------------------------------------------------------------------------
-- Freshness is state, not part of the document
------------------------------------------------------------------------------------------
-- When a source last answered for an IP, and from which data build, lives in these narrow rows,
-- not in ip_inventory.enrichment: a refresh that learns nothing new moves only them, and the
-- wide ip_inventory row (its indexes, its generated columns) is written only when the facts
-- change. Every refresh rewrites the state rows of its batch: half of each page is left free so
-- that the new version fits beside the old one (a HOT update: no new index entry, half the WAL).
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

------------------------------------------------------------------------------------------
-- Staging: one UNLOGGED table for every source's results, one for failures; rows tagged with
-- run and batch
------------------------------------------------------------------------------------------
CREATE UNLOGGED TABLE ipintel_staging.enrichment_results (
    run_id      bigint      NOT NULL,
    batch_id    bigint      NOT NULL,
    source      text        NOT NULL,
    ip          inet        NOT NULL,
    fetched_at  timestamptz NOT NULL,
    result      jsonb       NOT NULL,
    build       bigint,
    CONSTRAINT enrichment_results_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source)
);
COMMENT ON TABLE ipintel_staging.enrichment_results IS
    'Staging for merge_batch: one answer per IP of a batch, of the source the batch''s run belongs to: its facts (result) and its freshness (fetched_at, build), which the merge records in enrichment_state.';
COMMENT ON COLUMN ipintel_staging.enrichment_results.fetched_at IS 'When the source answered.';
COMMENT ON COLUMN ipintel_staging.enrichment_results.result IS
    'The answer''s facts, the document stored under the source''s key in ip_inventory.enrichment (no fetch time, no build).';
COMMENT ON COLUMN ipintel_staging.enrichment_results.build IS
    'Data build the answer came from, for offline databases (MaxMind: build_epoch); NULL for live services.';
CREATE INDEX enrichment_results_batch_id_idx ON ipintel_staging.enrichment_results (batch_id);

CREATE UNLOGGED TABLE ipintel_staging.enrichment_failures (
    run_id      bigint      NOT NULL,
    batch_id    bigint      NOT NULL,
    source      text        NOT NULL,
    ip          inet        NOT NULL,
    error       text        NOT NULL,
    retryable   boolean     NOT NULL,
    retry_after timestamptz
);
COMMENT ON TABLE ipintel_staging.enrichment_failures IS 'Staging for record_failures: failures of one batch of any source.';
CREATE INDEX enrichment_failures_batch_id_idx ON ipintel_staging.enrichment_failures (batch_id);

------------------------------------------------------------------------------------------
-- Which IPs are due
------------------------------------------------------------------------------------------
-- Staleness by time, one rule for ips_due, enrichment_coverage and snapshot_backlog: an answer
-- older than the source's ttl is stale, except an offline database's, which re-reading the same
-- build cannot change: it is due again only for a newer build (ips_due's p_current_build).
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

------------------------------------------------------------------------------------------
-- Shared merge steps
------------------------------------------------------------------------------------------
-- Records the failures staged for a batch, in the same transaction as its merge.
CREATE FUNCTION ipintel.record_failures(p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_count bigint;
BEGIN
    -- One open row per source and IP: a failure that repeats updates it and counts the attempt,
    -- so the table says how long an IP has been failing instead of growing every run.
    INSERT INTO ipintel.enrichment_failures AS e (run_id, source, ip, error, retryable, retry_after)
    SELECT DISTINCT ON (f.source, f.ip) f.run_id, f.source, f.ip, f.error, f.retryable, f.retry_after
    FROM ipintel_staging.enrichment_failures f
    WHERE f.batch_id = p_batch_id
    ORDER BY f.source, f.ip
    ON CONFLICT (source, ip) WHERE resolved_at IS NULL DO UPDATE SET
        run_id = excluded.run_id,
        error = excluded.error,
        retryable = excluded.retryable,
        retry_after = excluded.retry_after,
        attempts = e.attempts + 1,
        recorded_at = now();
    GET DIAGNOSTICS v_count = ROW_COUNT;
    DELETE FROM ipintel_staging.enrichment_failures f WHERE f.batch_id = p_batch_id;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION ipintel.record_failures(bigint) IS 'Moves the staged failures of a batch into enrichment_failures; returns how many.';

-- One lock order for every writer of the tiers, so that `ipintel ingest` and `ipintel enrich`
-- can run at the same time without deadlocking: first the ip_inventory rows of the batch in ip
-- order, then the asn_inventory rows it may touch (the given ASNs and the current ASNs of those
-- IPs) in asn order. Ingest chunks and every merge call this before writing anything else.
CREATE FUNCTION ipintel.lock_for_merge(p_ips inet[], p_asns bigint[])
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

-- Records that the IPs of a staged batch were answered, BEFORE the caller writes their
-- documents: fetched_at and build for every IP, changed_at only where the staged facts differ
-- from the stored document. The caller holds the batch's ip_inventory rows (lock_for_merge), so
-- no other merge writes these state rows meanwhile. An answer staged out of order (older than
-- the stored change) with the same facts says they held by its fetch time already: least().
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

-- Records ASN observations in ip_asn_history, BEFORE the caller sets current_asn: an IP whose
-- ASN changed gets its open range closed at the observation time and a new one opened there,
-- so consecutive ranges meet; an IP without history gets its first range. Callers pass only
-- real observations (an ASN, or Team Cymru's "allocated but not routed"), never "this source
-- does not know". Returns the ASNs (old and new) whose counts the caller must refresh once
-- current_asn is set.
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

------------------------------------------------------------------------------------------
-- merge_maxmind
------------------------------------------------------------------------------------------
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

------------------------------------------------------------------------------------------
-- Runs: every status change of an enrichment run is one of these functions
------------------------------------------------------------------------------------------
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

------------------------------------------------------------------------------------------
-- Snapshots
------------------------------------------------------------------------------------------
-- The rule, for every snapshot_* field of a session: a known field (its *_source set) is never
-- changed; an unknown one is filled as soon as the sources it depends on are no longer awaited.
-- A source is awaited for a session while it is enabled, has no fresh answer for the IP, has not
-- declined it (bogon, policy says not applicable, a failure asking again cannot fix), and the
-- session was ingested less than the source's snapshot_window ago (so a backfill of old logs is
-- completed too). ASN waits for maxmind and cymru, country for maxmind (and for cymru when
-- MaxMind has no country), is_scanner for greynoise, ip_type for every source.

-- Policy filters say a source will not be asked about an IP: a definitive "no" for snapshots.
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

CREATE FUNCTION ipintel.protect_snapshot()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF (OLD.snapshot_asn_source IS NOT NULL
        AND (NEW.snapshot_asn, NEW.snapshot_asn_source) IS DISTINCT FROM (OLD.snapshot_asn, OLD.snapshot_asn_source))
       OR (OLD.snapshot_country_source IS NOT NULL
           AND (NEW.snapshot_country, NEW.snapshot_country_source)
               IS DISTINCT FROM (OLD.snapshot_country, OLD.snapshot_country_source))
       OR (OLD.snapshot_ip_type_source IS NOT NULL
           AND (NEW.snapshot_ip_type, NEW.snapshot_ip_type_source)
               IS DISTINCT FROM (OLD.snapshot_ip_type, OLD.snapshot_ip_type_source))
       OR (OLD.snapshot_is_scanner_source IS NOT NULL
           AND (NEW.snapshot_is_scanner, NEW.snapshot_is_scanner_source)
               IS DISTINCT FROM (OLD.snapshot_is_scanner, OLD.snapshot_is_scanner_source))
       OR (OLD.snapshot_at IS NOT NULL AND NEW.snapshot_at IS DISTINCT FROM OLD.snapshot_at)
       OR (OLD.snapshot_complete_at IS NOT NULL
           AND (NEW.snapshot_complete_at, NEW.snapshot_enrichment)
               IS DISTINCT FROM (OLD.snapshot_complete_at, OLD.snapshot_enrichment)) THEN
        RAISE EXCEPTION 'snapshot of session %: a known snapshot field is never rewritten', OLD.session_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ipintel.protect_snapshot() IS
    'Trigger function: refuses to change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot. Unknown fields may be filled.';

CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at
    ON ipintel.session_summaries
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

------------------------------------------------------------------------------------------
-- Coverage for operators and analysts
------------------------------------------------------------------------------------------
CREATE VIEW ipintel.enrichment_coverage AS
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

------------------------------------------------------------------------------------------
-- ASN history refers to the registry too (ip_asn_history is created with the tiers, before it)
------------------------------------------------------------------------------------------
ALTER TABLE ipintel.ip_asn_history
    ADD CONSTRAINT ip_asn_history_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source);
