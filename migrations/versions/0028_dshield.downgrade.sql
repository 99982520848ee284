-- From migrations/versions/0028_dshield.downgrade.sql: back to the revision before 0028. DShield
-- leaves the registry with its runs, failures and budget, and the fact is_known_attacker (with
-- threatfeeds) leaves the facts functions, enrichment_state, ip_inventory and the snapshots (what
-- those columns held is lost). DShield's answers cannot leave without a trace (ASN history,
-- resolved columns, AS names): a database that recorded any refuses, in one line.
-- squawk-ignore-file ban-drop-function, ban-drop-column, ban-drop-view
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DO $$
DECLARE
    v_ips bigint;
BEGIN
    SELECT count(DISTINCT x.ip) INTO v_ips
    FROM (SELECT e.ip FROM ipintel.enrichment_state e WHERE e.source = 'dshield'
          UNION ALL
          SELECT h.ip FROM ipintel.ip_asn_history h WHERE h.source = 'dshield') x;
    IF v_ips > 0 THEN
        RAISE EXCEPTION 'cannot downgrade below 0028: DShield answers are recorded for % IPs (enrichment_state, ip_asn_history), which the earlier revision cannot hold; restore a backup taken before 0028 instead', v_ips
            USING ERRCODE = 'dependent_objects_still_exist';
    END IF;
END;
$$;
DELETE FROM ipintel_staging.enrichment_results WHERE source = 'dshield';
DELETE FROM ipintel_staging.enrichment_failures WHERE source = 'dshield';
DELETE FROM ipintel.enrichment_failures WHERE source = 'dshield';
DELETE FROM ipintel.api_budget WHERE source = 'dshield';
DELETE FROM ipintel.enrichment_runs WHERE source = 'dshield';
DELETE FROM ipintel.enrichment_policy WHERE source = 'dshield';

-- verify_integrity reads a column about to go.
CREATE OR REPLACE FUNCTION ipintel.verify_integrity()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH ranges AS (
        SELECT h.ip, h.asn, h.source, h.valid,
               lag(h.valid) OVER (PARTITION BY h.ip ORDER BY lower(h.valid), upper(h.valid)) AS previous
        FROM ipintel.ip_asn_history h
    ), found AS (
        SELECT 1 AS n, r.ip AS example FROM ranges r WHERE r.previous && r.valid
        UNION ALL
        SELECT 2, r.ip FROM ranges r WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory i WHERE i.ip = r.ip)
        UNION ALL
        SELECT 3, r.ip FROM ranges r
        WHERE r.asn IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.asn_inventory a WHERE a.asn = r.asn)
        UNION ALL
        SELECT 4, r.ip FROM ranges r
        WHERE NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = r.source)
        UNION ALL
        SELECT 5, i.ip FROM ipintel.ip_inventory i
        CROSS JOIN LATERAL (VALUES (i.current_asn_source), (i.geo_country_source), (i.is_scanner_source),
                                   (i.ip_type_source)) AS v(source)
        WHERE v.source IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = v.source)
        UNION ALL
        SELECT 6, e.ip FROM ipintel.enrichment_state e
        WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory i WHERE i.ip = e.ip)
           OR NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = e.source)
    )
    SELECT r.rule, count(DISTINCT f.example),
           coalesce((array_agg(DISTINCT host(f.example)) FILTER (WHERE f.example IS NOT NULL))[1:3], '{}')
    FROM (VALUES (1, 'no two ranges of one IP in ip_asn_history overlap'),
                 (2, 'every ip_asn_history IP is in ip_inventory'),
                 (3, 'every ip_asn_history ASN is in asn_inventory'),
                 (4, 'every ip_asn_history source is a registered source'),
                 (5, 'every ip_inventory *_source is a registered source'),
                 (6, 'every enrichment_state row is of an IP in ip_inventory and a registered source')) AS r(n, rule)
    LEFT JOIN found f ON f.n = r.n
    GROUP BY r.n, r.rule
    ORDER BY r.n;
END;
COMMENT ON FUNCTION ipintel.verify_integrity() IS
    'The rules kept without a per-row check on the merge path, checked from scratch: no two ranges of one IP in ip_asn_history overlap (an exclusion constraint covers closed ranges, statement triggers open ones), every history IP, ASN and source exists (ip_inventory, asn_inventory, enrichment_policy), every ip_inventory *_source is registered, and every enrichment_state row is of a known IP and source. violations: the IPs concerned, with up to three examples; 0 everywhere: sound.';

-- The snapshot trigger no longer watches the columns about to go.
CREATE OR REPLACE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at
    ON ipintel.session_summaries
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

-- What reads the rank or the new columns goes first; views lose a column only by being made again.
DROP VIEW ipintel.snapshot_backlog;
DROP VIEW ipintel.snapshot_waits;
DROP VIEW ipintel.snapshot_pending_sources;
DROP FUNCTION ipintel.resolved_facts(inet);
DROP FUNCTION ipintel.dshield_facts(jsonb);
DROP FUNCTION ipintel.ipinfo_facts(jsonb);
DROP FUNCTION ipintel.dbip_facts(jsonb);
DROP FUNCTION ipintel.asn_country_facts(jsonb, text);
DROP FUNCTION ipintel.maxmind_facts(jsonb);
DROP FUNCTION ipintel.cymru_facts(jsonb);
DROP FUNCTION ipintel.greynoise_facts(jsonb);

ALTER TABLE ipintel.session_summaries
    DROP COLUMN snapshot_is_known_attacker,
    DROP COLUMN snapshot_threatfeeds,
    DROP COLUMN snapshot_is_known_attacker_source;
ALTER TABLE ipintel.ip_inventory
    DROP COLUMN is_known_attacker,
    DROP COLUMN is_known_attacker_source,
    DROP COLUMN threatfeeds;
ALTER TABLE ipintel.enrichment_state
    DROP COLUMN is_known_attacker,
    DROP COLUMN threatfeeds;
ALTER TABLE ipintel.enrichment_policy DROP COLUMN is_known_attacker_rank;
COMMENT ON COLUMN ipintel.enrichment_policy.facts_function IS
    'Schema-qualified name of the source''s facts function (p_result jsonb) RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text): what one answer document says, recorded in enrichment_state.';
COMMENT ON COLUMN ipintel.enrichment_policy.source IS 'Source name (lower case), e.g. maxmind, ipinfo, dbip, cymru, greynoise: the key every other table refers to.';
COMMENT ON TABLE ipintel.enrichment_state IS
    'When each source last answered for each IP, and the typed facts of that answer: one row per IP and source that has answered (no row: never fetched). The answer document is ip_inventory.enrichment -> source, rewritten only when it changes; ip_inventory''s current_asn, geo_country, is_scanner, is_riot and ip_type are resolved from these facts by the registry''s ranks. Read by ips_due, enrichment_coverage and the snapshots.';

CREATE FUNCTION ipintel.asn_country_facts(p_asn jsonb, p_country text)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text)
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    SELECT CASE WHEN jsonb_typeof(p_asn) = 'number' THEN p_asn::text::bigint END,
           coalesce(jsonb_typeof(p_asn) = 'number', false),
           CASE WHEN p_country ~ '^[A-Z]{2}$' THEN p_country END,
           NULL::boolean,
           NULL::boolean,
           NULL::text;
END;
COMMENT ON FUNCTION ipintel.asn_country_facts(jsonb, text) IS
    'Facts of an answer that gives at most an ASN (observed when it is a JSON number) and a country (when it is an ISO 3166-1 alpha-2 code): the shared body of the facts functions of offline ASN and geolocation files.';

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

CREATE FUNCTION ipintel.ipinfo_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text)
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    -- The answer keeps IPinfo's field names: country_code is the ISO code (country, the name).
    SELECT * FROM ipintel.asn_country_facts(p_result -> 'asn', p_result ->> 'country_code');
END;
COMMENT ON FUNCTION ipintel.ipinfo_facts(jsonb) IS
    'Facts of an IPinfo Lite answer: the ASN (observed when the file''s record names one) and the geolocation country (country_code).';

CREATE FUNCTION ipintel.dbip_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text)
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    SELECT * FROM ipintel.asn_country_facts(p_result -> 'asn', p_result ->> 'country');
END;
COMMENT ON FUNCTION ipintel.dbip_facts(jsonb) IS
    'Facts of a DB-IP Lite answer: the ASN (observed when the ASN file knows the IP) and the geolocation country.';

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
               CASE WHEN cur.changed_at IS NULL OR i.enrichment -> $1 IS DISTINCT FROM r.result THEN r.fetched_at
                    ELSE least(cur.changed_at, r.fetched_at) END,
               f.asn, coalesce(f.asn_observed, false), f.country, f.is_scanner, f.is_riot, f.ip_type
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory i ON i.ip = r.ip
        -- one index probe per staged row: the table grows through a first enrichment faster
        -- than its statistics, and a planner that believes it small scans and sorts it whole
        LEFT JOIN LATERAL (SELECT c.changed_at FROM ipintel.enrichment_state c
                           WHERE c.ip = r.ip AND c.source = $1 LIMIT 1) cur ON true
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

CREATE OR REPLACE FUNCTION ipintel.apply_answers(p_source text, p_batch_id bigint)
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
BEGIN
    WITH n AS (
        SELECT r.ip, r.fetched_at, cur.current_asn AS old_asn, cur.current_asn_source AS old_asn_source,
               f.asn AS observed_asn, f.asn_source AS observed_asn_source,
               CASE WHEN cur.enrichment -> p_source IS DISTINCT FROM r.result
                    THEN cur.enrichment || jsonb_build_object(p_source, r.result) ELSE cur.enrichment END AS enrichment,
               -- No ASN observation at all ("not in the file") keeps the last one.
               CASE WHEN f.asn_source IS NOT NULL THEN f.asn ELSE cur.current_asn END AS current_asn,
               coalesce(f.asn_source, cur.current_asn_source) AS current_asn_source,
               coalesce(f.country, 'XX') AS geo_country, f.country_source AS geo_country_source,
               f.is_scanner, f.is_scanner_source, f.is_riot,
               CASE WHEN cur.is_bogon THEN 'bogon' ELSE coalesce(f.ip_type, 'unknown') END AS ip_type,
               CASE WHEN NOT cur.is_bogon THEN f.ip_type_source END AS ip_type_source
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory cur ON cur.ip = r.ip
        CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
        WHERE r.batch_id = p_batch_id
    ), written AS (
        UPDATE ipintel.ip_inventory i
        SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
            geo_country = n.geo_country, geo_country_source = n.geo_country_source,
            is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
            ip_type = n.ip_type, ip_type_source = n.ip_type_source, updated_at = now()
        FROM n
        WHERE i.ip = n.ip
          AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
               i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source)
              IS DISTINCT FROM
              (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
               n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source)
        RETURNING n.ip, n.fetched_at, n.old_asn, n.old_asn_source, n.observed_asn, n.observed_asn_source,
                  n.current_asn
    ), moved AS (
        -- A new ASN observation (a value, or a better-ranked source) becomes current and goes to
        -- the history as of this answer: when a better-ranked source stops observing, the
        -- fallback becomes current now, not when it was observed.
        SELECT w.* FROM written w
        WHERE w.observed_asn_source IS NOT NULL
          AND (w.old_asn, w.old_asn_source) IS DISTINCT FROM (w.observed_asn, w.observed_asn_source)
    )
    SELECT (SELECT count(*) FROM written),
           (SELECT array_agg(m.observed_asn_source) FROM moved m), (SELECT array_agg(m.ip) FROM moved m),
           (SELECT array_agg(m.observed_asn) FROM moved m), (SELECT array_agg(m.fetched_at) FROM moved m),
           -- the ASNs whose counts change: old and new current_asn where it changed
           ARRAY(SELECT DISTINCT a.asn FROM written w CROSS JOIN LATERAL (VALUES (w.old_asn), (w.current_asn)) AS a(asn)
                 WHERE w.old_asn IS DISTINCT FROM w.current_asn AND a.asn IS NOT NULL)
    INTO v_changed, v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at, v_asns;

    IF v_moved_ips IS NOT NULL THEN
        PERFORM ipintel.record_asn_history(v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at);
    END IF;
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.apply_answers(text, bigint) IS
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot and ip_type with their *_source from enrichment_state by the registry''s ranks (resolved_facts), and refreshes the ASN counts. Writes only rows that change; returns how many.';

GRANT EXECUTE ON FUNCTION ipintel.resolved_facts(inet) TO ipintel_reader, ipintel_loader;

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
  -- an offline database is not installed when its last pass was skipped (never run: awaited)
  AND (p.kind <> 'offline_database'
       OR (SELECT r.status FROM ipintel.enrichment_runs r WHERE r.source = p.source
           ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1) IS DISTINCT FROM 'skipped')
  AND NOT i.is_bogon
  -- never answered, or its answer is stale (due again): a new session waits for a fresh one
  AND (e.ip IS NULL OR ipintel.answer_is_stale(p, e.fetched_at))
  AND f.ip IS NULL
  -- the policy's filters (as ips_due reads them); the session threshold is looked at only when set
  AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
  AND NOT (p.min_session_count IS NOT NULL AND ipintel.below_session_threshold(p, i))
  AND i.ip IN (SELECT s.source_ip FROM ipintel.session_summaries s WHERE s.snapshot_complete_at IS NULL);
COMMENT ON VIEW ipintel.snapshot_pending_sources IS
    'IPs with an incomplete snapshot and the enabled sources that have neither answered them (freshly) nor declined them, with each source''s snapshot_window and field ranks. An offline database whose last pass was skipped (none of its files installed) is not waited for.';

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
COMMENT ON COLUMN ipintel.snapshot_backlog.waiting_for IS
    'Enabled (and, for offline databases, installed) sources that have neither answered nor declined for the IP while their window is open.';
COMMENT ON COLUMN ipintel.snapshot_backlog.window_closes_at IS 'When the last awaited source''s window closes; the snapshot is then completed with what is known.';

GRANT SELECT ON ipintel.snapshot_pending_sources, ipintel.snapshot_waits, ipintel.snapshot_backlog
    TO ipintel_reader, ipintel_loader;

CREATE OR REPLACE FUNCTION ipintel.take_snapshots()
    RETURNS bigint
    LANGUAGE plpgsql
    -- One big set-based statement: compiling it (JIT) costs more than it saves.
    SET jit = off
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
    v_ips inet[];
    v_days date[];
BEGIN
    -- Routing history is asked only about sessions whose ASN is still unknown, once per IP and day.
    SELECT array_agg(x.ip), array_agg(x.day) INTO v_ips, v_days
    FROM (SELECT DISTINCT s.source_ip AS ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day
          FROM ipintel.session_summaries s
          WHERE s.snapshot_complete_at IS NULL AND s.snapshot_asn_source IS NULL) x;

    WITH todo AS (
        SELECT s.session_id, r.*,
               -- the ASN: routing history at the session's day, else ip_asn_history at its time,
               -- else the current ASN; its source says which (routing:<dataset>:<snapshot day>,
               -- <source>:history, <source>:current)
               CASE WHEN rt.asn IS NOT NULL THEN rt.asn WHEN h.ip IS NOT NULL THEN h.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || rt.taken_on::text
                    WHEN h.ip IS NOT NULL THEN h.source || ':history'
                    ELSE coalesce(i.current_asn_source || ':current', 'none') END AS asn_source,
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
        LEFT JOIN ipintel.routing_asns(v_ips, v_days) rt
               ON rt.ip = s.source_ip AND rt.day = (s.first_event_at AT TIME ZONE 'UTC')::date
        CROSS JOIN LATERAL (
            -- ready: no awaited source of the field, or the value's source is ranked before them
            SELECT w.session_id IS NULL AS all_ready,
                   -- routing history at the session's day needs no source
                   rt.asn IS NOT NULL OR w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false)
                       AS asn_ready,
                   w.country_wait_rank IS NULL OR coalesce(kc.country_rank < w.country_wait_rank, false)
                       AS country_ready,
                   w.is_scanner_wait_rank IS NULL OR coalesce(ks.is_scanner_rank < w.is_scanner_wait_rank, false)
                       AS scanner_ready,
                   -- ip_type also needs the ASN (an IP no source classified is routed once it has one)
                   (rt.asn IS NOT NULL OR w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false))
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

CREATE OR REPLACE FUNCTION ipintel.protect_snapshot()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    -- Inside redo_snapshots (which records itself in snapshot_redos first): allowed.
    IF EXISTS (SELECT 1 FROM ipintel.snapshot_redos r
               WHERE r.redo_id::text = current_setting('ipintel.snapshot_redo', true) AND r.finished_at IS NULL) THEN
        RETURN NEW;
    END IF;
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
    'Trigger function: refuses to change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot, except inside redo_snapshots (audited in snapshot_redos). Unknown fields may be filled.';

CREATE OR REPLACE FUNCTION ipintel.redo_snapshots(p_since timestamptz, p_until timestamptz, p_reason text)
    RETURNS TABLE (redo_id bigint, sessions_reset bigint, sessions_taken bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_redo bigint;
    v_reset bigint;
    v_taken bigint;
BEGIN
    INSERT INTO ipintel.snapshot_redos (since, until, reason) VALUES (p_since, p_until, p_reason)
    RETURNING snapshot_redos.redo_id INTO v_redo;
    PERFORM set_config('ipintel.snapshot_redo', v_redo::text, true);
    UPDATE ipintel.session_summaries s
    SET snapshot_asn = NULL, snapshot_asn_source = NULL, snapshot_country = NULL, snapshot_country_source = NULL,
        snapshot_ip_type = NULL, snapshot_ip_type_source = NULL, snapshot_is_scanner = NULL,
        snapshot_is_scanner_source = NULL, snapshot_enrichment = NULL, snapshot_at = NULL,
        snapshot_complete_at = NULL, updated_at = now()
    WHERE s.first_event_at >= p_since AND s.first_event_at < p_until AND s.snapshot_at IS NOT NULL;
    GET DIAGNOSTICS v_reset = ROW_COUNT;
    PERFORM set_config('ipintel.snapshot_redo', '', true);
    v_taken := ipintel.take_snapshots();
    UPDATE ipintel.snapshot_redos r
    SET finished_at = clock_timestamp(), sessions_reset = v_reset, sessions_taken = v_taken
    WHERE r.redo_id = v_redo;
    RETURN QUERY SELECT v_redo, v_reset, v_taken;
END;
$$;
COMMENT ON FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) IS
    'Takes again the snapshots of the sessions that started in [p_since, p_until), recorded in snapshot_redos with p_reason and its counts: the one audited way a known snapshot is rewritten (e.g. after loading routing history for sessions snapshotted from the current ASN). Returns the redo and its counts.';
-- CREATE OR REPLACE resets what 099_roles.sql set: the loader's entry points run as the owner.
ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;
ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;

-- ip_timeline as it was.
CREATE OR REPLACE FUNCTION ipintel.ip_timeline(p_ip inet)
    RETURNS TABLE (at timestamptz, until timestamptz, kind text, source text, asn bigint, country text, detail jsonb)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH target AS (
        SELECT ipintel.normalize_ip(p_ip) AS ip
    ), sessions AS (
        SELECT s.* FROM ipintel.session_summaries s WHERE s.source_ip = (SELECT t.ip FROM target t)
    ), routing AS (
        -- the routing history's origin AS at each session's day (one GiST probe per day)
        SELECT r.day, r.asn, r.dataset, r.taken_on, r.prefix
        FROM ipintel.routing_asns(ARRAY(SELECT s.source_ip FROM sessions s),
                                  ARRAY(SELECT (s.first_event_at AT TIME ZONE 'UTC')::date FROM sessions s)) r
    )
    SELECT s.first_event_at, s.last_event_at, 'session', s.snapshot_asn_source, s.snapshot_asn, s.snapshot_country,
           jsonb_build_object('session_id', s.session_id, 'sensor', s.sensor, 'protocol', s.protocol,
                              'dst_port', s.dst_port, 'login_attempts', s.login_attempts,
                              'login_successes', s.login_successes, 'commands', s.command_count,
                              'downloads', s.download_count, 'client_version', s.client_version, 'hassh', s.hassh,
                              'ip_type', s.snapshot_ip_type, 'is_scanner', s.snapshot_is_scanner,
                              'snapshot_complete_at', s.snapshot_complete_at,
                              'routing_asn', r.asn, 'routing_prefix', r.prefix,
                              'routing_snapshot', r.dataset || ':' || r.taken_on::text)
    FROM sessions s
    LEFT JOIN routing r ON r.day = (s.first_event_at AT TIME ZONE 'UTC')::date
    UNION ALL
    -- the ranges of ip_asn_history: each ASN the sources observed, from when until the next change
    SELECT lower(h.valid), upper(h.valid), 'asn', h.source, h.asn, NULL,
           jsonb_build_object('as_name', n.as_name, 'recorded_at', h.recorded_at)
    FROM ipintel.ip_asn_history h
    LEFT JOIN ipintel.asn_inventory n ON n.asn = h.asn
    WHERE h.ip = (SELECT t.ip FROM target t)
    UNION ALL
    -- what each source says: since when (changed_at), last confirmed (fetched_at), its facts and document
    SELECT e.changed_at, NULL, 'answer', e.source, e.asn, e.country,
           jsonb_build_object('fetched_at', e.fetched_at, 'build', e.build, 'asn_observed', e.asn_observed,
                              'is_scanner', e.is_scanner, 'is_riot', e.is_riot, 'ip_type', e.ip_type,
                              'document', i.enrichment -> e.source)
    FROM ipintel.enrichment_state e
    JOIN ipintel.ip_inventory i ON i.ip = e.ip
    WHERE e.ip = (SELECT t.ip FROM target t)
    UNION ALL
    -- what a source could not say
    SELECT f.recorded_at, f.resolved_at, 'failure', f.source, NULL, NULL,
           jsonb_build_object('error', f.error, 'retryable', f.retryable, 'attempts', f.attempts,
                              'retry_after', f.retry_after)
    FROM ipintel.enrichment_failures f
    WHERE f.ip = (SELECT t.ip FROM target t)
    UNION ALL
    -- routing history: every run of a prefix containing the IP and its origin (days, UTC)
    SELECT lower(o.valid)::timestamp AT TIME ZONE 'UTC', upper(o.valid)::timestamp AT TIME ZONE 'UTC', 'routing',
           'routing:' || o.dataset, o.asn, NULL, jsonb_build_object('prefix', o.prefix)
    FROM ipintel.prefix_origins o
    WHERE o.prefix_range OPERATOR(public.>>=) public.iprange((SELECT t.ip FROM target t)::cidr)
    ORDER BY 1, 3, 4;
END;
COMMENT ON FUNCTION ipintel.ip_timeline(inet) IS
    'Everything known about one IP, in time order. kind: session (at/until: its first and last event; source, asn, country: its snapshot; detail: counts, client, snapshot class, and the routing history''s ASN at its day), asn (an ip_asn_history range: the ASN a source observed from at until until, NULL while current), answer (what a source says since at = changed_at, last confirmed detail.fetched_at, its facts and document), failure (a source could not answer: recorded at, resolved until), routing (a prefix_origins run of a prefix containing the IP: its origin AS over those days).';
