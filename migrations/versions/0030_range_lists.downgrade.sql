-- From migrations/versions/0030_range_lists.downgrade.sql: back to 0029. The range lists leave with
-- everything loaded into them (reload the files after upgrading again); every function and view
-- 0030 replaced is made again as revision 0029 left it (sql/ at 0029).
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-column, ban-drop-constraint
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

COMMENT ON FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date) IS
    'The run-length merge of one dated snapshot (routing history, geolocation builds): the keys (p_key_columns) staged in p_staged under p_batch_id, as the snapshot of series p_series (p_runs.p_series_column) taken on p_day, between its snapshots p_prev and p_next, into the runs of p_runs (valid daterange). Any merge order of the same snapshots gives the same table. Returns the runs opened and closed. Called by load_routing_snapshot and load_geo_build.';
COMMENT ON FUNCTION ipintel.activity_by_class(timestamptz, timestamptz) IS
    'Sessions that started in [p_since, p_until) by infrastructure class (ip_type: bogon, riot, scanner, anonymizer, unrouted, routed, unknown) and scanner verdict (scanner, not a scanner, unknown: no source that says was asked), most sessions first: sessions, ips, logins, commands, downloads.';
COMMENT ON FUNCTION ipintel.report_ip_types(timestamptz, timestamptz, bigint) IS
    'Sessions that started in [p_since, p_until) by kind of source IP, attributed as of each session, at most p_top rows. Columns: ip_type (bogon, riot, scanner, anonymizer, unrouted, routed or unknown, as in ip_inventory.ip_type), greynoise_scanner (true, false, or unknown when GreyNoise was never asked), sessions, ips (distinct source IPs).';

-- Staleness by the source's TTL only, as 0029 decides it.
CREATE FUNCTION ipintel.answer_is_stale(p_policy ipintel.enrichment_policy, p_fetched_at timestamptz)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.kind <> 'offline_database' AND p_fetched_at < now() - p_policy.ttl;
COMMENT ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz) IS
    'True when an answer fetched at p_fetched_at is older than the source''s ttl; never for an offline_database source (due again only for a newer build). NULL when p_fetched_at is NULL (never fetched).';

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

CREATE OR REPLACE VIEW ipintel.snapshot_pending_sources AS
SELECT i.ip,
       p.source,
       p.snapshot_window,
       p.asn_rank,
       p.country_rank,
       p.is_scanner_rank,
       p.ip_type_rank,
       -- added by revision 0028 (a view's new column goes last)
       p.is_known_attacker_rank
FROM ipintel.ip_inventory i
CROSS JOIN ipintel.enrichment_policy p
LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
-- an open failure that asking again cannot fix: the source declines the IP
LEFT JOIN ipintel.enrichment_failures f
       ON f.source = p.source AND f.ip = i.ip AND f.resolved_at IS NULL AND NOT f.retryable
WHERE p.enabled
  -- a source whose last pass was skipped (an offline database without its files, a service
  -- without its key or contact) will not answer until an operator sets it up (never run: awaited)
  AND (SELECT r.status FROM ipintel.enrichment_runs r WHERE r.source = p.source
       ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1) IS DISTINCT FROM 'skipped'
  AND NOT i.is_bogon
  -- never answered, or its answer is stale (due again): a new session waits for a fresh one
  AND (e.ip IS NULL OR ipintel.answer_is_stale(p, e.fetched_at))
  AND f.ip IS NULL
  -- the policy's filters (as ips_due reads them); the session threshold is looked at only when set
  AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
  AND NOT (p.min_session_count IS NOT NULL AND ipintel.below_session_threshold(p, i))
  AND i.ip IN (SELECT s.source_ip FROM ipintel.session_summaries s WHERE s.snapshot_complete_at IS NULL);
COMMENT ON VIEW ipintel.snapshot_pending_sources IS
    'IPs with an incomplete snapshot and the enabled sources that have neither answered them (freshly) nor declined them, with each source''s snapshot_window and field ranks. A source whose last pass was skipped (an offline database without its files, a service without its key or contact) is not waited for.';

DROP FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz, interval);
COMMENT ON COLUMN ipintel.enrichment_policy.ttl IS
    'An answer older than this (enrichment_state.fetched_at) is stale and fetched again. Not for an offline_database source: re-reading the same build cannot say anything new, so its answers are due again only when a newer build is installed.';
REVOKE EXECUTE ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz) TO ipintel_reader, ipintel_loader;

-- The classes 0029 does not know go back to what the sources say (as 0029's merges decide it).
UPDATE ipintel.ip_inventory i
SET ip_type = CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(f.ip_type, 'unknown') END,
    ip_type_source = CASE WHEN NOT i.is_bogon THEN f.ip_type_source END
FROM ipintel.ip_inventory x
CROSS JOIN LATERAL ipintel.resolved_facts(x.ip) f
WHERE x.ip = i.ip AND i.ip_type IN ('tor', 'cloud', 'cdn', 'hosting', 'residential');
-- verify_integrity reads the columns (a BEGIN ATOMIC body depends on them): 0029's first.
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
                                   (i.ip_type_source), (i.is_known_attacker_source)) AS v(source)
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

ALTER TABLE ipintel.ip_inventory DROP CONSTRAINT ip_inventory_ip_class_basis_is_object;
ALTER TABLE ipintel.ip_inventory DROP COLUMN ip_provider, DROP COLUMN ip_class_basis;
-- Snapshots as 0029 takes them (the trigger goes before the column it names).
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
    -- Routing history and the dated geolocation builds are asked only about sessions whose ASN
    -- or country is still unknown, once per IP and day.
    SELECT array_agg(x.ip), array_agg(x.day) INTO v_ips, v_days
    FROM (SELECT DISTINCT s.source_ip AS ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day
          FROM ipintel.session_summaries s
          WHERE s.snapshot_complete_at IS NULL
            AND (s.snapshot_asn_source IS NULL OR s.snapshot_country_source IS NULL)) x;

    WITH todo AS (
        SELECT s.session_id, r.*,
               -- the ASN: routing history at the session's day, else ip_asn_history at its time,
               -- else a dated geolocation build (g), else the current ASN; its source says which
               -- (routing:<dataset>:<snapshot day>, <source>:history, <source>:build:<day>,
               -- <source>:current)
               CASE WHEN rt.asn IS NOT NULL THEN rt.asn WHEN h.ip IS NOT NULL THEN h.asn
                    WHEN g.asn_from_build THEN gb.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || rt.taken_on::text
                    WHEN h.ip IS NOT NULL THEN h.source || ':history'
                    WHEN g.asn_from_build THEN gb.asn_build
                    ELSE coalesce(i.current_asn_source || ':current', 'none') END AS asn_source,
               -- the country: a dated geolocation build (g), else the current one
               CASE WHEN g.country_from_build THEN gb.country ELSE i.geo_country END AS country,
               CASE WHEN i.is_bogon THEN 'bogon' WHEN g.country_from_build THEN gb.country_build
                    ELSE coalesce(i.geo_country_source, 'none') END AS country_source,
               i.is_scanner,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_scanner_source, 'none') END AS is_scanner_source,
               i.ip_type,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.ip_type_source, 'none') END AS ip_type_source,
               -- known attacker and threat feeds: one field, filled together from one source (0028)
               i.is_known_attacker, i.threatfeeds,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_known_attacker_source, 'none') END
                   AS known_attacker_source,
               i.enrichment
        FROM ipintel.session_summaries s
        JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
        LEFT JOIN ipintel.snapshot_waits w ON w.session_id = s.session_id
        LEFT JOIN ipintel.enrichment_policy ka ON ka.source = i.current_asn_source
        LEFT JOIN ipintel.enrichment_policy kc ON kc.source = i.geo_country_source
        LEFT JOIN ipintel.enrichment_policy ks ON ks.source = i.is_scanner_source
        LEFT JOIN ipintel.enrichment_policy kt ON kt.source = i.ip_type_source
        LEFT JOIN ipintel.enrichment_policy kk ON kk.source = i.is_known_attacker_source
        LEFT JOIN ipintel.ip_asn_history h ON h.ip = s.source_ip AND h.valid @> s.first_event_at
        LEFT JOIN ipintel.routing_asns(v_ips, v_days) rt
               ON rt.ip = s.source_ip AND rt.day = (s.first_event_at AT TIME ZONE 'UTC')::date
        LEFT JOIN ipintel.geo_build_facts(v_ips, v_days) gb
               ON gb.ip = s.source_ip AND gb.day = (s.first_event_at AT TIME ZONE 'UTC')::date
        CROSS JOIN LATERAL (
            -- A dated build gives a field only for a session before ipintel's own observation of
            -- the IP's current value (observed_since: the enrichment_state row is read only where
            -- a build has a value), or when no source gives one.
            SELECT CASE WHEN i.is_bogon OR gb.country IS NULL THEN false
                        WHEN i.geo_country_source IS NULL THEN true
                        ELSE gb.day < coalesce(ipintel.observed_since(i.ip, i.geo_country_source), 'infinity') END
                       AS country_from_build,
                   CASE WHEN i.is_bogon OR gb.asn_build IS NULL THEN false
                        WHEN i.current_asn_source IS NULL THEN true
                        ELSE gb.day < coalesce(ipintel.observed_since(i.ip, i.current_asn_source), 'infinity') END
                       AS asn_from_build) g
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
                       AS ip_type_ready,
                   w.is_known_attacker_wait_rank IS NULL
                   OR coalesce(kk.is_known_attacker_rank < w.is_known_attacker_wait_rank, false)
                       AS known_attacker_ready) r
        WHERE s.snapshot_complete_at IS NULL
          AND (r.all_ready
               OR (r.asn_ready AND s.snapshot_asn_source IS NULL)
               OR (r.country_ready AND s.snapshot_country_source IS NULL)
               OR (r.scanner_ready AND s.snapshot_is_scanner_source IS NULL)
               OR (r.ip_type_ready AND s.snapshot_ip_type_source IS NULL)
               OR (r.known_attacker_ready AND s.snapshot_is_known_attacker_source IS NULL))
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
            snapshot_is_known_attacker = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                              THEN t.is_known_attacker ELSE s.snapshot_is_known_attacker END,
            snapshot_threatfeeds = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                        THEN t.threatfeeds ELSE s.snapshot_threatfeeds END,
            snapshot_is_known_attacker_source = CASE WHEN s.snapshot_is_known_attacker_source IS NULL
                                                          AND t.known_attacker_ready
                                                     THEN t.known_attacker_source
                                                     ELSE s.snapshot_is_known_attacker_source END,
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
       OR (OLD.snapshot_is_known_attacker_source IS NOT NULL
           AND (NEW.snapshot_is_known_attacker, NEW.snapshot_threatfeeds, NEW.snapshot_is_known_attacker_source)
               IS DISTINCT FROM
               (OLD.snapshot_is_known_attacker, OLD.snapshot_threatfeeds, OLD.snapshot_is_known_attacker_source))
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

DROP TRIGGER session_summaries_snapshot_is_immutable ON ipintel.session_summaries;
CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at, snapshot_is_known_attacker, snapshot_threatfeeds,
                     snapshot_is_known_attacker_source
    ON ipintel.session_summaries
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

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
        snapshot_is_scanner_source = NULL, snapshot_is_known_attacker = NULL, snapshot_threatfeeds = NULL,
        snapshot_is_known_attacker_source = NULL, snapshot_enrichment = NULL, snapshot_at = NULL,
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

CREATE OR REPLACE FUNCTION ipintel.verify_snapshots()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH geo_build AS (  -- <source>:build:<day> of a loaded geolocation build (revision 0029)
        SELECT e.source || ':build:' || to_char(b.built_on, 'YYYY-MM-DD') AS build
        FROM ipintel.geo_builds b JOIN ipintel.geo_editions e ON e.edition = b.edition
    ), allowed_asn_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source || k.suffix FROM ipintel.enrichment_policy p
        CROSS JOIN (VALUES (':history'), (':current')) AS k(suffix)
        UNION
        SELECT 'routing:' || r.dataset || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.routing_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || r.taken_on::text FROM ipintel.routing_snapshots r
        UNION
        SELECT b.build FROM geo_build b
    ), allowed_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source FROM ipintel.enrichment_policy p
    ), combos AS (
        -- the sessions grouped by what the rules read: a few groups, checked once each
        SELECT s.snapshot_asn_source AS asn_source, s.snapshot_country_source AS country_source,
               s.snapshot_ip_type_source AS ip_type_source, s.snapshot_is_scanner_source AS is_scanner_source,
               s.snapshot_complete_at IS NOT NULL AS complete, s.snapshot_at IS NOT NULL AS taken,
               -- revision 0022 made the ASN's source say how it was found (routing:, :history,
               -- :current); a bare source name is right only for snapshots taken before the first such
               s.snapshot_at < coalesce((SELECT min(x.snapshot_at) FROM ipintel.session_summaries x
                                         WHERE x.snapshot_asn_source LIKE '%:%'), 'infinity') AS before_0022_form,
               count(*) AS sessions, min(s.session_id) AS example
        FROM ipintel.session_summaries s
        WHERE s.snapshot_at IS NOT NULL OR s.snapshot_asn_source IS NOT NULL OR s.snapshot_country_source IS NOT NULL
           OR s.snapshot_ip_type_source IS NOT NULL OR s.snapshot_is_scanner_source IS NOT NULL
           OR s.snapshot_complete_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ), checked AS (
        SELECT r.n, r.rule, c.sessions, c.example
        FROM combos c
        CROSS JOIN LATERAL (VALUES
            (1, 'a complete snapshot names the source of every field',
             c.complete AND (c.asn_source IS NULL OR c.country_source IS NULL OR c.ip_type_source IS NULL
                             OR c.is_scanner_source IS NULL)),
            (2, 'a snapshot with a known field has snapshot_at',
             NOT c.taken),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded build, <source>:current, bogon or none (a bare source: before revision 0022)',
             c.asn_source IS NOT NULL
             AND c.asn_source NOT IN (SELECT a.source FROM allowed_asn_source a)
             AND NOT (c.before_0022_form AND c.asn_source IN (SELECT p.source FROM ipintel.enrichment_policy p))),
            (4, 'snapshot_country_source is a registered source, <source>:build:<day> of a loaded build, bogon or none',
             c.country_source IS NOT NULL AND c.country_source NOT IN (SELECT a.source FROM allowed_source a)
             AND c.country_source NOT IN (SELECT b.build FROM geo_build b)),
            (5, 'snapshot_ip_type_source is a registered source, bogon or none',
             c.ip_type_source IS NOT NULL AND c.ip_type_source NOT IN (SELECT a.source FROM allowed_source a)),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none',
             c.is_scanner_source IS NOT NULL AND c.is_scanner_source NOT IN (SELECT a.source FROM allowed_source a))
        ) AS r(n, rule, violated)
        WHERE r.violated
    ), rules AS (
        SELECT r.n, r.rule FROM (VALUES
            (1, 'a complete snapshot names the source of every field'),
            (2, 'a snapshot with a known field has snapshot_at'),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded build, <source>:current, bogon or none (a bare source: before revision 0022)'),
            (4, 'snapshot_country_source is a registered source, <source>:build:<day> of a loaded build, bogon or none'),
            (5, 'snapshot_ip_type_source is a registered source, bogon or none'),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none')) AS r(n, rule)
    )
    SELECT x.rule, x.violations, x.examples
    FROM (
        SELECT r.n, r.rule, coalesce(sum(k.sessions), 0)::bigint AS violations,
               coalesce((array_agg(k.example ORDER BY k.example) FILTER (WHERE k.example IS NOT NULL))[1:3], '{}')
                   AS examples
        FROM rules r LEFT JOIN checked k ON k.n = r.n
        GROUP BY r.n, r.rule
        UNION ALL
        -- the guard: snapshot_redos is the only record of a rewrite only while the trigger refuses the others
        SELECT 7, 'the trigger that refuses unaudited rewrites (session_summaries_snapshot_is_immutable) is enabled',
               CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                 WHERE t.tgrelid = 'ipintel.session_summaries'::regclass
                                   AND t.tgname = 'session_summaries_snapshot_is_immutable' AND t.tgenabled <> 'D')
                    THEN 0 ELSE 1 END,
               '{}'::text[]
        UNION ALL
        -- an unfinished redo row would let anyone who names it rewrite snapshots unaudited
        SELECT 8, 'every redo in snapshot_redos is finished (an open one would allow rewrites)',
               count(*), coalesce((array_agg('redo ' || d.redo_id ORDER BY d.redo_id))[1:3], '{}')
        FROM ipintel.snapshot_redos d WHERE d.finished_at IS NULL
    ) x
    ORDER BY x.n;
END;
COMMENT ON FUNCTION ipintel.verify_snapshots() IS
    'The rules snapshots obey, each with its violations (sessions, or 1 for a rule about the schema) and up to three example session ids: complete snapshots name every field''s source, snapshot_at is set, every *_source is well-formed (the ASN''s: routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded geolocation build, <source>:current, bogon, none, or a bare registered source for snapshots taken before revision 0022; the country''s: a registered source, <source>:build:<day>, bogon or none), the rewrite guard is enabled and no redo is left open (snapshot_redos is the only record of a rewrite). violations = 0 everywhere: the snapshots are sound.';

ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;
ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;
ALTER TABLE ipintel.session_summaries DROP COLUMN snapshot_ip_provider;
COMMENT ON COLUMN ipintel.ip_inventory.ip_type IS
    'First classification: bogon; else the classification of the first-ranked source that gives one (ip_type_rank: riot, scanner, anonymizer, unrouted = allocated but not announced); else routed when an ASN is known; else unknown.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_type_source IS 'The source ip_type came from (for routed: the ASN''s source); NULL for bogon and unknown.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type IS 'Snapshot: ip_inventory.ip_type when the field was filled (only once no source is still awaited). Known once snapshot_ip_type_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type_source IS
    'Which source decided snapshot_ip_type: greynoise (riot, scanner), maxmind (anonymizer, routed), cymru (unrouted, routed), bogon, none (unknown). NULL: not known yet (filled only once no source is awaited).';

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
               CASE WHEN NOT cur.is_bogon THEN f.ip_type_source END AS ip_type_source,
               f.is_known_attacker, f.is_known_attacker_source, f.threatfeeds
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory cur ON cur.ip = r.ip
        CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
        WHERE r.batch_id = p_batch_id
    ), written AS (
        UPDATE ipintel.ip_inventory i
        SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
            geo_country = n.geo_country, geo_country_source = n.geo_country_source,
            is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
            ip_type = n.ip_type, ip_type_source = n.ip_type_source, is_known_attacker = n.is_known_attacker,
            is_known_attacker_source = n.is_known_attacker_source, threatfeeds = n.threatfeeds, updated_at = now()
        FROM n
        WHERE i.ip = n.ip
          AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
               i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source, i.is_known_attacker,
               i.is_known_attacker_source, i.threatfeeds)
              IS DISTINCT FROM
              (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
               n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source, n.is_known_attacker,
               n.is_known_attacker_source, n.threatfeeds)
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
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot, ip_type and is_known_attacker (with threatfeeds) with their *_source from enrichment_state by the registry''s ranks (resolved_facts), and refreshes the ASN counts. Writes only rows that change; returns how many.';
COMMENT ON FUNCTION ipintel.resolved_facts(inet) IS
    'The facts of one IP resolved across sources: for each fact the value of the first-ranked source (enrichment_policy *_rank) whose last answer gives it, with that source (and, for the ASN, when it was observed). ip_type falls back to routed when an ASN is known; threatfeeds are those of the source is_known_attacker came from. One row, NULLs when no source answered.';

DROP FUNCTION ipintel.classify_inventory(inet, bigint);
DROP FUNCTION ipintel.ip_classes(inet[], date[], bigint[], text[]);
DROP FUNCTION ipintel.as_name_looks_residential(text);
DROP FUNCTION ipintel.range_snapshot_on(text, date);
DROP FUNCTION ipintel.load_range_snapshot(text, date, text, bigint);
DROP TABLE ipintel_staging.listed_asns;
DROP TABLE ipintel_staging.listed_ranges;
DROP TABLE ipintel.listed_asns;
DROP TABLE ipintel.listed_ranges;
DROP TABLE ipintel.range_snapshots;
DROP TABLE ipintel.range_lists;
DROP TABLE ipintel.ip_types;
