-- From sql/070_enrichment.sql
-- The enrichment engine: freshness policy, runs and failures as rows, the staging tables the
-- passes COPY into, the set-based merge of each source, ASN history and session snapshots.

------------------------------------------------------------------------------------------
-- Policy, runs, failures
------------------------------------------------------------------------------------------
CREATE TABLE ipintel.enrichment_policy (
    source                  text     NOT NULL,
    ttl                     interval NOT NULL,
    enabled                 boolean  NOT NULL DEFAULT true,
    skip_when_maxmind_asn   boolean  NOT NULL DEFAULT false,
    min_session_count       bigint,
    or_login_success        boolean  NOT NULL DEFAULT false,
    CONSTRAINT enrichment_policy_pkey PRIMARY KEY (source),
    CONSTRAINT enrichment_policy_source_is_known CHECK (source IN ('maxmind', 'cymru', 'greynoise')),
    CONSTRAINT enrichment_policy_ttl_is_positive CHECK (ttl > interval '0'),
    CONSTRAINT enrichment_policy_min_session_count_is_positive CHECK (min_session_count > 0)
);
COMMENT ON TABLE ipintel.enrichment_policy IS
    'How long each source''s result stays fresh, and which IPs a source is asked about. Edit the rows to change the policy.';
INSERT INTO ipintel.enrichment_policy (source, ttl, skip_when_maxmind_asn) VALUES
    ('maxmind', interval '7 days', false),    -- or sooner, when a newer database build is installed
    ('cymru', interval '30 days', true),      -- by default only for IPs MaxMind gave no ASN
    ('greynoise', interval '7 days', false);

COMMENT ON COLUMN ipintel.enrichment_policy.ttl IS 'A result older than this is stale and fetched again.';
COMMENT ON COLUMN ipintel.enrichment_policy.enabled IS 'A disabled source is never run by `ipintel enrich`.';
COMMENT ON COLUMN ipintel.enrichment_policy.skip_when_maxmind_asn IS
    'Never-fetched IPs that MaxMind already gave an ASN are not asked (default for cymru); stale results are refreshed regardless.';
COMMENT ON COLUMN ipintel.enrichment_policy.min_session_count IS
    'When set, only IPs with at least this many sessions are asked (or, with or_login_success, IPs with a successful login). For small quotas.';
COMMENT ON COLUMN ipintel.enrichment_policy.or_login_success IS
    'With min_session_count: IPs with a successful login are asked whatever their session count.';

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
    CONSTRAINT enrichment_runs_source_is_known CHECK (source IN ('maxmind', 'cymru', 'greynoise')),
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
COMMENT ON COLUMN ipintel.enrichment_runs.merged IS 'IPs whose result was merged into ip_inventory.';
COMMENT ON COLUMN ipintel.enrichment_runs.failed IS 'IPs recorded in enrichment_failures by this run.';
COMMENT ON COLUMN ipintel.enrichment_runs.provenance IS 'Where the data came from: database types, paths and build epochs, service address, API tier. Never a secret.';
COMMENT ON COLUMN ipintel.enrichment_runs.message IS 'Why the pass stopped, failed or was skipped.';
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
    CONSTRAINT enrichment_failures_source_is_known CHECK (source IN ('maxmind', 'cymru', 'greynoise')),
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
CREATE INDEX enrichment_failures_run_id_idx ON ipintel.enrichment_failures (run_id);
CREATE UNIQUE INDEX enrichment_failures_open_key ON ipintel.enrichment_failures (source, ip) WHERE resolved_at IS NULL;
COMMENT ON INDEX ipintel.enrichment_failures_open_key IS 'At most one open failure per source and IP: a repeated failure updates it.';

------------------------------------------------------------------------------------------
-- Staging: one UNLOGGED table per source, rows tagged with run and batch
------------------------------------------------------------------------------------------
CREATE UNLOGGED TABLE ipintel_staging.maxmind_results (
    run_id      bigint      NOT NULL,
    batch_id    bigint      NOT NULL,
    ip          inet        NOT NULL,
    fetched_at  timestamptz NOT NULL,
    result      jsonb       NOT NULL
);
COMMENT ON TABLE ipintel_staging.maxmind_results IS 'Staging for merge_maxmind: one MaxMind document per IP.';
CREATE INDEX maxmind_results_batch_id_idx ON ipintel_staging.maxmind_results (batch_id);

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

-- Records ASN observations in ip_asn_history, BEFORE the caller sets current_asn: an IP whose
-- ASN changed gets its open range closed at the observation time and a new one opened there,
-- so consecutive ranges meet; an IP without history gets its first range. Returns the ASNs
-- (old and new) whose counts the caller must refresh once current_asn is set.
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
    'Records ASN observations (parallel arrays) in ip_asn_history, closing and opening ranges where the ASN changed; call before setting current_asn. Returns the ASNs whose counts may change.';

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

    -- MaxMind's ASN sets current_asn only where Team Cymru (live BGP) has not answered, and
    -- only when an ASN database was read (the City file alone says nothing about ASNs).
    SELECT ipintel.record_asn_history('maxmind', array_agg(r.ip), array_agg((r.result ->> 'asn')::bigint),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.maxmind_results r
    JOIN ipintel.ip_inventory i ON i.ip = r.ip
    WHERE r.batch_id = p_batch_id
      AND jsonb_typeof(r.result -> 'asn_db') = 'object'
      AND NOT (i.enrichment ? 'cymru');

    -- One write per row: the document and, with the same rule as above, current_asn.
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('maxmind', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        current_asn = CASE WHEN jsonb_typeof(r.result -> 'asn_db') = 'object' AND NOT (i.enrichment ? 'cymru')
                           THEN (r.result ->> 'asn')::bigint ELSE i.current_asn END,
        updated_at = now()
    FROM ipintel_staging.maxmind_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN ipintel.finish_batch('maxmind', p_run_id, p_batch_id, v_merged, v_asns);
END;
$$;
COMMENT ON FUNCTION ipintel.merge_maxmind(bigint, bigint) IS
    'Merges a staged MaxMind batch: enrichment->maxmind with its fetched_at, asn_inventory, current_asn (when Team Cymru has not answered) and ip_asn_history. Returns the IPs merged.';

------------------------------------------------------------------------------------------
-- Snapshots
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.take_snapshots(p_sources text[], p_max_wait interval DEFAULT interval '2 days')
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_taken bigint;
BEGIN
    -- A session's snapshot is taken once its IP is settled: a bogon, or no longer due for any
    -- source that ran; or, after p_max_wait, with whatever is known (a GreyNoise quota must not
    -- hold snapshots back for ever).
    WITH due AS (
        SELECT d.ip FROM unnest(p_sources) AS src(name) CROSS JOIN LATERAL ipintel.ips_due(src.name) AS d
    ), settled AS (
        SELECT i.ip
        FROM ipintel.ip_inventory i
        WHERE i.is_bogon
           OR (i.enrichment <> '{}'::jsonb AND NOT EXISTS (SELECT 1 FROM due WHERE due.ip = i.ip))
    ), snap AS (
        UPDATE ipintel.session_summaries s
        SET snapshot_asn = coalesce(
                (SELECT h.asn FROM ipintel.ip_asn_history h
                 WHERE h.ip = s.source_ip AND h.valid @> s.first_event_at),
                i.current_asn),
            snapshot_country = i.geo_country,
            snapshot_ip_type = i.ip_type,
            snapshot_is_scanner = i.is_scanner,
            snapshot_enrichment = i.enrichment,
            snapshot_at = now(),
            updated_at = now()
        FROM ipintel.ip_inventory i
        WHERE i.ip = s.source_ip
          AND s.snapshot_at IS NULL
          AND (s.source_ip IN (SELECT st.ip FROM settled st)
               OR (s.first_event_at < now() - p_max_wait AND i.enrichment <> '{}'::jsonb))
        RETURNING 1)
    SELECT count(*) INTO v_taken FROM snap;
    RETURN v_taken;
END;
$$;
COMMENT ON FUNCTION ipintel.take_snapshots(text[], interval) IS
    'Fills the snapshot_* columns of sessions still without one whose IP is settled for the given sources (or waited longer than p_max_wait). Never touches a snapshot already taken.';

CREATE FUNCTION ipintel.protect_snapshot()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF OLD.snapshot_at IS NOT NULL
       AND (NEW.snapshot_asn, NEW.snapshot_country, NEW.snapshot_ip_type, NEW.snapshot_is_scanner,
            NEW.snapshot_enrichment, NEW.snapshot_at)
           IS DISTINCT FROM
           (OLD.snapshot_asn, OLD.snapshot_country, OLD.snapshot_ip_type, OLD.snapshot_is_scanner,
            OLD.snapshot_enrichment, OLD.snapshot_at) THEN
        RAISE EXCEPTION 'snapshot of session % was taken at % and is never rewritten', OLD.session_id, OLD.snapshot_at
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ipintel.protect_snapshot() IS 'Trigger function: refuses to change a session snapshot once taken.';

CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at
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
