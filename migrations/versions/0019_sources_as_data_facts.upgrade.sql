-- From migrations/versions/0019_sources_as_data_facts.upgrade.sql (sql/030_tiers.sql, sql/060_ingest.sql,
-- sql/070_enrichment.sql, sql/075_snapshots.sql and sql/080_sources.sql as of this revision)
-- Sources as data, completed: what each source says is typed facts in enrichment_state (its facts
-- function), ranked per fact in the registry; ip_inventory's source-derived columns are resolved
-- from them by one generic function instead of generation expressions naming sources. Snapshots
-- wait per field by rank, computed once per IP (linear: issue 19).
--
-- Locks: ACCESS EXCLUSIVE on ip_inventory and enrichment_state for the column changes, none of
-- which rewrites a table (DROP EXPRESSION keeps the stored values; ADD COLUMN without a default
-- or with a constant one is a catalog change). The foreign keys are added NOT VALID and
-- validated in 0020, where the new columns are also filled.
-- Replaced functions and views are dropped and created again in this transaction (signatures or
-- return types change); callers see either the old set or the new one.
-- squawk-ignore-file ban-drop-function, ban-drop-view
-- The registry (three rows) is read only by the functions replaced here: its column rename, NOT NULL
-- change and UNIQUE constraints are instant. The generation expressions are dropped on purpose
-- (the stored values stay; the merges maintain the columns from now on).
-- squawk-ignore-file renaming-column, ban-drop-not-null, constraint-missing-not-valid, disallowed-unique-constraint, ban-drop-generated-expression
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- The registry gains the facts: its facts function, and each fact's rank.
ALTER TABLE ipintel.enrichment_policy RENAME COLUMN skip_when_maxmind_asn TO skip_when_asn_known;
ALTER TABLE ipintel.enrichment_policy ALTER COLUMN merge_function DROP NOT NULL;
ALTER TABLE ipintel.enrichment_policy
    ADD COLUMN facts_function text,
    ADD COLUMN asn_rank bigint,
    ADD COLUMN country_rank bigint,
    ADD COLUMN is_scanner_rank bigint,
    ADD COLUMN is_riot_rank bigint,
    ADD COLUMN ip_type_rank bigint,
    ADD COLUMN as_name_rank bigint;
UPDATE ipintel.enrichment_policy SET facts_function = 'ipintel.maxmind_facts', asn_rank = 2, country_rank = 1, ip_type_rank = 2, as_name_rank = 2
WHERE source = 'maxmind';
UPDATE ipintel.enrichment_policy SET facts_function = 'ipintel.cymru_facts', asn_rank = 1, country_rank = 2, ip_type_rank = 3, as_name_rank = 1
WHERE source = 'cymru';
UPDATE ipintel.enrichment_policy SET merge_function = NULL, facts_function = 'ipintel.greynoise_facts', is_scanner_rank = 1, is_riot_rank = 1, ip_type_rank = 1
WHERE source = 'greynoise';
-- The registry has one row per source (three today): its constraints are checked at once.
-- squawk-ignore adding-not-nullable-field
ALTER TABLE ipintel.enrichment_policy ALTER COLUMN facts_function SET NOT NULL;
ALTER TABLE ipintel.enrichment_policy
    ADD CONSTRAINT enrichment_policy_asn_rank_key UNIQUE (asn_rank),
    ADD CONSTRAINT enrichment_policy_country_rank_key UNIQUE (country_rank),
    ADD CONSTRAINT enrichment_policy_is_scanner_rank_key UNIQUE (is_scanner_rank),
    ADD CONSTRAINT enrichment_policy_is_riot_rank_key UNIQUE (is_riot_rank),
    ADD CONSTRAINT enrichment_policy_ip_type_rank_key UNIQUE (ip_type_rank),
    ADD CONSTRAINT enrichment_policy_as_name_rank_key UNIQUE (as_name_rank);
COMMENT ON COLUMN ipintel.enrichment_policy.ttl IS
    'An answer older than this (enrichment_state.fetched_at) is stale and fetched again. Not for an offline_database source: re-reading the same build cannot say anything new, so its answers are due again only when a newer build is installed.';
COMMENT ON COLUMN ipintel.enrichment_policy.enabled IS 'A disabled source is never run by `ipintel enrich`.';
COMMENT ON COLUMN ipintel.enrichment_policy.skip_when_asn_known IS
    'Never-fetched IPs whose ASN another source already gave (ip_inventory.current_asn) are not asked (default for cymru); stale results are refreshed regardless.';
COMMENT ON COLUMN ipintel.enrichment_policy.min_session_count IS
    'When set, only IPs with at least this many sessions are asked (or, with or_login_success, IPs with a successful login). For small quotas.';
COMMENT ON COLUMN ipintel.enrichment_policy.or_login_success IS
    'With min_session_count: IPs with a successful login are asked whatever their session count.';
COMMENT ON COLUMN ipintel.enrichment_policy.kind IS
    'offline_database (a local file, e.g. MaxMind .mmdb), remote_service (asked over the network, e.g. Team Cymru, GreyNoise) or reference_list (ranges or lists loaded from files).';
COMMENT ON COLUMN ipintel.enrichment_policy.pass_order IS '`ipintel enrich` runs the passes in this order (unique).';
COMMENT ON COLUMN ipintel.enrichment_policy.merge_function IS
    'Schema-qualified name of the source''s own merge step, a function (p_run_id bigint, p_batch_id bigint) RETURNS void that merge_batch calls on a staged batch after recording its answers and before applying their facts (e.g. AS facts into asn_inventory). NULL: the source has none.';
COMMENT ON COLUMN ipintel.enrichment_policy.facts_function IS
    'Schema-qualified name of the source''s facts function (p_result jsonb) RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text): what one answer document says, recorded in enrichment_state.';
COMMENT ON COLUMN ipintel.enrichment_policy.asn_rank IS
    'Precedence of this source for the ASN (1 first; NULL: it gives none): current_asn is the ASN observed by the first-ranked source that observed one.';
COMMENT ON COLUMN ipintel.enrichment_policy.country_rank IS 'Precedence of this source for geo_country (1 first; NULL: it gives none).';
COMMENT ON COLUMN ipintel.enrichment_policy.is_scanner_rank IS 'Precedence of this source for is_scanner (1 first; NULL: it gives none).';
COMMENT ON COLUMN ipintel.enrichment_policy.is_riot_rank IS 'Precedence of this source for is_riot (1 first; NULL: it gives none).';
COMMENT ON COLUMN ipintel.enrichment_policy.ip_type_rank IS
    'Precedence of this source for ip_type (1 first; NULL: it gives none). With no ip_type from any source, an IP with an ASN is routed.';
COMMENT ON COLUMN ipintel.enrichment_policy.as_name_rank IS
    'Precedence of this source for asn_inventory.as_name (1 first; NULL: it gives none), from asn_inventory.sources -> source ->> ''as_name''.';
COMMENT ON COLUMN ipintel.enrichment_policy.snapshot_window IS
    'How long after a session is ingested (session_summaries.created_at) its snapshot still waits for this source: an unknown snapshot field is filled when the source first answers within the window; after it, the field is settled with what is known.';
COMMENT ON COLUMN ipintel.enrichment_policy.source IS 'Source name (lower case), e.g. maxmind, cymru, greynoise: the key every other table refers to.';

-- Typed facts of each source's last answer.
ALTER TABLE ipintel.enrichment_state
    ADD COLUMN asn bigint,
    ADD COLUMN asn_observed boolean NOT NULL DEFAULT false,
    ADD COLUMN country text,
    ADD COLUMN is_scanner boolean,
    ADD COLUMN is_riot boolean,
    ADD COLUMN ip_type text;
COMMENT ON TABLE ipintel.enrichment_state IS
    'When each source last answered for each IP, and the typed facts of that answer: one row per IP and source that has answered (no row: never fetched). The answer document is ip_inventory.enrichment -> source, rewritten only when it changes; ip_inventory''s current_asn, geo_country, is_scanner, is_riot and ip_type are resolved from these facts by the registry''s ranks. Read by ips_due, enrichment_coverage and the snapshots.';
COMMENT ON COLUMN ipintel.enrichment_state.ip IS 'The IP answered for (ip_inventory).';
COMMENT ON COLUMN ipintel.enrichment_state.source IS 'The source that answered (enrichment_policy).';
COMMENT ON COLUMN ipintel.enrichment_state.fetched_at IS
    'When the source last answered for the IP, whether or not the facts changed. Older than the source''s ttl: stale (never for an offline_database source).';
COMMENT ON COLUMN ipintel.enrichment_state.build IS
    'Data build of the last answer, for offline databases (MaxMind: the newer build_epoch of the files read, seconds since 1970); NULL for live services. Answers from an older build than the installed files are due again.';
COMMENT ON COLUMN ipintel.enrichment_state.changed_at IS
    'When the answer''s facts (the document in ip_inventory.enrichment) last changed: the fetch that first gave them as they are now.';
COMMENT ON COLUMN ipintel.enrichment_state.asn IS 'Fact of the last answer (the source''s facts_function): the origin ASN it gave, if any.';
COMMENT ON COLUMN ipintel.enrichment_state.asn_observed IS
    'Fact of the last answer: it is an ASN observation (asn, or NULL meaning allocated but not routed). false: the source says nothing about the ASN (e.g. not in its file).';
COMMENT ON COLUMN ipintel.enrichment_state.country IS 'Fact of the last answer: the country it gave (ISO 3166-1 alpha-2), if any.';
COMMENT ON COLUMN ipintel.enrichment_state.is_scanner IS 'Fact of the last answer: seen scanning the internet (NULL: not said).';
COMMENT ON COLUMN ipintel.enrichment_state.is_riot IS 'Fact of the last answer: a known benign business service (NULL: not said).';
COMMENT ON COLUMN ipintel.enrichment_state.ip_type IS 'Fact of the last answer: a classification (riot, scanner, anonymizer, unrouted...), if it gives one.';

-- ip_inventory: the source-derived columns are no longer generated from the documents.
ALTER TABLE ipintel.ip_inventory
    ALTER COLUMN geo_country DROP EXPRESSION,
    ALTER COLUMN is_scanner DROP EXPRESSION,
    ALTER COLUMN is_riot DROP EXPRESSION,
    ALTER COLUMN ip_type DROP EXPRESSION,
    ALTER COLUMN geo_country SET DEFAULT 'XX',
    ALTER COLUMN ip_type SET DEFAULT 'unknown',
    ADD COLUMN current_asn_source text,
    ADD COLUMN geo_country_source text,
    ADD COLUMN is_scanner_source text,
    ADD COLUMN ip_type_source text;
ALTER TABLE ipintel.ip_inventory
    ADD CONSTRAINT ip_inventory_current_asn_source_fkey FOREIGN KEY (current_asn_source) REFERENCES ipintel.enrichment_policy (source) NOT VALID,
    ADD CONSTRAINT ip_inventory_geo_country_source_fkey FOREIGN KEY (geo_country_source) REFERENCES ipintel.enrichment_policy (source) NOT VALID,
    ADD CONSTRAINT ip_inventory_is_scanner_source_fkey FOREIGN KEY (is_scanner_source) REFERENCES ipintel.enrichment_policy (source) NOT VALID,
    ADD CONSTRAINT ip_inventory_ip_type_source_fkey FOREIGN KEY (ip_type_source) REFERENCES ipintel.enrichment_policy (source) NOT VALID;
COMMENT ON TABLE ipintel.ip_inventory IS
    'Tier 2: one row per source IP seen by a honeypot, with the latest answer of every enrichment source and the facts resolved from them for the hot filters, each with its source.';
COMMENT ON COLUMN ipintel.ip_inventory.enrichment IS NULL;
COMMENT ON COLUMN ipintel.ip_inventory.ip IS 'Source address: a host address; IPv4-mapped IPv6 is stored as IPv4.';
COMMENT ON COLUMN ipintel.ip_inventory.first_seen IS 'Start of the earliest session from this IP.';
COMMENT ON COLUMN ipintel.ip_inventory.last_seen IS 'Latest event of any session from this IP.';
COMMENT ON COLUMN ipintel.ip_inventory.session_count IS 'Number of session_summaries rows from this IP.';
COMMENT ON COLUMN ipintel.ip_inventory.enrichment IS
    'Latest answer of each source under its key (maxmind, cymru, greynoise): its facts only, rewritten only when they change. When each source last answered, and from which data build, is in enrichment_state. A missing key means never answered.';
COMMENT ON COLUMN ipintel.ip_inventory.current_asn IS 'ASN announcing this IP as of the latest observation, from the first-ranked source that observed one (enrichment_policy.asn_rank; current_asn_source says which); history in ip_asn_history.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_family IS 'Generated: 4 or 6.';
COMMENT ON COLUMN ipintel.ip_inventory.is_bogon IS 'Generated: address is special-purpose / not globally routable (RFC 6890); never sent to remote sources.';
COMMENT ON COLUMN ipintel.ip_inventory.geo_country IS
    'Geolocation country of the first-ranked source that gives one (enrichment_policy.country_rank; geo_country_source says which), else XX (unknown).';
COMMENT ON COLUMN ipintel.ip_inventory.is_scanner IS 'Seen scanning the internet, by the first-ranked source that says (is_scanner_rank). NULL when no such source has answered.';
COMMENT ON COLUMN ipintel.ip_inventory.is_riot IS 'A known benign business service (CDN, search crawler...), by the first-ranked source that says (is_riot_rank). NULL when none has answered.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_type IS
    'First classification: bogon; else the classification of the first-ranked source that gives one (ip_type_rank: riot, scanner, anonymizer, unrouted = allocated but not announced); else routed when an ASN is known; else unknown.';
COMMENT ON COLUMN ipintel.ip_inventory.current_asn_source IS 'The source whose observation current_asn is (enrichment_policy); NULL: none yet.';
COMMENT ON COLUMN ipintel.ip_inventory.geo_country_source IS 'The source geo_country came from; NULL: none (XX).';
COMMENT ON COLUMN ipintel.ip_inventory.is_scanner_source IS 'The source is_scanner came from; NULL: none.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_type_source IS 'The source ip_type came from (for routed: the ASN''s source); NULL for bogon and unknown.';

CREATE FUNCTION ipintel.classify_bogon()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF ipintel.is_bogon(NEW.ip) THEN
        NEW.ip_type := 'bogon';
        NEW.ip_type_source := NULL;
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ipintel.classify_bogon() IS 'Trigger function: a bogon''s ip_type is bogon, whatever the writer set.';
-- WHEN: the function runs only for a bogon not typed so (the merges' updates of every other
-- row skip the call).
CREATE TRIGGER ip_inventory_bogon_is_typed
    BEFORE INSERT OR UPDATE OF ip, ip_type ON ipintel.ip_inventory
    FOR EACH ROW
    WHEN (NEW.ip_type IS DISTINCT FROM 'bogon' AND ipintel.is_bogon(NEW.ip))
    EXECUTE FUNCTION ipintel.classify_bogon();

-- The policy reads the resolved ASN instead of one source's document.
DROP VIEW ipintel.snapshot_backlog;
DROP FUNCTION ipintel.source_declines(ipintel.enrichment_policy, ipintel.ip_inventory);
DROP FUNCTION ipintel.ips_due(text, bigint, boolean, inet[], bigint);
DROP FUNCTION ipintel.skipped_for_maxmind_asn(ipintel.enrichment_policy, ipintel.ip_inventory);
CREATE FUNCTION ipintel.skipped_for_known_asn(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.skip_when_asn_known AND p_ip.current_asn IS NOT NULL;
COMMENT ON FUNCTION ipintel.skipped_for_known_asn(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the policy skips the IP because a source already gave its ASN (skip_when_asn_known).';

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
          AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
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

-- Generic merge steps.
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
       OR a.asn IN (SELECT e.asn FROM ipintel.enrichment_state e WHERE e.ip = ANY (p_ips))
    ORDER BY a.asn
    FOR NO KEY UPDATE;
END;
$$;
COMMENT ON FUNCTION ipintel.lock_for_merge(inet[], bigint[]) IS
    'Locks the ip_inventory rows of p_ips (ip order), then the asn_inventory rows of p_asns, of their current ASNs and of the ASNs sources gave them (asn order): the one lock order of ingest and every merge, so concurrent runs cannot deadlock.';

CREATE OR REPLACE FUNCTION ipintel.record_enrichment_state(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_facts_function regproc;
    v_count bigint;
BEGIN
    SELECT p.facts_function::regproc INTO STRICT v_facts_function
    FROM ipintel.enrichment_policy p WHERE p.source = p_source;
    -- The registry names the facts function; ::regproc checks that it exists and quotes it.
    EXECUTE format($sql$
        INSERT INTO ipintel.enrichment_state AS e
               (ip, source, fetched_at, build, changed_at, asn, asn_observed, country, is_scanner, is_riot, ip_type)
        SELECT r.ip, $1, r.fetched_at, r.build,
               CASE WHEN cur.ip IS NULL OR i.enrichment -> $1 IS DISTINCT FROM r.result THEN r.fetched_at
                    ELSE least(cur.changed_at, r.fetched_at) END,
               f.asn, coalesce(f.asn_observed, false), f.country, f.is_scanner, f.is_riot, f.ip_type
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory i ON i.ip = r.ip
        LEFT JOIN ipintel.enrichment_state cur ON cur.ip = r.ip AND cur.source = $1
        LEFT JOIN LATERAL %s(r.result) f ON true
        WHERE r.batch_id = $2
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
            ip_type = excluded.ip_type
        $sql$, v_facts_function) USING p_source, p_batch_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION ipintel.record_enrichment_state(text, bigint) IS
    'Records in enrichment_state that the IPs of a staged batch were answered by p_source: fetched_at, build, the typed facts of each answer (the source''s facts_function) and changed_at where the document differs from the stored one; call before writing the documents. Returns the IPs recorded.';

DROP FUNCTION ipintel.record_asn_history(text, inet[], bigint[], timestamptz[]);
CREATE FUNCTION ipintel.record_asn_history(p_sources text[], p_ips inet[], p_asns bigint[], p_observed_at timestamptz[])
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
    SET asn = o.asn, source = o.source, recorded_at = now()
    FROM unnest(p_sources, p_ips, p_asns, p_observed_at) AS o(source, ip, asn, observed_at)
    WHERE h.ip = o.ip AND upper_inf(h.valid) AND h.asn IS DISTINCT FROM o.asn
      AND o.observed_at <= lower(h.valid);

    -- An IP without an open range gets one. The open-range index decides (ON CONFLICT), not an
    -- anti-join: during a first enrichment the table grows faster than its statistics, and a
    -- planner that believes it empty loops over it once per inserted row.
    INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
    SELECT o.ip, o.asn, tstzrange(o.observed_at, NULL, '[)'), o.source
    FROM unnest(p_sources, p_ips, p_asns, p_observed_at) AS o(source, ip, asn, observed_at)
    ON CONFLICT (ip) WHERE upper_inf(valid) DO NOTHING;

    RETURN coalesce(v_asns, '{}');
END;
$$;
COMMENT ON FUNCTION ipintel.record_asn_history(text[], inet[], bigint[], timestamptz[]) IS
    'Records real ASN observations (parallel arrays: observing source, IP, ASN, time) in ip_asn_history, closing and opening ranges where the ASN changed; call before setting current_asn. Returns the ASNs whose counts may change.';

CREATE FUNCTION ipintel.resolved_facts(p_ip inet)
    RETURNS TABLE (asn bigint, asn_source text, asn_observed_at timestamptz, country text, country_source text,
                   is_scanner boolean, is_scanner_source text, is_riot boolean, ip_type text, ip_type_source text)
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    SELECT x.asn, x.asn_source, x.asn_observed_at, x.country, x.country_source, x.is_scanner, x.is_scanner_source,
           x.is_riot,
           coalesce(x.ip_type, CASE WHEN x.asn IS NOT NULL THEN 'routed' END),
           CASE WHEN x.ip_type IS NOT NULL THEN x.ip_type_source WHEN x.asn IS NOT NULL THEN x.asn_source END
    FROM (
        SELECT (array_agg(e.asn ORDER BY p.asn_rank) FILTER (WHERE p.asn_rank IS NOT NULL AND e.asn_observed))[1] AS asn,
               (array_agg(e.source ORDER BY p.asn_rank) FILTER (WHERE p.asn_rank IS NOT NULL AND e.asn_observed))[1]
                   AS asn_source,
               (array_agg(e.fetched_at ORDER BY p.asn_rank) FILTER (WHERE p.asn_rank IS NOT NULL AND e.asn_observed))[1]
                   AS asn_observed_at,
               (array_agg(e.country ORDER BY p.country_rank)
                    FILTER (WHERE p.country_rank IS NOT NULL AND e.country IS NOT NULL))[1] AS country,
               (array_agg(e.source ORDER BY p.country_rank)
                    FILTER (WHERE p.country_rank IS NOT NULL AND e.country IS NOT NULL))[1] AS country_source,
               (array_agg(e.is_scanner ORDER BY p.is_scanner_rank)
                    FILTER (WHERE p.is_scanner_rank IS NOT NULL AND e.is_scanner IS NOT NULL))[1] AS is_scanner,
               (array_agg(e.source ORDER BY p.is_scanner_rank)
                    FILTER (WHERE p.is_scanner_rank IS NOT NULL AND e.is_scanner IS NOT NULL))[1] AS is_scanner_source,
               (array_agg(e.is_riot ORDER BY p.is_riot_rank)
                    FILTER (WHERE p.is_riot_rank IS NOT NULL AND e.is_riot IS NOT NULL))[1] AS is_riot,
               (array_agg(e.ip_type ORDER BY p.ip_type_rank)
                    FILTER (WHERE p.ip_type_rank IS NOT NULL AND e.ip_type IS NOT NULL))[1] AS ip_type,
               (array_agg(e.source ORDER BY p.ip_type_rank)
                    FILTER (WHERE p.ip_type_rank IS NOT NULL AND e.ip_type IS NOT NULL))[1] AS ip_type_source
        FROM ipintel.enrichment_state e
        JOIN ipintel.enrichment_policy p ON p.source = e.source
        WHERE e.ip = p_ip) x;
END;
COMMENT ON FUNCTION ipintel.resolved_facts(inet) IS
    'The facts of one IP resolved across sources: for each fact the value of the first-ranked source (enrichment_policy *_rank) whose last answer gives it, with that source (and, for the ASN, when it was observed). ip_type falls back to routed when an ASN is known. One row, NULLs when no source answered.';

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

CREATE FUNCTION ipintel.apply_answers(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_asns bigint[];
    v_changed bigint;
BEGIN
    -- A new ASN observation becomes current: its history first (see record_asn_history), as of
    -- this answer (when a better-ranked source stops observing, the fallback becomes current
    -- now, not when it was observed). No observation at all ("not in the file") keeps the last.
    SELECT ipintel.record_asn_history(array_agg(f.asn_source), array_agg(r.ip), array_agg(f.asn),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.enrichment_results r
    JOIN ipintel.ip_inventory i ON i.ip = r.ip
    CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
    WHERE r.batch_id = p_batch_id AND f.asn_source IS NOT NULL
      AND (i.current_asn, i.current_asn_source) IS DISTINCT FROM (f.asn, f.asn_source);

    UPDATE ipintel.ip_inventory i
    SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
        geo_country = n.geo_country, geo_country_source = n.geo_country_source,
        is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
        ip_type = n.ip_type, ip_type_source = n.ip_type_source, updated_at = now()
    FROM (
        SELECT r.ip,
               CASE WHEN cur.enrichment -> p_source IS DISTINCT FROM r.result
                    THEN cur.enrichment || jsonb_build_object(p_source, r.result) ELSE cur.enrichment END AS enrichment,
               CASE WHEN f.asn_source IS NOT NULL THEN f.asn ELSE cur.current_asn END AS current_asn,
               coalesce(f.asn_source, cur.current_asn_source) AS current_asn_source,
               coalesce(f.country, 'XX') AS geo_country, f.country_source AS geo_country_source,
               f.is_scanner, f.is_scanner_source, f.is_riot,
               CASE WHEN cur.is_bogon THEN 'bogon' ELSE coalesce(f.ip_type, 'unknown') END AS ip_type,
               CASE WHEN NOT cur.is_bogon THEN f.ip_type_source END AS ip_type_source
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory cur ON cur.ip = r.ip
        CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
        WHERE r.batch_id = p_batch_id) n
    WHERE i.ip = n.ip
      AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
           i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source)
          IS DISTINCT FROM
          (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
           n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source);
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.apply_answers(text, bigint) IS
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot and ip_type with their *_source from enrichment_state by the registry''s ranks (resolved_facts), and refreshes the ASN counts. Writes only rows that change; returns how many.';

CREATE OR REPLACE FUNCTION ipintel.merge_batch(p_run_id bigint, p_batch_id bigint)
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

    SELECT count(*), array_agg(r.ip) INTO v_fetched, v_ips
    FROM ipintel_staging.enrichment_results r WHERE r.batch_id = p_batch_id;
    IF v_fetched > 0 THEN
        EXECUTE format('SELECT array_agg(DISTINCT f.asn) FROM ipintel_staging.enrichment_results r '
                       'CROSS JOIN LATERAL %s(r.result) f WHERE r.batch_id = $1 AND f.asn IS NOT NULL',
                       v_facts_function)
        INTO v_asns USING p_batch_id;
        PERFORM ipintel.lock_for_merge(v_ips, coalesce(v_asns, '{}'));
        v_merged := ipintel.record_enrichment_state(v_source, p_batch_id);
        IF v_merge_function IS NOT NULL THEN
            EXECUTE format('SELECT %s($1, $2)', v_merge_function) USING p_run_id, p_batch_id;
        END IF;
        PERFORM ipintel.apply_answers(v_source, p_batch_id);
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
    'Merges one staged batch of a run, whatever its source: locks (lock_for_merge), records the answers and their facts in enrichment_state (record_enrichment_state), calls the source''s own merge step (enrichment_policy.merge_function, if any), writes the documents and resolved facts into ip_inventory (apply_answers), resolves the failures of the IPs answered, records the staged failures, empties the batch and adds to the run''s fetched / merged / failed. Returns those three counts.';

-- Each source's own functions.
DROP FUNCTION ipintel.merge_maxmind(bigint, bigint);
DROP FUNCTION ipintel.merge_cymru(bigint, bigint);
DROP FUNCTION ipintel.merge_greynoise(bigint, bigint);
CREATE FUNCTION ipintel.maxmind_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text)
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    -- An ASN is observed only when an ASN database was read and knows the IP: the City file
    -- alone, or "not in the ASN file", says nothing about routing.
    SELECT (p_result ->> 'asn')::bigint,
           jsonb_typeof(p_result -> 'asn_db') = 'object' AND jsonb_typeof(p_result -> 'asn') = 'number',
           CASE WHEN p_result ->> 'country' ~ '^[A-Z]{2}$' THEN p_result ->> 'country' END,
           NULL::boolean,
           NULL::boolean,
           CASE WHEN (p_result ->> 'is_anonymous_proxy')::boolean THEN 'anonymizer' END;
END;
COMMENT ON FUNCTION ipintel.maxmind_facts(jsonb) IS
    'Facts of a MaxMind answer: the ASN (observed only when an ASN database was read and knows the IP), the geolocation country, anonymizer for an anonymous proxy.';

CREATE FUNCTION ipintel.merge_maxmind(p_run_id bigint, p_batch_id bigint)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    -- The AS names of the ASN file, under this source's key in asn_inventory.sources; as_name is
    -- the first-ranked source's (ranked_as_name). Rows that would not change are skipped here in
    -- the SELECT (ON CONFLICT ... WHERE would still lock every conflicting row).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, sources)
    SELECT n.asn, n.facts ->> 'as_name', jsonb_build_object('maxmind', n.facts)
    FROM (
        SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
               (r.result ->> 'asn')::bigint AS asn,
               jsonb_build_object('as_name', r.result ->> 'as_org') AS facts
        FROM ipintel_staging.enrichment_results r
        WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL
        ORDER BY (r.result ->> 'asn')::bigint, r.fetched_at DESC
    ) n
    LEFT JOIN ipintel.asn_inventory cur ON cur.asn = n.asn
    WHERE cur.asn IS NULL OR cur.sources -> 'maxmind' IS DISTINCT FROM n.facts
    ORDER BY n.asn
    ON CONFLICT (asn) DO UPDATE SET
        as_name = coalesce(ipintel.ranked_as_name(a.sources || excluded.sources), a.as_name),
        sources = a.sources || excluded.sources,
        updated_at = now();
END;
$$;
COMMENT ON FUNCTION ipintel.merge_maxmind(bigint, bigint) IS
    'MaxMind''s own merge step (called by merge_batch): the AS names of the ASN database into asn_inventory.sources -> maxmind (as_name by rank). Unchanged rows are not written.';

CREATE FUNCTION ipintel.cymru_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text)
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    -- An answer is an observation unless Cymru had no match at all (found: false): an origin
    -- ASN, or NA (allocated but not announced), which is "unrouted".
    SELECT (p_result ->> 'asn')::bigint,
           coalesce((p_result ->> 'found')::boolean, true),
           CASE WHEN upper(p_result ->> 'registered_country') ~ '^[A-Z]{2}$'
                THEN upper(p_result ->> 'registered_country') END,
           NULL::boolean,
           NULL::boolean,
           CASE WHEN coalesce((p_result ->> 'found')::boolean, true)
                     AND jsonb_typeof(p_result -> 'asn') IS DISTINCT FROM 'number' THEN 'unrouted' END;
END;
COMMENT ON FUNCTION ipintel.cymru_facts(jsonb) IS
    'Facts of a Team Cymru answer: the origin ASN (an observation unless there was no match; NA = allocated but not announced = unrouted) and the registration country.';

CREATE FUNCTION ipintel.merge_cymru(p_run_id bigint, p_batch_id bigint)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    -- One row per origin ASN seen in the batch; rows whose facts did not change are skipped here
    -- in the SELECT (ON CONFLICT ... WHERE would still lock every conflicting row).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, as_country, rir, allocated, sources)
    SELECT n.asn, nullif(n.facts ->> 'as_name', ''), n.as_country, n.rir, n.allocated,
           jsonb_build_object('cymru', n.facts)
    FROM (
        SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
               (r.result ->> 'asn')::bigint AS asn,
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
       OR (cur.as_country, cur.rir, cur.allocated, cur.sources -> 'cymru')
          IS DISTINCT FROM (n.as_country, n.rir, n.allocated, n.facts)
    ORDER BY n.asn
    ON CONFLICT (asn) DO UPDATE SET
        as_name = coalesce(ipintel.ranked_as_name(a.sources || excluded.sources), a.as_name),
        as_country = excluded.as_country,
        rir = excluded.rir,
        allocated = excluded.allocated,
        sources = a.sources || excluded.sources,
        updated_at = now();
END;
$$;
COMMENT ON FUNCTION ipintel.merge_cymru(bigint, bigint) IS
    'Team Cymru''s own merge step (called by merge_batch): the AS facts of the batch (name, registration country, RIR, allocation date) into asn_inventory (as_name by rank). Unchanged rows are not written.';

CREATE FUNCTION ipintel.greynoise_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text)
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    SELECT NULL::bigint,
           false,
           NULL::text,
           (p_result ->> 'noise')::boolean,
           (p_result ->> 'riot')::boolean,
           CASE WHEN (p_result ->> 'riot')::boolean THEN 'riot'
                WHEN (p_result ->> 'noise')::boolean THEN 'scanner' END;
END;
COMMENT ON FUNCTION ipintel.greynoise_facts(jsonb) IS
    'Facts of a GreyNoise answer: noise (is_scanner), riot (a known benign business service) and the classification riot or scanner. An answer without them (e.g. IPv6 not supported) says nothing.';

-- Snapshots by rank, linear.
CREATE VIEW ipintel.snapshot_pending_sources AS
SELECT i.ip,
       p.source,
       p.snapshot_window,
       p.asn_rank,
       p.country_rank,
       p.is_scanner_rank,
       p.ip_type_rank
FROM ipintel.ip_inventory i
CROSS JOIN ipintel.enrichment_policy p
LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
-- an open failure that asking again cannot fix: the source declines the IP
LEFT JOIN ipintel.enrichment_failures f
       ON f.source = p.source AND f.ip = i.ip AND f.resolved_at IS NULL AND NOT f.retryable
WHERE p.enabled
  AND NOT i.is_bogon
  -- never answered, or its answer is stale (due again): a new session waits for a fresh one
  AND (e.ip IS NULL OR ipintel.answer_is_stale(p, e.fetched_at))
  AND f.ip IS NULL
  -- the policy's filters (as ips_due reads them); the session threshold is looked at only when set
  AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
  AND NOT (p.min_session_count IS NOT NULL AND ipintel.below_session_threshold(p, i))
  AND i.ip IN (SELECT s.source_ip FROM ipintel.session_summaries s WHERE s.snapshot_complete_at IS NULL);
COMMENT ON VIEW ipintel.snapshot_pending_sources IS
    'IPs with an incomplete snapshot and the enabled sources that have neither answered them (freshly) nor declined them, with each source''s snapshot_window and field ranks.';

CREATE VIEW ipintel.snapshot_waits AS
SELECT s.session_id,
       array_agg(w.source ORDER BY w.source) AS waiting_for,
       max(s.created_at + w.snapshot_window) AS window_closes_at,
       min(w.asn_rank) AS asn_wait_rank,
       min(w.country_rank) AS country_wait_rank,
       min(w.is_scanner_rank) AS is_scanner_wait_rank,
       min(w.ip_type_rank) AS ip_type_wait_rank
FROM ipintel.session_summaries s
JOIN ipintel.snapshot_pending_sources w ON w.ip = s.source_ip
WHERE s.snapshot_complete_at IS NULL
  AND s.created_at + w.snapshot_window > now()
GROUP BY s.session_id;
COMMENT ON VIEW ipintel.snapshot_waits IS
    'Incomplete sessions that still wait for a source: which ones (waiting_for), when the last window closes, and per snapshot field the best rank among the awaited sources (NULL: the field waits for none).';

CREATE VIEW ipintel.snapshot_backlog AS
SELECT s.session_id,
       s.source_ip,
       s.first_event_at,
       s.created_at AS ingested_at,
       s.snapshot_at,
       coalesce(w.waiting_for, '{}'::text[]) AS waiting_for,
       w.window_closes_at
FROM ipintel.session_summaries s
LEFT JOIN ipintel.snapshot_waits w ON w.session_id = s.session_id
WHERE s.snapshot_complete_at IS NULL;
COMMENT ON VIEW ipintel.snapshot_backlog IS
    'Sessions whose snapshot is still incomplete, with the sources still awaited (waiting_for; empty: complete at the next take_snapshots) and when the last of their windows closes.';
COMMENT ON COLUMN ipintel.snapshot_backlog.ingested_at IS 'session_summaries.created_at: each source''s snapshot_window starts here.';
COMMENT ON COLUMN ipintel.snapshot_backlog.waiting_for IS 'Enabled sources that have neither answered nor declined for the IP while their window is open.';
COMMENT ON COLUMN ipintel.snapshot_backlog.window_closes_at IS 'When the last awaited source''s window closes; the snapshot is then completed with what is known.';

CREATE OR REPLACE FUNCTION ipintel.take_snapshots()
    RETURNS bigint
    LANGUAGE plpgsql
    -- One big set-based statement: compiling it (JIT) costs more than it saves.
    SET jit = off
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
BEGIN
    WITH todo AS (
        SELECT s.session_id, r.*,
               CASE WHEN h.ip IS NOT NULL THEN h.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon' WHEN h.ip IS NOT NULL THEN h.source
                    ELSE coalesce(i.current_asn_source, 'none') END AS asn_source,
               i.geo_country AS country,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.geo_country_source, 'none') END AS country_source,
               i.is_scanner,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_scanner_source, 'none') END AS is_scanner_source,
               i.ip_type,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.ip_type_source, 'none') END AS ip_type_source,
               i.enrichment
        FROM ipintel.session_summaries s
        JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
        LEFT JOIN ipintel.snapshot_waits w ON w.session_id = s.session_id
        LEFT JOIN ipintel.enrichment_policy ka ON ka.source = i.current_asn_source
        LEFT JOIN ipintel.enrichment_policy kc ON kc.source = i.geo_country_source
        LEFT JOIN ipintel.enrichment_policy ks ON ks.source = i.is_scanner_source
        LEFT JOIN ipintel.enrichment_policy kt ON kt.source = i.ip_type_source
        LEFT JOIN ipintel.ip_asn_history h ON h.ip = s.source_ip AND h.valid @> s.first_event_at
        CROSS JOIN LATERAL (
            -- ready: no awaited source of the field, or the value's source is ranked before them
            SELECT w.session_id IS NULL AS all_ready,
                   w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false) AS asn_ready,
                   w.country_wait_rank IS NULL OR coalesce(kc.country_rank < w.country_wait_rank, false)
                       AS country_ready,
                   w.is_scanner_wait_rank IS NULL OR coalesce(ks.is_scanner_rank < w.is_scanner_wait_rank, false)
                       AS scanner_ready,
                   -- ip_type also needs the ASN (an IP no source classified is routed once it has one)
                   (w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false))
                   AND (w.ip_type_wait_rank IS NULL OR coalesce(kt.ip_type_rank < w.ip_type_wait_rank, false))
                       AS ip_type_ready) r
        WHERE s.snapshot_complete_at IS NULL
          AND (r.all_ready
               OR (r.asn_ready AND s.snapshot_asn_source IS NULL)
               OR (r.country_ready AND s.snapshot_country_source IS NULL)
               OR (r.scanner_ready AND s.snapshot_is_scanner_source IS NULL)
               OR (r.ip_type_ready AND s.snapshot_ip_type_source IS NULL))
        -- A session an ingest chunk is updating right now is left for the next run: snapshots
        -- never wait for ingest, so the two can never deadlock.
        FOR NO KEY UPDATE OF s SKIP LOCKED
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
            snapshot_ip_type = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN t.ip_type
                                    ELSE s.snapshot_ip_type END,
            snapshot_ip_type_source = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN t.ip_type_source
                                           ELSE s.snapshot_ip_type_source END,
            snapshot_enrichment = t.enrichment,
            snapshot_at = coalesce(s.snapshot_at, now()),
            snapshot_complete_at = CASE WHEN t.all_ready THEN now() END,
            updated_at = now()
        FROM todo t
        WHERE s.session_id = t.session_id
        RETURNING 1)
    SELECT count(*) INTO v_changed FROM filled;
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.take_snapshots() IS
    'Fills the unknown snapshot_* fields of incomplete sessions that no better-ranked source is still awaited for (see ipintel.snapshot_waits), and marks a snapshot complete once no source is awaited. Never changes a known field. Linear in the incomplete sessions and their IPs. Returns the sessions changed.';
