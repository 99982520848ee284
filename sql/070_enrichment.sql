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
    skip_when_asn_known     boolean  NOT NULL DEFAULT false,
    min_session_count       bigint,
    or_login_success        boolean  NOT NULL DEFAULT false,
    snapshot_window         interval NOT NULL DEFAULT interval '30 days',
    kind                    text     NOT NULL,
    pass_order              bigint   NOT NULL,
    merge_function          text,
    facts_function          text     NOT NULL,
    asn_rank                bigint,
    country_rank            bigint,
    is_scanner_rank         bigint,
    is_riot_rank            bigint,
    ip_type_rank            bigint,
    as_name_rank            bigint,
    is_known_attacker_rank  bigint,
    CONSTRAINT enrichment_policy_pkey PRIMARY KEY (source),
    CONSTRAINT enrichment_policy_pass_order_key UNIQUE (pass_order),
    CONSTRAINT enrichment_policy_source_is_a_lower_case_name CHECK (source ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT enrichment_policy_kind_is_known CHECK (kind IN ('offline_database', 'remote_service', 'reference_list')),
    CONSTRAINT enrichment_policy_ttl_is_positive CHECK (ttl > interval '0'),
    CONSTRAINT enrichment_policy_min_session_count_is_positive CHECK (min_session_count > 0),
    CONSTRAINT enrichment_policy_snapshot_window_is_not_negative CHECK (snapshot_window >= interval '0'),
    CONSTRAINT enrichment_policy_asn_rank_key UNIQUE (asn_rank),
    CONSTRAINT enrichment_policy_country_rank_key UNIQUE (country_rank),
    CONSTRAINT enrichment_policy_is_scanner_rank_key UNIQUE (is_scanner_rank),
    CONSTRAINT enrichment_policy_is_riot_rank_key UNIQUE (is_riot_rank),
    CONSTRAINT enrichment_policy_ip_type_rank_key UNIQUE (ip_type_rank),
    CONSTRAINT enrichment_policy_as_name_rank_key UNIQUE (as_name_rank),
    CONSTRAINT enrichment_policy_is_known_attacker_rank_key UNIQUE (is_known_attacker_rank)
);
COMMENT ON TABLE ipintel.enrichment_policy IS
    'The source registry: one row per enrichment source, with its pass order and merge function, how long its result stays fresh, and which IPs it is asked about. Edit the policy columns to change the policy.';
-- The registry rows: a source's name appears here and in its own functions (sql/080_sources.sql),
-- nowhere else. The ranks say which facts each source gives and which source wins a fact when
-- several give it (1 first); snapshots wait for a field's sources in that order:
--   ASN      cymru 1 (live BGP origin), then the offline files: maxmind 2, ipinfo 3, dbip 4
--   country  geolocation first: maxmind 1, ipinfo 2, dbip 3; cymru 4 (RIR registration country)
--   AS name  cymru 1, maxmind 2, ipinfo 3, dbip 4, dshield 5
--   ASN and country: dshield 5 as well (the AS it reports and that AS's country: a fallback)
--   known attacker (and the threat feeds listing the IP): dshield 1
-- The offline files run before Team Cymru (pass_order), so Cymru is not asked about IPs they
-- already attributed (skip_when_asn_known). An offline source with none of its files installed
-- is skipped, and snapshots do not wait for it (snapshot_pending_sources).
INSERT INTO ipintel.enrichment_policy (source, ttl, skip_when_asn_known, kind, pass_order, merge_function,
                                       facts_function, asn_rank, country_rank, is_scanner_rank, is_riot_rank,
                                       ip_type_rank, as_name_rank, is_known_attacker_rank) VALUES
    -- ttl unused: an offline database's answers are due again when a newer build is installed
    ('maxmind', interval '7 days', false, 'offline_database', 10, 'ipintel.merge_maxmind', 'ipintel.maxmind_facts',
     2, 1, NULL, NULL, 2, 2, NULL),
    ('ipinfo', interval '7 days', false, 'offline_database', 12, 'ipintel.merge_as_names', 'ipintel.ipinfo_facts',
     3, 2, NULL, NULL, NULL, 3, NULL),
    ('dbip', interval '7 days', false, 'offline_database', 14, 'ipintel.merge_as_names', 'ipintel.dbip_facts',
     4, 3, NULL, NULL, NULL, 4, NULL),
    -- by default only for IPs whose ASN no source has given yet; live BGP: its ASN wins
    ('cymru', interval '30 days', true, 'remote_service', 20, 'ipintel.merge_cymru', 'ipintel.cymru_facts',
     1, 4, NULL, NULL, 3, 1, NULL),
    ('greynoise', interval '7 days', false, 'remote_service', 30, NULL, 'ipintel.greynoise_facts',
     NULL, NULL, 1, 1, 1, NULL, NULL),
    -- SANS ISC DShield: attack reports and threat feeds; a polite client (see the README)
    ('dshield', interval '7 days', false, 'remote_service', 40, 'ipintel.merge_as_names', 'ipintel.dshield_facts',
     5, 5, NULL, NULL, NULL, 5, 1);

COMMENT ON COLUMN ipintel.enrichment_policy.ttl IS
    'An answer older than this (enrichment_state.fetched_at) is stale and fetched again, unless the IP''s class has a TTL of its own (ip_types.ttl, which then applies to every source). Not for an offline_database source: re-reading the same build cannot say anything new, so its answers are due again only when a newer build is installed.';
COMMENT ON COLUMN ipintel.enrichment_policy.enabled IS 'A disabled source is never run by `ipintel enrich`.';
COMMENT ON COLUMN ipintel.enrichment_policy.skip_when_asn_known IS
    'Never-fetched IPs whose ASN another source already gave (ip_inventory.current_asn) are not asked (default for cymru); stale results are refreshed regardless.';
COMMENT ON COLUMN ipintel.enrichment_policy.min_session_count IS
    'When set, only IPs with at least this many sessions are asked (or, with or_login_success, IPs with a successful login). For small quotas.';
COMMENT ON COLUMN ipintel.enrichment_policy.or_login_success IS
    'With min_session_count: IPs with a successful login are asked whatever their session count.';
COMMENT ON COLUMN ipintel.enrichment_policy.kind IS
    'offline_database (local files, e.g. MaxMind, IPinfo Lite or DB-IP Lite .mmdb), remote_service (asked over the network, e.g. Team Cymru, GreyNoise) or reference_list (ranges or lists loaded from files).';
COMMENT ON COLUMN ipintel.enrichment_policy.pass_order IS '`ipintel enrich` runs the passes in this order (unique).';
COMMENT ON COLUMN ipintel.enrichment_policy.merge_function IS
    'Schema-qualified name of the source''s own merge step, a function (p_run_id bigint, p_batch_id bigint) RETURNS void that merge_batch calls on a staged batch after recording its answers and before applying their facts (e.g. AS facts into asn_inventory). NULL: the source has none.';
COMMENT ON COLUMN ipintel.enrichment_policy.facts_function IS
    'Schema-qualified name of the source''s facts function (p_result jsonb) RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text, is_known_attacker boolean, threatfeeds text[]): what one answer document says, recorded in enrichment_state.';
COMMENT ON COLUMN ipintel.enrichment_policy.asn_rank IS
    'Precedence of this source for the ASN (1 first; NULL: it gives none): current_asn is the ASN observed by the first-ranked source that observed one.';
COMMENT ON COLUMN ipintel.enrichment_policy.country_rank IS
    'Precedence of this source for geo_country (1 first; NULL: it gives none). By default the geolocation databases come first and Team Cymru''s registration country last.';
COMMENT ON COLUMN ipintel.enrichment_policy.is_scanner_rank IS 'Precedence of this source for is_scanner (1 first; NULL: it gives none).';
COMMENT ON COLUMN ipintel.enrichment_policy.is_riot_rank IS 'Precedence of this source for is_riot (1 first; NULL: it gives none).';
COMMENT ON COLUMN ipintel.enrichment_policy.ip_type_rank IS
    'Precedence of this source for ip_type (1 first; NULL: it gives none). With no ip_type from any source, an IP with an ASN is routed.';
COMMENT ON COLUMN ipintel.enrichment_policy.is_known_attacker_rank IS
    'Precedence of this source for is_known_attacker and, with it, threatfeeds (1 first; NULL: it gives none): both come from the first-ranked source that says whether the IP is a known attacker.';
COMMENT ON COLUMN ipintel.enrichment_policy.as_name_rank IS
    'Precedence of this source for asn_inventory.as_name (1 first; NULL: it gives none), from asn_inventory.sources -> source ->> ''as_name''.';
COMMENT ON COLUMN ipintel.enrichment_policy.snapshot_window IS
    'How long after a session is ingested (session_summaries.created_at) its snapshot still waits for this source: an unknown snapshot field is filled when the source first answers within the window; after it, the field is settled with what is known.';
COMMENT ON COLUMN ipintel.enrichment_policy.source IS 'Source name (lower case), e.g. maxmind, ipinfo, dbip, cymru, greynoise, dshield: the key every other table refers to.';

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
    'running, succeeded, finished_with_failures, stopped (quota or budget spent: the rest stays due), failed (pass aborted, e.g. a broken database file), interrupted (killed; set by the next run) or skipped (not configured: no API key, or an offline database with none of its files installed, which snapshots then do not wait for).';
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
    asn          bigint,
    asn_observed boolean    NOT NULL DEFAULT false,
    country      text,
    is_scanner   boolean,
    is_riot      boolean,
    ip_type      text,
    is_known_attacker boolean,
    threatfeeds  text[],
    -- No foreign key: rows are written only by record_enrichment_state, for the IPs of a batch it
    -- has just joined to ip_inventory and locked, under the run's registered source (see
    -- "No foreign key on the columns the merges write for every IP" below; verify_integrity).
    CONSTRAINT enrichment_state_pkey PRIMARY KEY (ip, source),
    CONSTRAINT enrichment_state_changed_no_later_than_fetched CHECK (changed_at <= fetched_at)
) WITH (fillfactor = 50);
COMMENT ON TABLE ipintel.enrichment_state IS
    'When each source last answered for each IP, and the typed facts of that answer: one row per IP and source that has answered (no row: never fetched). The answer document is ip_inventory.enrichment -> source, rewritten only when it changes; ip_inventory''s current_asn, geo_country, is_scanner, is_riot, ip_type, is_known_attacker and threatfeeds are resolved from these facts by the registry''s ranks. Read by ips_due, enrichment_coverage and the snapshots.';
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
COMMENT ON COLUMN ipintel.enrichment_state.asn IS 'Fact of the last answer (the source''s facts_function): the origin ASN it gave, if any.';
COMMENT ON COLUMN ipintel.enrichment_state.asn_observed IS
    'Fact of the last answer: it is an ASN observation (asn, or NULL meaning allocated but not routed). false: the source says nothing about the ASN (e.g. not in its file).';
COMMENT ON COLUMN ipintel.enrichment_state.country IS 'Fact of the last answer: the country it gave (ISO 3166-1 alpha-2), if any.';
COMMENT ON COLUMN ipintel.enrichment_state.is_scanner IS 'Fact of the last answer: seen scanning the internet (NULL: not said).';
COMMENT ON COLUMN ipintel.enrichment_state.is_riot IS 'Fact of the last answer: a known benign business service (NULL: not said).';
COMMENT ON COLUMN ipintel.enrichment_state.ip_type IS 'Fact of the last answer: a classification (riot, scanner, anonymizer, unrouted...), if it gives one.';
COMMENT ON COLUMN ipintel.enrichment_state.is_known_attacker IS
    'Fact of the last answer: reported attacking other networks (DShield: reports > 0); false: the source has no such report; NULL: not said.';
COMMENT ON COLUMN ipintel.enrichment_state.threatfeeds IS
    'Fact of the last answer: the threat feeds that list the IP (their names, sorted; empty: none); NULL: not said.';

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
    -- No foreign key on source (revision 0053): merge_batch takes the source from the batch's run
    -- (enrichment_runs.source, which has one), never from these rows; a per-row check here was
    -- about 40% of the COPY of a batch of 10,000 answers.
    build       bigint
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
-- older than its TTL is stale, except an offline database's, which re-reading the same build
-- cannot change: it is due again only for a newer build (ips_due's p_current_build). The TTL is
-- the IP's class's when the class has one (ip_types.ttl: volatile infrastructure sooner,
-- residential lines later), else the source's.
CREATE FUNCTION ipintel.answer_is_stale(p_policy ipintel.enrichment_policy, p_fetched_at timestamptz,
                                        p_class_ttl interval)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.kind <> 'offline_database' AND p_fetched_at < now() - coalesce(p_class_ttl, p_policy.ttl);
COMMENT ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz, interval) IS
    'True when an answer fetched at p_fetched_at is older than its TTL: p_class_ttl (the ip_types.ttl of the IP''s class) when given, else the source''s ttl; never for an offline_database source (due again only for a newer build). NULL when p_fetched_at is NULL (never fetched).';

-- The policy's two filters, shared by ips_due (is the IP asked?) and snapshot_pending_sources (does a
-- snapshot still wait for the source?), so both always read the policy the same way.
CREATE FUNCTION ipintel.skipped_for_known_asn(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.skip_when_asn_known AND p_ip.current_asn IS NOT NULL;
COMMENT ON FUNCTION ipintel.skipped_for_known_asn(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the policy skips the IP because a source already gave its ASN (skip_when_asn_known).';

-- Whether any session of the IP logged in. A function of its own (revision 0076) so that
-- below_session_threshold, which calls it, has no subquery and is inlined: not inlined, it took
-- the whole ip_inventory row (p_ip) from every query that used it, and snapshot_pending_sources
-- and ips_due formed that row, enrichment document and all, for every (IP, source) pair they
-- read (150,000 IPs: a 100 MB Materialize spilled to disk, 0.3 s of a 1.1 s read of the view).
CREATE FUNCTION ipintel.has_successful_login(p_ip inet)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN EXISTS (SELECT 1 FROM ipintel.session_summaries s WHERE s.source_ip = p_ip AND s.login_successes > 0);
COMMENT ON FUNCTION ipintel.has_successful_login(inet) IS
    'True when some session of the IP has a successful login (session_summaries.login_successes > 0).';

CREATE FUNCTION ipintel.below_session_threshold(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.min_session_count IS NOT NULL AND p_ip.session_count < p_policy.min_session_count
    AND NOT (p_policy.or_login_success AND ipintel.has_successful_login(p_ip.ip));
COMMENT ON FUNCTION ipintel.below_session_threshold(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the policy does not ask about the IP: fewer sessions than min_session_count (and, with or_login_success, no successful login).';

-- Whether an ingest is loading sessions into this database right now: `ipintel ingest` holds the
-- session advisory lock 'ipintel.ingest' (loader/ipintel/ingest.py) for the whole run, on its
-- own connection, and a crashed run's lock goes with its connection. Snapshots read it: a running
-- ingest may still add sessions (and successful logins) of an IP, so a session-count threshold
-- (below_session_threshold) is not final while it runs.
CREATE FUNCTION ipintel.ingest_is_running()
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = ''
RETURN EXISTS (
    SELECT 1 FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
      AND ((l.classid::bigint << 32) | l.objid::bigint) = pg_catalog.hashtextextended('ipintel.ingest', 0));
COMMENT ON FUNCTION ipintel.ingest_is_running() IS
    'True while an `ipintel ingest` runs against this database (it holds the advisory lock ''ipintel.ingest''). A session-count threshold (min_session_count, or_login_success) does not decline an IP for snapshots while it runs: the ingest may still add the IP''s sessions.';

CREATE FUNCTION ipintel.ips_due(
    p_source text,
    p_limit bigint DEFAULT NULL,
    p_force boolean DEFAULT false,
    p_ips inet[] DEFAULT NULL,
    p_current_build bigint DEFAULT NULL)
    RETURNS TABLE (ip inet, last_seen timestamptz)
    LANGUAGE plpgsql
    STABLE
    SET search_path = ''
    -- Tens of milliseconds of work when little is due, but costed high while the statistics lag
    -- a first enrichment: JIT compilation then took 380 ms of a 430 ms call (50,000 IPs).
    SET jit = off
AS $$
BEGIN
    -- First the IPs that may be due, found without reading ip_inventory's rows: those the source
    -- never answered (an anti-join of the two primary keys), those it answered before the
    -- shortest TTL in force or from an older build; every IP when forced; the IPs asked for. Only
    -- those rows are then read and filtered, so a run with nothing due reads none. PL/pgSQL, so
    -- that the query is planned with the call's values: the branches that do not apply are
    -- pruned, and the candidates are estimated from the statistics (a SQL function's generic
    -- plan expected every IP and hashed the whole inventory).
    RETURN QUERY
    WITH candidates AS (
        SELECT i.ip FROM ipintel.ip_inventory i
        WHERE NOT p_force AND p_ips IS NULL
          AND NOT EXISTS (SELECT FROM ipintel.enrichment_state e WHERE e.ip = i.ip AND e.source = p_source)
        UNION ALL
        -- answer_is_stale with the latest cutoff of the policy's and the classes' TTLs: a superset.
        SELECT e.ip FROM ipintel.enrichment_state e
        JOIN ipintel.enrichment_policy p ON p.source = e.source
        WHERE NOT p_force AND p_ips IS NULL AND e.source = p_source
          AND (e.build < p_current_build
               OR (p.kind <> 'offline_database'
                   AND e.fetched_at < greatest(now() - p.ttl, (SELECT max(now() - t.ttl) FROM ipintel.ip_types t))))
        UNION ALL
        SELECT i.ip FROM ipintel.ip_inventory i WHERE p_force AND p_ips IS NULL
        UNION ALL
        SELECT DISTINCT u.ip FROM unnest(p_ips) AS u(ip))
    SELECT i.ip, i.last_seen
    FROM candidates c
    JOIN ipintel.ip_inventory i ON i.ip = c.ip
    CROSS JOIN ipintel.enrichment_policy p
    LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
    LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
    WHERE p.source = p_source
      AND NOT i.is_bogon
      AND (p_force OR (
          -- never fetched, stale, or fetched from an older database build
          (e.ip IS NULL
           OR ipintel.answer_is_stale(p, e.fetched_at, t.ttl)
           OR e.build < p_current_build)
          AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
          -- the threshold's function (a subquery: not inlined) is called only when one is set
          AND (p.min_session_count IS NULL OR NOT ipintel.below_session_threshold(p, i))
          -- a failure that asking again cannot fix, or one asked to wait
          AND NOT EXISTS (
              SELECT 1 FROM ipintel.enrichment_failures f
              WHERE f.source = p_source AND f.ip = i.ip AND f.resolved_at IS NULL
                AND (NOT f.retryable OR f.retry_after > now()))))
    ORDER BY i.last_seen DESC NULLS LAST, i.ip
    LIMIT p_limit;
END;
$$;
COMMENT ON FUNCTION ipintel.ips_due(text, bigint, boolean, inet[], bigint) IS
    'IPs due for a source, most recently seen first: never fetched (no enrichment_state row), older than the TTL (the IP''s class''s, ip_types.ttl, else the policy''s; never for an offline_database source), or fetched from an older data build than p_current_build; never bogons. p_ips restricts to those IPs; p_force ignores freshness and policy filters.';

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
-- order, then every asn_inventory row the batch may touch in asn order: the given ASNs, the
-- current ASNs of those IPs and the ASNs any source has given them (one of which may become
-- current). Ingest chunks and merge_batch call this before writing anything else.
-- One index probe per IP (revision 0049), in ip order: the rows are locked by a probe per IP of
-- the sorted list, and the sources' ASNs are read the same way (OFFSET 0 keeps it a probe). With
-- `ip = ANY (p_ips)` the planner chose a sequential scan of the whole inventory as soon as a batch
-- was a few percent of it (10,000 IPs of 300,000), twice, and one of enrichment_state: each batch
-- then cost in proportion to the inventory, not to itself.
CREATE FUNCTION ipintel.lock_for_merge(p_ips inet[], p_asns bigint[])
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_current_asns bigint[];
BEGIN
    -- a nested loop over the sorted IPs: each row is locked when its IP's turn comes
    SELECT array_agg(l.current_asn) FILTER (WHERE l.current_asn IS NOT NULL) INTO v_current_asns
    FROM (SELECT DISTINCT u.ip FROM unnest(p_ips) AS u(ip) ORDER BY u.ip) b
    CROSS JOIN LATERAL (SELECT i.current_asn FROM ipintel.ip_inventory i WHERE i.ip = b.ip
                        FOR NO KEY UPDATE) l;
    PERFORM 1 FROM ipintel.asn_inventory a
    WHERE a.asn = ANY (p_asns || v_current_asns
                       || ARRAY(SELECT e.asn FROM unnest(p_ips) AS u(ip)
                                CROSS JOIN LATERAL (SELECT e.asn FROM ipintel.enrichment_state e
                                                    WHERE e.ip = u.ip AND e.asn IS NOT NULL OFFSET 0) e))
    ORDER BY a.asn
    FOR NO KEY UPDATE;
END;
$$;
COMMENT ON FUNCTION ipintel.lock_for_merge(inet[], bigint[]) IS
    'Locks the ip_inventory rows of p_ips (ip order, one index probe per IP), then the asn_inventory rows of p_asns, of their current ASNs and of the ASNs sources gave them (asn order): the one lock order of ingest and every merge, so concurrent runs cannot deadlock. Linear in the IPs given, whatever the size of the inventory.';

-- Records that the IPs of a staged batch were answered, BEFORE their documents are written:
-- fetched_at, build and the answer's typed facts (the source's facts_function) for every IP;
-- changed_at only where the staged document differs from the stored one. Only merge_batch writes
-- these state rows, and one enrichment runs at a time (the loader's advisory lock): no other
-- merge writes them meanwhile (revision 0043: the batch's unchanged IPs are not locked). An
-- answer staged out of order (older than the stored change) with the same document says it held
-- by its fetch time already: least().
-- An answer that repeats the stored document (a TTL refresh: most answers of a re-fetch) has the
-- facts its state row already holds, which the facts function made from that same document: only
-- its freshness is written, by a plain UPDATE (revision 0053). The INSERT ... ON CONFLICT, which
-- computes the facts, takes only new and changed documents (in a re-merge, none: it is skipped).
-- A revision that changes what a facts function says recomputes the stored facts itself.
CREATE FUNCTION ipintel.record_enrichment_state(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_facts_function regproc;
    v_staged bigint;
    v_refreshed bigint;
    v_count bigint;
BEGIN
    SELECT p.facts_function::regproc INTO STRICT v_facts_function
    FROM ipintel.enrichment_policy p WHERE p.source = p_source;
    SELECT count(*) INTO v_staged FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id;
    -- Unchanged documents with a state row: their fetch time (and build) only. No other writer
    -- touches these rows (above), so the order in which they are locked does not matter.
    -- Only when the batch repeats any stored document (revision 0056): found by one probe per
    -- staged row. A first enrichment repeats none, and its state table grows faster than its
    -- statistics: the planner believed it a few rows and joined the batch to all of it in a
    -- loop, about 600 ms of every batch of 10,000 at 300,000 IPs for an update of no row.
    IF NOT EXISTS (SELECT FROM ipintel_staging.enrichment_results r
                   CROSS JOIN LATERAL (SELECT c.enrichment -> p_source AS document FROM ipintel.ip_inventory c
                                       WHERE c.ip = r.ip OFFSET 0) i
                   WHERE r.batch_id = p_batch_id AND i.document = r.result) THEN
        v_refreshed := 0;
    ELSE
        UPDATE ipintel.enrichment_state e
        SET fetched_at = r.fetched_at, build = r.build, changed_at = least(e.changed_at, r.fetched_at)
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory i ON i.ip = r.ip
        WHERE r.batch_id = p_batch_id AND e.ip = r.ip AND e.source = p_source
          AND i.enrichment -> p_source = r.result;
        GET DIAGNOSTICS v_refreshed = ROW_COUNT;
    END IF;
    IF v_refreshed = v_staged THEN
        RETURN v_refreshed;  -- nothing new or changed (the INSERT below would only filter them out)
    END IF;
    -- The registry names the facts function; ::regproc checks that it exists and quotes it.
    EXECUTE format($sql$
        INSERT INTO ipintel.enrichment_state AS e
               (ip, source, fetched_at, build, changed_at, asn, asn_observed, country, is_scanner, is_riot, ip_type,
                is_known_attacker, threatfeeds)
        -- changed_at: only new or changed documents come here (the filter below; repeated ones
        -- were refreshed above), so the document changed when it was fetched
        SELECT r.ip, $1, r.fetched_at, r.build, r.fetched_at,
               f.asn, coalesce(f.asn_observed, false), f.country, f.is_scanner, f.is_riot, f.ip_type,
               f.is_known_attacker, f.threatfeeds
        FROM ipintel_staging.enrichment_results r
        -- one index probe per staged row (revision 0056): as a join, the planner hashed the
        -- whole inventory for every batch
        CROSS JOIN LATERAL (SELECT c.enrichment FROM ipintel.ip_inventory c WHERE c.ip = r.ip OFFSET 0) i
        -- one index probe per staged row: the table grows through a first enrichment faster
        -- than its statistics, and a planner that believes it small scans and sorts it whole
        LEFT JOIN LATERAL (SELECT c.changed_at FROM ipintel.enrichment_state c
                           WHERE c.ip = r.ip AND c.source = $1 LIMIT 1) cur ON true
        LEFT JOIN LATERAL %s(r.result) f ON true
        WHERE r.batch_id = $2
          -- the rest of the batch: a new or changed document, or no state row yet
          AND (cur.changed_at IS NULL OR i.enrichment -> $1 IS DISTINCT FROM r.result)
        ORDER BY r.ip
        ON CONFLICT (ip, source) DO UPDATE SET
            fetched_at = excluded.fetched_at,
            build = excluded.build,
            changed_at = excluded.changed_at,
            asn = excluded.asn,
            asn_observed = excluded.asn_observed,
            country = excluded.country,
            is_scanner = excluded.is_scanner,
            is_riot = excluded.is_riot,
            ip_type = excluded.ip_type,
            is_known_attacker = excluded.is_known_attacker,
            threatfeeds = excluded.threatfeeds
        $sql$, v_facts_function) USING p_source, p_batch_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_refreshed + v_count;
END;
$$;
COMMENT ON FUNCTION ipintel.record_enrichment_state(text, bigint) IS
    'Records in enrichment_state that the IPs of a staged batch were answered by p_source: fetched_at, build, the typed facts of each answer (the source''s facts_function) and changed_at where the document differs from the stored one; call before writing the documents. An answer repeating the stored document (its facts are those already recorded) has only its fetch time and build written. Returns the IPs recorded.';

-- Records ASN observations in ip_asn_history: an IP whose ASN changed gets its open range closed
-- at the observation time and a new one opened there, so consecutive ranges meet; an IP without
-- history gets its first range. Callers pass only real observations (an ASN, or "allocated but
-- not routed" as NULL), never "this source does not know", and only for IPs they hold
-- (lock_for_merge). Returns the ASNs (old and new) of the ranges it changed. Every statement
-- finds its rows through the open-range index (no join over the whole table).
-- Index probes only (no hash or merge join): the input is one batch, the table every IP, and a
-- first enrichment grows the table faster than autovacuum analyzes it, so a planner trusting
-- its statistics hashed the whole table once per batch.
CREATE FUNCTION ipintel.record_asn_history(p_sources text[], p_ips inet[], p_asns bigint[], p_observed_at timestamptz[])
    RETURNS bigint[]
    LANGUAGE plpgsql
    SET search_path = ''
    SET enable_hashjoin = off
    SET enable_mergejoin = off
AS $$
DECLARE
    v_closed bigint[];
    v_corrected bigint[];
    v_opened bigint[];
BEGIN
    -- Separate statements, in this order: each open range is closed before the range that
    -- follows it is inserted.
    WITH closed AS (
        UPDATE ipintel.ip_asn_history h
        SET valid = tstzrange(lower(h.valid), o.observed_at, '[)')
        FROM unnest(p_ips, p_asns, p_observed_at) AS o(ip, asn, observed_at)
        WHERE h.ip = o.ip AND upper_inf(h.valid) AND h.asn IS DISTINCT FROM o.asn
          AND o.observed_at > lower(h.valid)
        RETURNING h.asn AS old_asn, o.asn AS new_asn)
    SELECT array_agg(c.old_asn) || array_agg(c.new_asn) INTO v_closed FROM closed c;

    -- Observed at the very instant the open range began: that range simply had the wrong ASN.
    WITH corrected AS (
        UPDATE ipintel.ip_asn_history h
        SET asn = o.asn, source = o.source, recorded_at = now()
        FROM (SELECT x.history_id, x.asn AS old_asn, u.source, u.asn
              FROM unnest(p_sources, p_ips, p_asns, p_observed_at) AS u(source, ip, asn, observed_at)
              JOIN ipintel.ip_asn_history x ON x.ip = u.ip AND upper_inf(x.valid) AND x.asn IS DISTINCT FROM u.asn
                                          AND u.observed_at <= lower(x.valid)) o
        WHERE h.history_id = o.history_id
        RETURNING o.old_asn, o.asn AS new_asn)
    SELECT array_agg(c.old_asn) || array_agg(c.new_asn) INTO v_corrected FROM corrected c;

    -- An IP without an open range gets one. The open-range index decides (ON CONFLICT), not an
    -- anti-join: during a first enrichment the table grows faster than its statistics, and a
    -- planner that believes it empty loops over it once per inserted row.
    WITH opened AS (
        INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
        SELECT o.ip, o.asn, tstzrange(o.observed_at, NULL, '[)'), o.source
        FROM unnest(p_sources, p_ips, p_asns, p_observed_at) AS o(source, ip, asn, observed_at)
        ON CONFLICT (ip) WHERE upper_inf(valid) DO NOTHING
        RETURNING asn)
    SELECT array_agg(c.asn) INTO v_opened FROM opened c;

    RETURN ARRAY(SELECT DISTINCT a.asn FROM unnest(v_closed || v_corrected || v_opened) AS a(asn)
                 WHERE a.asn IS NOT NULL ORDER BY a.asn);
END;
$$;
COMMENT ON FUNCTION ipintel.record_asn_history(text[], inet[], bigint[], timestamptz[]) IS
    'Records real ASN observations (parallel arrays: observing source, IP, ASN, time) in ip_asn_history, closing and opening ranges where the ASN changed. Returns the ASNs (old and new) of the ranges it changed, in order.';

-- What is known of IPs, fact by fact: the value of the first-ranked source (enrichment_policy
-- *_rank) whose last answer gives it. An IP no source classified is routed once it has an ASN.
-- The threat feeds are those of the source that says whether the IP is a known attacker.
-- Set-based (revision 0071): the answers of all the IPs are read and sorted once; each IP's first
-- rank per fact is a window over its answers, and the fact is the value of the answer of that
-- rank. One IP at a time, as ordered aggregates, every IP started fourteen small sorts.
CREATE FUNCTION ipintel.resolved_facts_of(p_ips inet[])
    RETURNS TABLE (ip inet, asn bigint, asn_source text, asn_observed_at timestamptz, country text, country_source text,
                   is_scanner boolean, is_scanner_source text, is_riot boolean, ip_type text, ip_type_source text,
                   is_known_attacker boolean, is_known_attacker_source text, threatfeeds text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT u.ip, x.asn, x.asn_source, x.asn_observed_at, x.country, x.country_source, x.is_scanner, x.is_scanner_source,
           x.is_riot, coalesce(x.ip_type, CASE WHEN x.asn IS NOT NULL THEN 'routed' END),
           CASE WHEN x.ip_type IS NOT NULL THEN x.ip_type_source WHEN x.asn IS NOT NULL THEN x.asn_source END,
           x.is_known_attacker, x.is_known_attacker_source, x.threatfeeds
    FROM (SELECT DISTINCT v.ip FROM unnest(p_ips) AS v(ip)) u
    LEFT JOIN (
        -- Each fact from the answer of its first rank (ranks are unique per fact: the registry's
        -- keys), picked by FILTER from the IP's answers grouped once.
        SELECT a.ip,
               max(a.asn) FILTER (WHERE a.asn_rank = a.asn_first) AS asn,
               max(a.source) FILTER (WHERE a.asn_rank = a.asn_first) AS asn_source,
               max(a.fetched_at) FILTER (WHERE a.asn_rank = a.asn_first) AS asn_observed_at,
               max(a.country) FILTER (WHERE a.country_rank = a.country_first) AS country,
               max(a.source) FILTER (WHERE a.country_rank = a.country_first) AS country_source,
               bool_or(a.is_scanner) FILTER (WHERE a.is_scanner_rank = a.is_scanner_first) AS is_scanner,
               max(a.source) FILTER (WHERE a.is_scanner_rank = a.is_scanner_first) AS is_scanner_source,
               bool_or(a.is_riot) FILTER (WHERE a.is_riot_rank = a.is_riot_first) AS is_riot,
               max(a.ip_type) FILTER (WHERE a.ip_type_rank = a.ip_type_first) AS ip_type,
               max(a.source) FILTER (WHERE a.ip_type_rank = a.ip_type_first) AS ip_type_source,
               bool_or(a.is_known_attacker) FILTER (WHERE a.is_known_attacker_rank = a.is_known_attacker_first)
                   AS is_known_attacker,
               max(a.source) FILTER (WHERE a.is_known_attacker_rank = a.is_known_attacker_first)
                   AS is_known_attacker_source,
               -- the threat feeds of the answer that says whether the IP is a known attacker
               max(a.threatfeeds) FILTER (WHERE a.is_known_attacker_rank = a.is_known_attacker_first) AS threatfeeds
        FROM (
            -- each answer with, per fact, the first rank among the IP's answers that give it
            SELECT e.ip, e.source, e.asn, e.fetched_at, e.country, e.is_scanner, e.is_riot, e.ip_type,
                   e.is_known_attacker, e.threatfeeds, p.asn_rank, p.country_rank, p.is_scanner_rank, p.is_riot_rank,
                   p.ip_type_rank, p.is_known_attacker_rank,
                   min(p.asn_rank) FILTER (WHERE e.asn_observed) OVER w AS asn_first,
                   min(p.country_rank) FILTER (WHERE e.country IS NOT NULL) OVER w AS country_first,
                   min(p.is_scanner_rank) FILTER (WHERE e.is_scanner IS NOT NULL) OVER w AS is_scanner_first,
                   min(p.is_riot_rank) FILTER (WHERE e.is_riot IS NOT NULL) OVER w AS is_riot_first,
                   min(p.ip_type_rank) FILTER (WHERE e.ip_type IS NOT NULL) OVER w AS ip_type_first,
                   min(p.is_known_attacker_rank) FILTER (WHERE e.is_known_attacker IS NOT NULL) OVER w
                       AS is_known_attacker_first
            FROM ipintel.enrichment_state e
            JOIN ipintel.enrichment_policy p ON p.source = e.source
            WHERE e.ip = ANY (p_ips)
            WINDOW w AS (PARTITION BY e.ip)) a
        GROUP BY a.ip) x ON x.ip = u.ip;
END;
COMMENT ON FUNCTION ipintel.resolved_facts_of(inet[]) IS
    'The facts of each distinct IP of p_ips resolved across sources (one row per IP, NULLs where no source answered): for each fact the value of the first-ranked source (enrichment_policy *_rank) whose last answer gives it, with that source (and, for the ASN, when it was observed). ip_type here is what the sources say (falling back to routed when an ASN is known); ip_inventory.ip_type weighs it with the range lists and rules (ip_classes). threatfeeds are those of the source is_known_attacker came from. Set-based: apply_answers resolves a merge batch with one call.';

-- The same for one IP (what an analyst asks).
CREATE FUNCTION ipintel.resolved_facts(p_ip inet)
    RETURNS TABLE (asn bigint, asn_source text, asn_observed_at timestamptz, country text, country_source text,
                   is_scanner boolean, is_scanner_source text, is_riot boolean, ip_type text, ip_type_source text,
                   is_known_attacker boolean, is_known_attacker_source text, threatfeeds text[])
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    SELECT f.asn, f.asn_source, f.asn_observed_at, f.country, f.country_source, f.is_scanner, f.is_scanner_source,
           f.is_riot, f.ip_type, f.ip_type_source, f.is_known_attacker, f.is_known_attacker_source, f.threatfeeds
    FROM ipintel.resolved_facts_of(ARRAY[p_ip]) f;
END;
COMMENT ON FUNCTION ipintel.resolved_facts(inet) IS
    'The facts of one IP resolved across sources (resolved_facts_of of that IP): for each fact the value of the first-ranked source (enrichment_policy *_rank) whose last answer gives it, with that source (and, for the ASN, when it was observed). ip_type here is what the sources say (falling back to routed when an ASN is known); ip_inventory.ip_type weighs it with the range lists and rules (ip_classes). threatfeeds are those of the source is_known_attacker came from. One row, NULLs when no source answered.';

-- The AS name of the first-ranked source (as_name_rank) that gave one in asn_inventory.sources.
CREATE FUNCTION ipintel.ranked_as_name(p_sources jsonb)
    RETURNS text
    LANGUAGE sql
    STABLE
RETURN (SELECT p_sources -> p.source ->> 'as_name'
        FROM ipintel.enrichment_policy p
        WHERE p.as_name_rank IS NOT NULL AND nullif(p_sources -> p.source ->> 'as_name', '') IS NOT NULL
        ORDER BY p.as_name_rank
        LIMIT 1);
COMMENT ON FUNCTION ipintel.ranked_as_name(jsonb) IS
    'The as_name of the first-ranked source (enrichment_policy.as_name_rank) in an asn_inventory.sources document; NULL when none gives one.';

-- The generic half of every merge, after the source's own step: the batch's documents, the
-- facts ip_inventory resolves from enrichment_state (current_asn with its history, geo_country,
-- is_scanner, is_riot, is_known_attacker with threatfeeds, each with the source it came from)
-- and the class (ip_classes, called once per batch with the batch's IPs and their ASNs as they
-- now resolve). The facts of the batch's IPs whose answer changed are resolved in one call
-- (resolved_facts_of, revision 0071; before, resolved_facts once per staged row); one write per
-- IP, and only for an IP where something changes; the written rows whose ASN observation
-- changed go on to ip_asn_history.
CREATE FUNCTION ipintel.apply_answers(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
    v_moved_sources text[];
    v_moved_ips inet[];
    v_moved_asns bigint[];
    v_moved_at timestamptz[];
    v_asns bigint[];
    v_gained_asns bigint[];
    v_gained_ips bigint[];
    v_gained_sessions bigint[];
    v_gained_first_seen timestamptz[];
    v_gained_last_seen timestamptz[];
BEGIN
    WITH changed AS MATERIALIZED (
        -- The staged answers with the IP's row as it is: one index probe per staged row (OFFSET 0
        -- keeps it one, revision 0056: a join let the planner hash the whole inventory for every
        -- batch). An answer that repeats the stored document changes no fact (its facts are the
        -- same, and no other source's answer changed meanwhile): only its fetch time, which
        -- record_enrichment_state has written. So a refresh of unchanged answers resolves
        -- nothing (half of a re-merge's time went here); an IP never classified still is.
        SELECT r.ip, r.fetched_at, r.result, cur.*
        FROM ipintel_staging.enrichment_results r
        CROSS JOIN LATERAL (SELECT c.current_asn, c.current_asn_source, c.enrichment, c.geo_country,
                                   c.geo_country_source, c.is_scanner, c.is_scanner_source, c.is_riot,
                                   c.is_known_attacker, c.is_known_attacker_source, c.threatfeeds, c.ip_type,
                                   c.ip_type_source, c.ip_provider, c.ip_class_basis
                            FROM ipintel.ip_inventory c WHERE c.ip = r.ip OFFSET 0) cur
        WHERE r.batch_id = p_batch_id
          AND (cur.enrichment -> p_source IS DISTINCT FROM r.result OR cur.ip_class_basis IS NULL)
    ), n AS MATERIALIZED (
        -- The IP's new values (v), and whether they change any fact but the class: only then
        -- is the IP classified again (c).
        SELECT v.*,
               ((v.old_enrichment, v.old_asn, v.old_asn_source, v.old_geo_country, v.old_geo_country_source,
                 v.old_is_scanner, v.old_is_scanner_source, v.old_is_riot, v.old_is_known_attacker,
                 v.old_is_known_attacker_source, v.old_threatfeeds)
                IS DISTINCT FROM
                (v.enrichment, v.current_asn, v.current_asn_source, v.geo_country, v.geo_country_source,
                 v.is_scanner, v.is_scanner_source, v.is_riot, v.is_known_attacker, v.is_known_attacker_source,
                 v.threatfeeds)
                OR v.kept_ip_class_basis IS NULL) AS facts_change
        FROM (
            SELECT cur.ip, cur.fetched_at, cur.current_asn AS old_asn, cur.current_asn_source AS old_asn_source,
                   f.asn AS observed_asn, f.asn_source AS observed_asn_source,
                   CASE WHEN cur.enrichment -> p_source IS DISTINCT FROM cur.result
                        THEN cur.enrichment || jsonb_build_object(p_source, cur.result) ELSE cur.enrichment END AS enrichment,
                   -- No ASN observation at all ("not in the file") keeps the last one.
                   CASE WHEN f.asn_source IS NOT NULL THEN f.asn ELSE cur.current_asn END AS current_asn,
                   coalesce(f.asn_source, cur.current_asn_source) AS current_asn_source,
                   coalesce(f.country, 'XX') AS geo_country, f.country_source AS geo_country_source,
                   f.is_scanner, f.is_scanner_source, f.is_riot,
                   f.is_known_attacker, f.is_known_attacker_source, f.threatfeeds,
                   cur.enrichment AS old_enrichment, cur.geo_country AS old_geo_country,
                   cur.geo_country_source AS old_geo_country_source, cur.is_scanner AS old_is_scanner,
                   cur.is_scanner_source AS old_is_scanner_source, cur.is_riot AS old_is_riot,
                   cur.is_known_attacker AS old_is_known_attacker,
                   cur.is_known_attacker_source AS old_is_known_attacker_source, cur.threatfeeds AS old_threatfeeds,
                   cur.ip_type AS kept_ip_type, cur.ip_type_source AS kept_ip_type_source,
                   cur.ip_provider AS kept_ip_provider, cur.ip_class_basis AS kept_ip_class_basis
            FROM changed cur
            -- each IP's facts, resolved for the batch at once
            LEFT JOIN ipintel.resolved_facts_of(ARRAY(SELECT c.ip FROM changed c)) f ON f.ip = cur.ip
        ) v
    ), c AS MATERIALIZED (
        -- The class as of today, once for the whole batch (ip_classes is never inlined: its
        -- arrays come from scalar subqueries, so no join re-runs it per row), and only for the IPs
        -- whose facts or ASN change here: the class of the others cannot change by this merge (a
        -- re-fetch of unchanged answers classified every IP again: about 9% of a re-merge's time).
        -- A new range list or AS name reaches them through classify_inventory (ranges load/fetch).
        SELECT x.*
        FROM ipintel.ip_classes(ARRAY(SELECT n.ip FROM n WHERE n.facts_change ORDER BY n.ip),
                                ARRAY(SELECT (now() AT TIME ZONE 'UTC')::date FROM n WHERE n.facts_change),
                                ARRAY(SELECT n.current_asn FROM n WHERE n.facts_change ORDER BY n.ip),
                                ARRAY(SELECT n.current_asn_source FROM n WHERE n.facts_change ORDER BY n.ip)) x
    ), written AS (
        UPDATE ipintel.ip_inventory i
        SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
            geo_country = n.geo_country, geo_country_source = n.geo_country_source,
            is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
            ip_type = n.ip_type, ip_type_source = n.ip_type_source, ip_provider = n.ip_provider,
            ip_class_basis = n.ip_class_basis, is_known_attacker = n.is_known_attacker,
            is_known_attacker_source = n.is_known_attacker_source, threatfeeds = n.threatfeeds, updated_at = now()
        FROM (SELECT n.*,
                     -- classified now, or the class it has (its facts do not change)
                     CASE WHEN n.facts_change THEN c.ip_type ELSE n.kept_ip_type END AS ip_type,
                     CASE WHEN n.facts_change THEN c.ip_type_source ELSE n.kept_ip_type_source END AS ip_type_source,
                     CASE WHEN n.facts_change THEN c.ip_provider ELSE n.kept_ip_provider END AS ip_provider,
                     CASE WHEN n.facts_change THEN c.ip_class_basis ELSE n.kept_ip_class_basis END AS ip_class_basis
              FROM n
              LEFT JOIN c ON c.ip = n.ip) n
        WHERE i.ip = n.ip
          AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
               i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source, i.ip_provider, i.ip_class_basis,
               i.is_known_attacker, i.is_known_attacker_source, i.threatfeeds)
              IS DISTINCT FROM
              (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
               n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source, n.ip_provider, n.ip_class_basis,
               n.is_known_attacker, n.is_known_attacker_source, n.threatfeeds)
        RETURNING n.ip, n.fetched_at, n.old_asn, n.old_asn_source, n.observed_asn, n.observed_asn_source,
                  n.current_asn, i.session_count, i.first_seen, i.last_seen
    ), moved AS (
        -- A new ASN observation (a value, or a better-ranked source) becomes current and goes to
        -- the history as of this answer: when a better-ranked source stops observing, the
        -- fallback becomes current now, not when it was observed.
        SELECT w.* FROM written w
        WHERE w.observed_asn_source IS NOT NULL
          AND (w.old_asn, w.old_asn_source) IS DISTINCT FROM (w.observed_asn, w.observed_asn_source)
    ), left_asn AS (
        -- ASNs an IP left: recounted (their first_seen / last_seen may narrow)
        SELECT DISTINCT w.old_asn AS asn FROM written w
        WHERE w.old_asn IS DISTINCT FROM w.current_asn AND w.old_asn IS NOT NULL
    ), gained AS (
        -- ASNs that only gained IPs: what they gain is added (revision 0050), not recounted
        SELECT w.current_asn AS asn, count(*) AS ips, sum(w.session_count)::bigint AS sessions,
               min(w.first_seen) AS first_seen, max(w.last_seen) AS last_seen
        FROM written w
        WHERE w.old_asn IS DISTINCT FROM w.current_asn AND w.current_asn IS NOT NULL
          AND w.current_asn NOT IN (SELECT l.asn FROM left_asn l)
        GROUP BY w.current_asn
    )
    SELECT (SELECT count(*) FROM written),
           (SELECT array_agg(m.observed_asn_source) FROM moved m), (SELECT array_agg(m.ip) FROM moved m),
           (SELECT array_agg(m.observed_asn) FROM moved m), (SELECT array_agg(m.fetched_at) FROM moved m),
           ARRAY(SELECT l.asn FROM left_asn l ORDER BY l.asn),
           (SELECT array_agg(g.asn) FROM gained g), (SELECT array_agg(g.ips) FROM gained g),
           (SELECT array_agg(g.sessions) FROM gained g), (SELECT array_agg(g.first_seen) FROM gained g),
           (SELECT array_agg(g.last_seen) FROM gained g)
    INTO v_changed, v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at, v_asns,
         v_gained_asns, v_gained_ips, v_gained_sessions, v_gained_first_seen, v_gained_last_seen;

    IF v_moved_ips IS NOT NULL THEN
        PERFORM ipintel.record_asn_history(v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at);
    END IF;
    -- The counts of the ASNs whose IPs changed: a recount of those an IP left, and what the others
    -- gained added (a recount read every IP of each ASN: the big ones, whole, in every batch).
    PERFORM ipintel.refresh_asn_counts(v_asns);
    IF v_gained_asns IS NOT NULL THEN
        PERFORM ipintel.add_to_asn_counts(v_gained_asns, v_gained_ips, v_gained_sessions, v_gained_first_seen,
                                          v_gained_last_seen);
    END IF;
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.apply_answers(text, bigint) IS
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot and is_known_attacker (with threatfeeds) with their *_source from enrichment_state by the registry''s ranks (resolved_facts_of, once per batch), classifies as of today the IPs whose facts or ASN change (ip_classes, once per batch: ip_type, ip_type_source, ip_provider, ip_class_basis; the others keep their class until classify_inventory), and keeps the ASN counts (recounting the ASNs an IP left, adding to those that only gained: add_to_asn_counts). An IP whose staged document equals its stored one (a refresh that learned nothing) is not resolved again: its facts cannot change (a change of the registry''s ranks reaches it with its next changed answer; resolved_facts shows it at once). Writes only rows that change; returns how many.';

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
    v_merge_function regproc;
    v_facts_function regproc;
    v_ips inet[];
    v_asns bigint[];
    v_fetched bigint;
    v_merged bigint := 0;
    v_failed bigint;
BEGIN
    -- The registry names the source's functions; ::regproc checks that they exist and quotes
    -- them, so no call is ever built from free text.
    SELECT r.source, p.merge_function::regproc, p.facts_function::regproc
    INTO STRICT v_source, v_merge_function, v_facts_function
    FROM ipintel.enrichment_runs r
    JOIN ipintel.enrichment_policy p ON p.source = r.source
    WHERE r.run_id = p_run_id;

    -- v_ips: the IPs whose ip_inventory row this batch may write, the rows apply_answers writes:
    -- a new or changed document, or an IP never classified (revision 0043). An answer that repeats
    -- the stored document writes only its enrichment_state row, which no other writer touches (one
    -- enrichment at a time): its ip_inventory row is not locked, so a refresh of unchanged answers
    -- does not write a lock into every row it read. Documents change only here, so the set cannot
    -- grow before the lock is taken.
    SELECT count(*),
           array_agg(r.ip) FILTER (WHERE i.enrichment -> v_source IS DISTINCT FROM r.result OR i.ip_class_basis IS NULL)
    INTO v_fetched, v_ips
    FROM ipintel_staging.enrichment_results r
    -- one index probe per staged row (revision 0056): a join read the whole inventory per batch
    LEFT JOIN LATERAL (SELECT c.enrichment, c.ip_class_basis FROM ipintel.ip_inventory c
                       WHERE c.ip = r.ip OFFSET 0) i ON true
    WHERE r.batch_id = p_batch_id;
    IF v_fetched > 0 THEN
        EXECUTE format('SELECT array_agg(DISTINCT f.asn) FROM ipintel_staging.enrichment_results r '
                       'CROSS JOIN LATERAL %s(r.result) f WHERE r.batch_id = $1 AND f.asn IS NOT NULL',
                       v_facts_function)
        INTO v_asns USING p_batch_id;
        PERFORM ipintel.lock_for_merge(coalesce(v_ips, '{}'), coalesce(v_asns, '{}'));
        v_merged := ipintel.record_enrichment_state(v_source, p_batch_id);
        IF v_merge_function IS NOT NULL THEN
            EXECUTE format('SELECT %s($1, $2)', v_merge_function) USING p_run_id, p_batch_id;
        END IF;
        -- apply_answers writes only the rows of v_ips (the same filter): none, nothing to do
        -- (a TTL refresh of unchanged answers; revision 0053).
        IF v_ips IS NOT NULL THEN
            PERFORM ipintel.apply_answers(v_source, p_batch_id);
        END IF;
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
    'Merges one staged batch of a run, whatever its source: locks (lock_for_merge: the ip_inventory rows it may write, those with a new or changed document or no class yet, and the ASNs of the answers), records the answers and their facts in enrichment_state (record_enrichment_state), calls the source''s own merge step (enrichment_policy.merge_function, if any), writes the documents and resolved facts into ip_inventory (apply_answers), resolves the failures of the IPs answered, records the staged failures, empties the batch and adds to the run''s fetched / merged / failed. Returns those three counts.';

------------------------------------------------------------------------------------------
-- Coverage for operators and analysts
------------------------------------------------------------------------------------------
CREATE VIEW ipintel.enrichment_coverage AS
SELECT p.source,
       p.enabled,
       p.ttl,
       count(*) FILTER (WHERE NOT i.is_bogon) AS ips,
       count(*) FILTER (WHERE NOT i.is_bogon AND e.ip IS NOT NULL AND NOT ipintel.answer_is_stale(p, e.fetched_at, t.ttl))
           AS fresh,
       count(*) FILTER (WHERE NOT i.is_bogon AND ipintel.answer_is_stale(p, e.fetched_at, t.ttl)) AS stale,
       count(*) FILTER (WHERE NOT i.is_bogon AND e.ip IS NULL) AS never_fetched,
       (SELECT count(DISTINCT f.ip) FROM ipintel.enrichment_failures f
        WHERE f.source = p.source AND f.resolved_at IS NULL) AS failed,
       count(*) FILTER (WHERE i.is_bogon) AS bogons_never_sent,
       max(e.fetched_at) AS last_fetched_at
FROM ipintel.enrichment_policy p
LEFT JOIN ipintel.ip_inventory i ON true
LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
GROUP BY p.source, p.enabled, p.ttl;
COMMENT ON VIEW ipintel.enrichment_coverage IS
    'Per source: IPs (bogons excluded) with a fresh answer, a stale one (older than the TTL: the IP''s class''s, ip_types.ttl, else the source''s ttl; an offline database''s answers never go stale by time), none yet, open failures; bogons are never sent. Freshness from enrichment_state.';

------------------------------------------------------------------------------------------
-- No foreign key on the columns the merges write for every IP (ip_asn_history.ip / asn /
-- source, ip_inventory's *_source, enrichment_state.ip / source): their values come from the
-- rows the merge has just joined and locked (the IP's ip_inventory row, the registry), so a
-- per-row check there can never fail; on a first enrichment they were 9 of the 11 referential
-- checks per IP. The same holds for the class columns (revision 0030: ip_type, ip_provider,
-- ip_class_basis), which only ip_classes computes, from ip_types and range_lists. The tiers' own
-- keys stay (ip_inventory.current_asn, session_summaries.source_ip): the current_asn check also
-- covers the ASN of the history range written beside it. ipintel verify checks all of them
-- again, set-based (verify_integrity).
------------------------------------------------------------------------------------------
