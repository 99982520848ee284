-- From migrations/versions/0029_range_lists.downgrade.sql: back to 0025. The range lists leave with
-- everything loaded into them (reload the files after upgrading again); load_routing_snapshot merges
-- its runs by itself again.
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-column, ban-drop-constraint
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.load_routing_snapshot(p_dataset text, p_taken_on date, p_file text, p_batch_id bigint)
    RETURNS TABLE (snapshot_id bigint, loaded boolean, prefixes bigint, origins_opened bigint, origins_closed bigint,
                   rejects bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_snapshot bigint;
    v_prev date;
    v_next date;
    v_prefixes bigint;
    v_opened bigint := 0;
    v_closed bigint := 0;
    v_split bigint := 0;
    v_rejects bigint;
BEGIN
    INSERT INTO ipintel.routing_datasets (dataset, rank)
    SELECT p_dataset, coalesce(max(d.rank), 0) + 1 FROM ipintel.routing_datasets d
    ON CONFLICT (dataset) DO NOTHING;
    -- One load of a dataset at a time (the runs of a dataset are read, then written).
    PERFORM 1 FROM ipintel.routing_datasets d WHERE d.dataset = p_dataset FOR UPDATE;

    INSERT INTO ipintel.routing_snapshots (dataset, taken_on, file)
    VALUES (p_dataset, p_taken_on, p_file)
    ON CONFLICT (dataset, taken_on) DO NOTHING
    RETURNING routing_snapshots.snapshot_id INTO v_snapshot;
    IF v_snapshot IS NULL THEN
        -- Loaded before: nothing changes.
        DELETE FROM ipintel_staging.routing_prefixes r WHERE r.batch_id = p_batch_id;
        DELETE FROM ipintel_staging.routing_rejects r WHERE r.batch_id = p_batch_id;
        RETURN QUERY SELECT s.snapshot_id, false, s.prefixes, 0::bigint, 0::bigint, s.rejects
                     FROM ipintel.routing_snapshots s WHERE s.dataset = p_dataset AND s.taken_on = p_taken_on;
        RETURN;
    END IF;

    SELECT max(s.taken_on) FILTER (WHERE s.taken_on < p_taken_on), min(s.taken_on) FILTER (WHERE s.taken_on > p_taken_on)
    INTO v_prev, v_next
    FROM ipintel.routing_snapshots s WHERE s.dataset = p_dataset;

    SELECT count(*) INTO v_prefixes
    FROM (SELECT DISTINCT r.prefix, r.asn FROM ipintel_staging.routing_prefixes r WHERE r.batch_id = p_batch_id) p;

    -- 1. Pairs absent from this snapshot whose run spans its day: split around it (a run
    --    reaching past the newest snapshot is open; it now ends after v_prev).
    WITH spanning AS (
        SELECT o.ctid AS row_id, o.dataset, o.prefix, o.asn, o.valid
        FROM ipintel.prefix_origins o
        WHERE o.dataset = p_dataset AND o.valid @> p_taken_on AND lower(o.valid) < p_taken_on
          AND NOT EXISTS (SELECT 1 FROM ipintel_staging.routing_prefixes r
                          WHERE r.batch_id = p_batch_id AND r.prefix = o.prefix AND r.asn = o.asn)
    ), cut AS (
        UPDATE ipintel.prefix_origins o SET valid = daterange(lower(s.valid), v_prev + 1)
        FROM spanning s WHERE o.ctid = s.row_id
        RETURNING s.dataset, s.prefix, s.asn, s.valid)
    INSERT INTO ipintel.prefix_origins (dataset, prefix, asn, valid)
    SELECT c.dataset, c.prefix, c.asn, daterange(v_next, upper(c.valid))
    FROM cut c WHERE v_next IS NOT NULL;
    GET DIAGNOSTICS v_split = ROW_COUNT;
    SELECT count(*) INTO v_closed FROM ipintel.prefix_origins o
    WHERE o.dataset = p_dataset AND upper(o.valid) = v_prev + 1 AND v_next IS NULL;

    -- 2. Pairs of this snapshot not inside a run yet ("fresh"; a pair inside one was shown by
    --    the snapshots on both sides): join the run ending at v_prev and the one starting at
    --    v_next, else extend one of them, else open a run. Each statement leaves the pairs it
    --    handled inside a run, so the next one no longer sees them as fresh.
    WITH fresh AS (
        SELECT DISTINCT r.prefix, r.asn FROM ipintel_staging.routing_prefixes r
        WHERE r.batch_id = p_batch_id
          AND NOT EXISTS (SELECT 1 FROM ipintel.prefix_origins o
                          WHERE o.dataset = p_dataset AND o.prefix = r.prefix AND o.asn = r.asn AND o.valid @> p_taken_on)
    ), joined AS (
        DELETE FROM ipintel.prefix_origins a
        USING fresh f, ipintel.prefix_origins b
        WHERE a.dataset = p_dataset AND a.prefix = f.prefix AND a.asn = f.asn AND lower(a.valid) = v_next
          AND b.dataset = p_dataset AND b.prefix = f.prefix AND b.asn = f.asn AND upper(b.valid) = v_prev + 1
        RETURNING b.ctid AS before_row, a.valid)
    UPDATE ipintel.prefix_origins o SET valid = daterange(lower(o.valid), upper(j.valid))
    FROM joined j WHERE o.ctid = j.before_row;

    WITH fresh AS (
        SELECT DISTINCT r.prefix, r.asn FROM ipintel_staging.routing_prefixes r
        WHERE r.batch_id = p_batch_id
          AND NOT EXISTS (SELECT 1 FROM ipintel.prefix_origins o
                          WHERE o.dataset = p_dataset AND o.prefix = r.prefix AND o.asn = r.asn AND o.valid @> p_taken_on)
    )
    UPDATE ipintel.prefix_origins o
    SET valid = daterange(lower(o.valid), CASE WHEN v_next IS NULL THEN NULL ELSE p_taken_on + 1 END)
    FROM fresh f
    WHERE o.dataset = p_dataset AND o.prefix = f.prefix AND o.asn = f.asn AND upper(o.valid) = v_prev + 1;

    WITH fresh AS (
        SELECT DISTINCT r.prefix, r.asn FROM ipintel_staging.routing_prefixes r
        WHERE r.batch_id = p_batch_id
          AND NOT EXISTS (SELECT 1 FROM ipintel.prefix_origins o
                          WHERE o.dataset = p_dataset AND o.prefix = r.prefix AND o.asn = r.asn AND o.valid @> p_taken_on)
    )
    UPDATE ipintel.prefix_origins o SET valid = daterange(p_taken_on, upper(o.valid))
    FROM fresh f
    WHERE o.dataset = p_dataset AND o.prefix = f.prefix AND o.asn = f.asn AND lower(o.valid) = v_next;

    INSERT INTO ipintel.prefix_origins (dataset, prefix, asn, valid)
    SELECT DISTINCT p_dataset, r.prefix, r.asn,
           daterange(p_taken_on, CASE WHEN v_next IS NULL THEN NULL ELSE p_taken_on + 1 END)
    FROM ipintel_staging.routing_prefixes r
    WHERE r.batch_id = p_batch_id
      AND NOT EXISTS (SELECT 1 FROM ipintel.prefix_origins o
                      WHERE o.dataset = p_dataset AND o.prefix = r.prefix AND o.asn = r.asn AND o.valid @> p_taken_on)
    ORDER BY r.prefix, r.asn;
    GET DIAGNOSTICS v_opened = ROW_COUNT;

    INSERT INTO ipintel.routing_rejects (snapshot_id, line_no, reason, excerpt)
    SELECT DISTINCT ON (r.line_no) v_snapshot, r.line_no, r.reason, r.excerpt
    FROM ipintel_staging.routing_rejects r WHERE r.batch_id = p_batch_id
    ORDER BY r.line_no;
    GET DIAGNOSTICS v_rejects = ROW_COUNT;
    UPDATE ipintel.routing_snapshots s SET prefixes = v_prefixes, rejects = v_rejects WHERE s.snapshot_id = v_snapshot;

    DELETE FROM ipintel_staging.routing_prefixes r WHERE r.batch_id = p_batch_id;
    DELETE FROM ipintel_staging.routing_rejects r WHERE r.batch_id = p_batch_id;
    -- The lookups join every session's IP against this table: the planner must know its size
    -- right after a load (a GiST probe per IP, never a scan per IP).
    ANALYZE ipintel.prefix_origins;
    RETURN QUERY SELECT v_snapshot, true, v_prefixes, v_opened, v_closed + v_split, v_rejects;
END;
$$;
COMMENT ON FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) IS
    'Merges the staged (prefix, origin) pairs of one routing-table file (ipintel_staging.routing_prefixes, batch p_batch_id) as the snapshot of p_dataset taken on p_taken_on into prefix_origins (run-length; any load order gives the same table), with its rejected lines. Loaded before: nothing changes (loaded = false).';

ALTER FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) SECURITY DEFINER;

COMMENT ON FUNCTION ipintel.activity_by_class(timestamptz, timestamptz) IS
    'Sessions that started in [p_since, p_until) by infrastructure class (ip_type: bogon, riot, scanner, anonymizer, unrouted, routed, unknown) and scanner verdict (scanner, not a scanner, unknown: no source that says was asked), most sessions first: sessions, ips, logins, commands, downloads.';
COMMENT ON FUNCTION ipintel.report_ip_types(timestamptz, timestamptz, bigint) IS
    'Sessions that started in [p_since, p_until) by kind of source IP, attributed as of each session, at most p_top rows. Columns: ip_type (bogon, riot, scanner, anonymizer, unrouted, routed or unknown, as in ip_inventory.ip_type), greynoise_scanner (true, false, or unknown when GreyNoise was never asked), sessions, ips (distinct source IPs).';

-- Staleness by the source's TTL only, as 0025 decides it.
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
DROP FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz, interval);
COMMENT ON COLUMN ipintel.enrichment_policy.ttl IS
    'An answer older than this (enrichment_state.fetched_at) is stale and fetched again. Not for an offline_database source: re-reading the same build cannot say anything new, so its answers are due again only when a newer build is installed.';
REVOKE EXECUTE ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz) TO ipintel_reader, ipintel_loader;

-- The classes 0025 does not know go back to what the sources say (as 0025's merges decide it).
UPDATE ipintel.ip_inventory i
SET ip_type = CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(f.ip_type, 'unknown') END,
    ip_type_source = CASE WHEN NOT i.is_bogon THEN f.ip_type_source END
FROM ipintel.ip_inventory x
CROSS JOIN LATERAL ipintel.resolved_facts(x.ip) f
WHERE x.ip = i.ip AND i.ip_type IN ('tor', 'cloud', 'cdn', 'hosting', 'residential');
ALTER TABLE ipintel.ip_inventory DROP CONSTRAINT ip_inventory_ip_type_fkey;
ALTER TABLE ipintel.ip_inventory DROP CONSTRAINT ip_inventory_ip_class_basis_is_object;
ALTER TABLE ipintel.ip_inventory DROP COLUMN ip_provider, DROP COLUMN ip_class_basis;
-- Snapshots as 0025 takes them (the trigger goes before the column it names).
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
DROP TRIGGER session_summaries_snapshot_is_immutable ON ipintel.session_summaries;
CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at
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
CREATE OR REPLACE FUNCTION ipintel.verify_snapshots()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH allowed_asn_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source || k.suffix FROM ipintel.enrichment_policy p
        CROSS JOIN (VALUES (':history'), (':current')) AS k(suffix)
        UNION
        SELECT 'routing:' || r.dataset || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.routing_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || r.taken_on::text FROM ipintel.routing_snapshots r
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
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:current, bogon or none (a bare source: before revision 0022)',
             c.asn_source IS NOT NULL
             AND c.asn_source NOT IN (SELECT a.source FROM allowed_asn_source a)
             AND NOT (c.before_0022_form AND c.asn_source IN (SELECT p.source FROM ipintel.enrichment_policy p))),
            (4, 'snapshot_country_source is a registered source, bogon or none',
             c.country_source IS NOT NULL AND c.country_source NOT IN (SELECT a.source FROM allowed_source a)),
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
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:current, bogon or none (a bare source: before revision 0022)'),
            (4, 'snapshot_country_source is a registered source, bogon or none'),
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
    'The rules snapshots obey, each with its violations (sessions, or 1 for a rule about the schema) and up to three example session ids: complete snapshots name every field''s source, snapshot_at is set, every *_source is well-formed (the ASN''s: routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:current, bogon, none, or a bare registered source for snapshots taken before revision 0022), the rewrite guard is enabled and no redo is left open (snapshot_redos is the only record of a rewrite). violations = 0 everywhere: the snapshots are sound.';
ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;
ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;
-- ip_timeline reads the sessions with s.*, expanded to every column when it was created: it goes
-- with the column, and comes back as 0025 made it.
DROP FUNCTION ipintel.ip_timeline(inet);
ALTER TABLE ipintel.session_summaries DROP COLUMN snapshot_ip_provider;
CREATE FUNCTION ipintel.ip_timeline(p_ip inet)
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
REVOKE EXECUTE ON FUNCTION ipintel.ip_timeline(inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.ip_timeline(inet) TO ipintel_reader, ipintel_loader;
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

COMMENT ON FUNCTION ipintel.resolved_facts(inet) IS
    'The facts of one IP resolved across sources: for each fact the value of the first-ranked source (enrichment_policy *_rank) whose last answer gives it, with that source (and, for the ASN, when it was observed). ip_type falls back to routed when an ASN is known. One row, NULLs when no source answered.';

DROP FUNCTION ipintel.classify_inventory(inet, bigint);
DROP FUNCTION ipintel.ip_classes(inet[], date[], bigint[], text[]);
DROP FUNCTION ipintel.as_name_looks_residential(text);
DROP FUNCTION ipintel.range_snapshot_on(text, date);
DROP FUNCTION ipintel.load_range_snapshot(text, date, text, bigint);
DROP FUNCTION ipintel.merge_dated_runs(regclass, text, text, regclass, text[], bigint, date, date, date);
DROP TABLE ipintel_staging.listed_asns;
DROP TABLE ipintel_staging.listed_ranges;
DROP TABLE ipintel.listed_asns;
DROP TABLE ipintel.listed_ranges;
DROP TABLE ipintel.range_snapshots;
DROP TABLE ipintel.range_lists;
DROP TABLE ipintel.ip_types;
