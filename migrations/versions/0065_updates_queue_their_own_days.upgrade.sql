-- From migrations/versions/0065_updates_queue_their_own_days.upgrade.sql (sql/077_attribution.sql,
-- sql/075_snapshots.sql, sql/060_ingest.sql)
-- The updates of session_summaries queue the days of attribution_daily they change themselves,
-- in the statement that updates: take_snapshots, redo_snapshots and merge_cowrie_events. The two
-- statement triggers that did it for every UPDATE (transition tables OLD and NEW) are dropped:
-- they copied each updated row twice (a 2M-session snapshot pass: 3 to 6 s on clones). Any
-- other update (a DBA's fix, a later backfill) queues every day (a NULL day) from a statement
-- trigger without transition table, which roll_up_attribution then recounts.
-- And analyze_sessions_without_statistics: the sessions' partitions that have rows but no
-- statistics are analyzed before take_snapshots (by merge_cowrie_events and ipintel enrich);
-- planned with the defaults, take_snapshots of 20,000 fresh sessions took 61 s instead of 1 s.
-- Locks: ACCESS EXCLUSIVE on session_summaries for the DROP TRIGGER, to the commit (catalog
-- changes only: no row is read or written); the merges' advisory lock first, so no ingest chunk
-- or snapshot pass is half way through when the triggers go.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

SELECT pg_advisory_xact_lock(hashtextextended('ipintel.session_summaries', 0));

-- squawk-ignore adding-not-nullable-field
-- Its one reader, roll_up_attribution, is replaced below by one that reads NULL as every day.
-- squawk-ignore ban-drop-not-null
ALTER TABLE ipintel.attribution_dirty_days ALTER COLUMN day DROP NOT NULL;
COMMENT ON TABLE ipintel.attribution_dirty_days IS
    'The days whose attribution_daily rows are stale: queued by the statement triggers of session_summaries (inserts, deletes) and by take_snapshots, redo_snapshots and merge_cowrie_events (their updates); a NULL day (every day) by any other update of session_summaries. One row per day a statement wrote, duplicates allowed: no key, so concurrent writers never wait on each other here. Emptied by roll_up_attribution.';
COMMENT ON COLUMN ipintel.attribution_dirty_days.day IS 'A UTC day of first_event_at that a statement on session_summaries wrote sessions of; NULL: every day (an update made outside take_snapshots, redo_snapshots and merge_cowrie_events, whose days are not known): roll_up_attribution then recounts every day of the rollup and of the sessions.';

DROP TRIGGER session_summaries_attribution_update_new ON ipintel.session_summaries;
DROP TRIGGER session_summaries_attribution_update_old ON ipintel.session_summaries;

-- Updates queue their own days (revision 0065): take_snapshots, redo_snapshots and
-- merge_cowrie_events set ipintel.attribution_days_queued = on for their updating statement
-- (set_config, put back after it; an error undoes it with the transaction) and insert the days
-- of the rows they update in that statement. Any other
-- update (a DBA's fix, a future backfill) queues every day: the rollup is never left stale
-- silently, and no row is copied for it.
CREATE FUNCTION ipintel.queue_every_attribution_day()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF current_setting('ipintel.attribution_days_queued', true) IS DISTINCT FROM 'on' THEN
        INSERT INTO ipintel.attribution_dirty_days (day) VALUES (NULL);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.queue_every_attribution_day() IS
    'Statement trigger function of session_summaries'' updates: queues every day (a NULL day in attribution_dirty_days) unless the update comes from a function that queues its own days (ipintel.attribution_days_queued = on: take_snapshots, redo_snapshots, merge_cowrie_events).';
CREATE TRIGGER session_summaries_attribution_update
    AFTER UPDATE ON ipintel.session_summaries
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.queue_every_attribution_day();
COMMENT ON TRIGGER session_summaries_attribution_update ON ipintel.session_summaries IS
    'An update made outside take_snapshots, redo_snapshots and merge_cowrie_events (which queue the days they update) queues every day for roll_up_attribution. No transition table: nothing is copied per row.';

CREATE FUNCTION ipintel.analyze_sessions_without_statistics()
    RETURNS text[]
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_tables regclass[];
    v_table regclass;
BEGIN
    v_tables := ARRAY(
        SELECT c.oid::regclass
        FROM pg_class c
        WHERE (c.oid IN ('ipintel.session_summaries'::regclass, 'ipintel.snapshot_queue'::regclass)
               OR c.oid IN (SELECT h.inhrelid FROM pg_inherits h
                            WHERE h.inhparent = 'ipintel.session_summaries'::regclass))
          -- no statistics yet: pg_stats shows those of the tables the caller may read
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_stats s
                          WHERE s.schemaname = 'ipintel' AND s.tablename = c.relname)
          -- and rows to gather them from (the partitioned table: any of its partitions')
          AND EXISTS (SELECT FROM pg_inherits h WHERE c.relkind = 'p' AND h.inhparent = c.oid
                                                    AND pg_relation_size(h.inhrelid) > 0
                      UNION ALL
                      SELECT WHERE c.relkind = 'r' AND pg_relation_size(c.oid) > 0)
          -- not again while nothing changed since an ANALYZE that found no live row
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_stat_all_tables a
                          WHERE a.relid = c.oid AND a.n_mod_since_analyze = 0
                            AND coalesce(a.last_analyze, a.last_autoanalyze) IS NOT NULL)
        ORDER BY c.oid);
    FOREACH v_table IN ARRAY v_tables LOOP
        EXECUTE format('ANALYZE %s', v_table);
    END LOOP;
    RETURN ARRAY(SELECT t::text FROM unnest(v_tables) t);
END;
$$;
COMMENT ON FUNCTION ipintel.analyze_sessions_without_statistics() IS
    'ANALYZEs session_summaries (the partitioned table and each partition) and snapshot_queue where they have rows but no statistics yet (never analyzed since they were filled), so that take_snapshots is planned for the rows there are; returns the tables analyzed (usually none). Called by merge_cowrie_events before take_snapshots of a chunk, and by ipintel enrich before take_snapshots().';
ALTER FUNCTION ipintel.analyze_sessions_without_statistics() SECURITY DEFINER;
GRANT EXECUTE ON FUNCTION ipintel.analyze_sessions_without_statistics() TO ipintel_loader;

CREATE OR REPLACE FUNCTION ipintel.queue_attribution_days()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    INSERT INTO ipintel.attribution_dirty_days (day)
    SELECT DISTINCT (c.first_event_at AT TIME ZONE 'UTC')::date
    FROM changed c
    WHERE c.snapshot_at IS NOT NULL;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ipintel.queue_attribution_days() IS
    'Statement trigger function of session_summaries: queues in attribution_dirty_days the UTC days of the rows a statement inserted or deleted that have a snapshot.';

CREATE OR REPLACE FUNCTION ipintel.roll_up_attribution()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_days date[];
    v_every_day boolean;
BEGIN
    -- One roll-up at a time (two would both insert a day's rows); readers are not blocked.
    LOCK TABLE ipintel.attribution_daily IN EXCLUSIVE MODE;
    -- A day queued by a transaction still running stays queued (its row is not visible yet) and
    -- is rolled up by a later call, after that transaction's sessions are.
    WITH taken AS (DELETE FROM ipintel.attribution_dirty_days q RETURNING q.day)
    SELECT array_agg(DISTINCT t.day), bool_or(t.day IS NULL) INTO v_days, v_every_day FROM taken t;
    IF v_days IS NULL THEN
        RETURN 0;
    END IF;
    IF v_every_day THEN
        -- every day: those of the rollup (a day may have lost all its sessions) and those of
        -- the sessions with a snapshot (one pass over session_summaries)
        v_days := ARRAY(SELECT a.day FROM ipintel.attribution_daily a
                        UNION
                        SELECT DISTINCT (s.first_event_at AT TIME ZONE 'UTC')::date
                        FROM ipintel.session_summaries s WHERE s.snapshot_at IS NOT NULL);
    END IF;
    DELETE FROM ipintel.attribution_daily a WHERE a.day = ANY (v_days);
    INSERT INTO ipintel.attribution_daily
    SELECT * FROM ipintel.attribution_of_days(v_days);
    DELETE FROM ipintel.attribution_asn_daily a WHERE a.day = ANY (v_days);
    INSERT INTO ipintel.attribution_asn_daily
    SELECT * FROM ipintel.attribution_asn_of_days(v_days);
    RETURN cardinality(v_days);
END;
$$;

COMMENT ON FUNCTION ipintel.roll_up_attribution() IS
    'Recomputes attribution_daily, then attribution_asn_daily from it, for the days queued in attribution_dirty_days (whole days: an HLL sketch cannot subtract; a NULL day queued: every day of the rollup and of the sessions) and empties the queue; returns how many days. Called by enrich after take_snapshots and by ingest after its last chunk; one call at a time (EXCLUSIVE lock on attribution_daily, readers go on).';

CREATE OR REPLACE FUNCTION ipintel.take_snapshots(p_ips inet[])
    RETURNS bigint
    LANGUAGE plpgsql
    -- One big set-based statement: compiling it (JIT) costs more than it saves.
    SET jit = off
    SET search_path = ''
    -- planned with p_ips' value each call: NULL drops the filters, an array restricts every
    -- part (the incomplete sessions through the queue's IP index, the awaited sources per IP)
    SET plan_cache_mode = force_custom_plan
    -- Hash tables of up to 256 MB (sorts 64 MB): the incomplete sessions' keys that the update
    -- finds its rows by fit in one hash up to about 2M sessions, so the rows are written in the
    -- order they come (the heap's, below); in several batches each batch is one more pass over
    -- the heap.
    SET work_mem = '64MB'
    SET hash_mem_multiplier = 4
    -- The update's rows meet their classes and documents in hash joins (revision 0059), which
    -- keep the order todo locked them in (the heap's) for the sort below to find. Merge joins
    -- sorted every row by IP first, then by place again (2M sessions: two external sorts of
    -- 325 and 385 MB, about a tenth of the run).
    SET enable_mergejoin = off
    -- The statement that writes cannot run in parallel; the ones before it read the queue and
    -- sessions in one pass each, which a parallel plan split and aggregated twice, without the
    -- workers it planned for on a busy machine (2M sessions: 11.8 s against 3.4 s serial).
    SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    v_days_flag text;
    v_changed bigint;
    v_ips inet[];
    v_days date[];
    v_first timestamptz;
    v_last timestamptz;
BEGIN
    -- The incomplete sessions are those of snapshot_queue (revision 0064). Their first and last
    -- first_event_at bound every read of session_summaries below: planned with these values
    -- (force_custom_plan), each statement reads only the months that hold a queued session. With
    -- nothing queued there is nothing to do.
    SELECT min(q.first_event_at), max(q.first_event_at) INTO v_first, v_last
    FROM ipintel.snapshot_queue q
    WHERE p_ips IS NULL OR q.source_ip = ANY (p_ips);
    IF v_first IS NULL THEN
        RETURN 0;
    END IF;

    -- Routing history and the dated geolocation builds are asked only about sessions whose ASN
    -- or country is still unknown, once per IP and day.
    SELECT array_agg(x.ip), array_agg(x.day) INTO v_ips, v_days
    FROM (SELECT DISTINCT s.source_ip AS ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day
          FROM ipintel.snapshot_queue q
          -- by session_id alone: see todo below
          JOIN ipintel.session_summaries s ON s.session_id = q.session_id
          WHERE (p_ips IS NULL OR q.source_ip = ANY (p_ips))
            AND s.first_event_at BETWEEN v_first AND v_last
            AND s.snapshot_complete_at IS NULL
            AND (s.snapshot_asn_source IS NULL OR s.snapshot_country_source IS NULL)) x;

    -- The days this statement updates are queued by the statement itself (CTE days_queued;
    -- revision 0065); the flag tells the update trigger so, which otherwise queues every day. On
    -- for this statement only (an error undoes it with the transaction).
    v_days_flag := coalesce(current_setting('ipintel.attribution_days_queued', true), '');
    PERFORM set_config('ipintel.attribution_days_queued', 'on', true);
    WITH todo AS (
        SELECT s.session_id, s.first_event_at, s.source_ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day,
               -- where the session is in the heap (the update goes in this order) and its snapshot
               -- fields as locked here: the update writes from these, so its join to the sessions
               -- carries their keys alone (revision 0057)
               s.tableoid AS row_table, s.ctid AS row_ctid,
               s.snapshot_asn AS kept_asn, s.snapshot_asn_source AS kept_asn_source,
               s.snapshot_country AS kept_country, s.snapshot_country_source AS kept_country_source,
               s.snapshot_is_scanner AS kept_is_scanner, s.snapshot_is_scanner_source AS kept_is_scanner_source,
               s.snapshot_ip_type AS kept_ip_type, s.snapshot_ip_type_source AS kept_ip_type_source,
               s.snapshot_is_known_attacker AS kept_is_known_attacker,
               s.snapshot_is_known_attacker_source AS kept_is_known_attacker_source,
               s.snapshot_threatfeeds AS kept_threatfeeds, s.snapshot_ip_provider AS kept_ip_provider,
               s.snapshot_at AS kept_at, r.*,
               -- the ASN: routing history at the session's day, else ip_asn_history at its time,
               -- else a dated geolocation build (g), else the current ASN; its source says which
               -- (routing:<dataset>:<snapshot day>, <source>:history, <source>:build:<day>,
               -- <source>:current)
               CASE WHEN rt.asn IS NOT NULL THEN rt.asn WHEN h.ip IS NOT NULL THEN h.asn
                    WHEN g.asn_from_build THEN gb.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || to_char(rt.taken_on, 'YYYY-MM-DD')
                    WHEN h.ip IS NOT NULL THEN h.source || ':history'
                    WHEN g.asn_from_build THEN gb.asn_build
                    ELSE coalesce(i.current_asn_source || ':current', 'none') END AS asn_source,
               -- the country: a dated geolocation build (g), else the current one
               CASE WHEN g.country_from_build THEN gb.country ELSE i.geo_country END AS country,
               CASE WHEN i.is_bogon THEN 'bogon' WHEN g.country_from_build THEN gb.country_build
                    ELSE coalesce(i.geo_country_source, 'none') END AS country_source,
               i.is_scanner,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_scanner_source, 'none') END AS is_scanner_source,
               -- the registered source of that ASN (for the classes resting on it), or its routing
               -- snapshot or geolocation build
               CASE WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || to_char(rt.taken_on, 'YYYY-MM-DD')
                    WHEN h.ip IS NOT NULL THEN h.source WHEN g.asn_from_build THEN gb.asn_build
                    ELSE i.current_asn_source END AS class_asn_source,
               -- known attacker and threat feeds: one field, filled together from one source (0028)
               i.is_known_attacker, i.threatfeeds,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_known_attacker_source, 'none') END
                   AS known_attacker_source
        -- The incomplete sessions (of p_ips): those of the queue, read in the months that hold
        -- them (v_first, v_last), by session_id alone, which names one session (verify_sessions).
        -- By both columns of the key the planner takes the two equalities for independent and
        -- expects one row where there are thousands, and plans every join after it for that:
        -- 2M sessions, index probes of ip_inventory per session and hashes spilled to disk; an
        -- ingest chunk's 2,670 sessions (revision 0065), nested loops comparing every session with
        -- every IP of the chunk and every IP's awaited sources, 10 to 14 s a chunk instead of
        -- well under one. The few of p_ips cost one probe of each month of [v_first, v_last]
        -- (the months of those IPs' queued sessions: one or two but after a backlog).
        FROM ipintel.snapshot_queue q
        JOIN ipintel.session_summaries s ON s.session_id = q.session_id
        JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
        -- The awaited sources by the rule of ipintel.snapshot_waits, worked out once per IP and
        -- ingest time (revision 0061), not once per session: the sessions of an IP that one ingest
        -- chunk wrote share their created_at, so they await the same sources, and the windows are
        -- compared once for them all. Per session, the grouping by session sorted every waiting
        -- session (2M sessions: 10 s of take_snapshots, 3 s of a run with nothing new).
        LEFT JOIN (SELECT c.source_ip, c.created_at,
                          min(p.asn_rank) AS asn_wait_rank, min(p.country_rank) AS country_wait_rank,
                          min(p.is_scanner_rank) AS is_scanner_wait_rank, min(p.ip_type_rank) AS ip_type_wait_rank,
                          min(p.is_known_attacker_rank) AS is_known_attacker_wait_rank
                   -- each (IP, source) once, planned apart (see snapshot_waits), then joined to the
                   -- IP's incomplete sessions; min() does not mind the repeats of a source
                   FROM (SELECT p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank,
                                p.ip_type_rank, p.is_known_attacker_rank
                         FROM ipintel.snapshot_pending_sources p
                         WHERE p_ips IS NULL OR p.ip = ANY (p_ips)
                         GROUP BY p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank,
                                  p.ip_type_rank, p.is_known_attacker_rank) p
                   -- the IP's incomplete sessions, with their created_at, in the queue alone
                   JOIN ipintel.snapshot_queue c ON c.source_ip = p.ip
                   WHERE (p_ips IS NULL OR c.source_ip = ANY (p_ips))
                     AND c.created_at + p.snapshot_window > now()
                   GROUP BY c.source_ip, c.created_at) w
               ON w.source_ip = s.source_ip AND w.created_at = s.created_at
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
            SELECT w.source_ip IS NULL AS all_ready,
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
          AND (p_ips IS NULL OR q.source_ip = ANY (p_ips))
          AND s.first_event_at BETWEEN v_first AND v_last
          AND (r.all_ready
               OR (r.asn_ready AND s.snapshot_asn_source IS NULL)
               OR (r.country_ready AND s.snapshot_country_source IS NULL)
               OR (r.scanner_ready AND s.snapshot_is_scanner_source IS NULL)
               OR (r.ip_type_ready AND s.snapshot_ip_type_source IS NULL)
               OR (r.known_attacker_ready AND s.snapshot_is_known_attacker_source IS NULL))
        -- Locked in the order of the heap: in the order the joins give, a month's sessions
        -- larger than shared_buffers had each page read, dirtied and written back again and
        -- again (2M sessions: 1.4M page writes for a heap of 110K pages, 11 s of 76 s).
        ORDER BY s.tableoid, s.ctid
        -- A session an ingest chunk is updating right now is left for the next run: snapshots
        -- never wait for ingest, so the two can never deadlock.
        FOR NO KEY UPDATE OF s SKIP LOCKED
    ), class_keys AS MATERIALIZED (
        -- Each (IP, day, ASN, source) of the sessions whose ip_type is filled now, once: the four
        -- arrays built by one aggregate, so they stay aligned without sorting.
        SELECT array_agg(k.source_ip) AS ips, array_agg(k.day) AS days, array_agg(k.asn) AS asns,
               array_agg(k.class_asn_source) AS asn_sources
        FROM (SELECT DISTINCT t.source_ip, t.day, t.asn, t.class_asn_source
              FROM todo t WHERE t.ip_type_ready AND t.kept_ip_type_source IS NULL) k
    ), classes AS MATERIALIZED (
        -- ip_type and ip_provider as of the session's day (issue 12): the range lists of that day
        -- and the snapshot's ASN, weighed with what the sources said (ip_classes). One call for
        -- them all.
        SELECT c.*
        FROM ipintel.ip_classes((SELECT k.ips FROM class_keys k), (SELECT k.days FROM class_keys k),
                                (SELECT k.asns FROM class_keys k), (SELECT k.asn_sources FROM class_keys k)) c
    ), document_ids AS MATERIALIZED (
        -- Each IP's document as it is now, stored once (snapshot_documents: joined by hash).
        SELECT x.ip, x.document_id
        FROM ipintel.snapshot_documents(ARRAY(SELECT DISTINCT t.source_ip FROM todo t)) x
    ), filled AS (
        -- A known field is kept (t.kept_*: the session's fields as todo locked them, which no
        -- other transaction can have changed since; a session changed before it was locked was
        -- read again by the lock, in its latest version).
        UPDATE ipintel.session_summaries s
        SET snapshot_asn = CASE WHEN t.kept_asn_source IS NULL AND t.asn_ready THEN t.asn ELSE t.kept_asn END,
            snapshot_asn_source = CASE WHEN t.kept_asn_source IS NULL AND t.asn_ready THEN t.asn_source
                                       ELSE t.kept_asn_source END,
            snapshot_country = CASE WHEN t.kept_country_source IS NULL AND t.country_ready THEN t.country
                                    ELSE t.kept_country END,
            snapshot_country_source = CASE WHEN t.kept_country_source IS NULL AND t.country_ready THEN t.country_source
                                           ELSE t.kept_country_source END,
            snapshot_is_scanner = CASE WHEN t.kept_is_scanner_source IS NULL AND t.scanner_ready THEN t.is_scanner
                                       ELSE t.kept_is_scanner END,
            snapshot_is_scanner_source = CASE WHEN t.kept_is_scanner_source IS NULL AND t.scanner_ready
                                              THEN t.is_scanner_source ELSE t.kept_is_scanner_source END,
            snapshot_ip_type = CASE WHEN t.kept_ip_type_source IS NULL AND t.ip_type_ready THEN t.class_ip_type
                                    ELSE t.kept_ip_type END,
            -- list:<list>:<day> for a class from a range or ASN list; else the source that said it
            -- (for routed and residential: the ASN's), bogon, none
            snapshot_ip_type_source = CASE WHEN t.kept_ip_type_source IS NULL AND t.ip_type_ready
                                           THEN CASE WHEN t.class_basis ? 'list'
                                                     THEN 'list:' || (t.class_basis ->> 'list') || ':'
                                                          || (t.class_basis ->> 'snapshot')
                                                     WHEN t.class_ip_type = 'bogon' THEN 'bogon'
                                                     ELSE coalesce(t.class_ip_type_source, 'none') END
                                           ELSE t.kept_ip_type_source END,
            snapshot_is_known_attacker = CASE WHEN t.kept_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                              THEN t.is_known_attacker ELSE t.kept_is_known_attacker END,
            snapshot_threatfeeds = CASE WHEN t.kept_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                        THEN t.threatfeeds ELSE t.kept_threatfeeds END,
            snapshot_is_known_attacker_source = CASE WHEN t.kept_is_known_attacker_source IS NULL
                                                          AND t.known_attacker_ready
                                                     THEN t.known_attacker_source
                                                     ELSE t.kept_is_known_attacker_source END,
            snapshot_ip_provider = CASE WHEN t.kept_ip_type_source IS NULL AND t.ip_type_ready THEN t.class_ip_provider
                                        ELSE t.kept_ip_provider END,
            snapshot_document = t.document_id,
            snapshot_at = coalesce(t.kept_at, now()),
            snapshot_complete_at = CASE WHEN t.all_ready THEN now() END,
            updated_at = now()
        -- Each session with its document and class, planned apart from the update's join
        -- (OFFSET 0): joined by both key columns, the sessions' estimate fell to a few rows and
        -- the planner looped over the classes for each of them (40,000 sessions: minutes). In the
        -- order of the heap, as they were locked (revision 0057): in the order of the joins above
        -- (by IP), a month larger than shared_buffers had each page read, dirtied and written
        -- back many times (2M sessions: 2.3M page writes for a heap of 111K pages, 45 s).
        FROM (SELECT t.*, x.document_id, c.ip_type AS class_ip_type, c.ip_class_basis AS class_basis,
                     c.ip_type_source AS class_ip_type_source, c.ip_provider AS class_ip_provider
              FROM todo t
              -- grouped by ip, which the planner then knows to be unique here: joined to the CTE
              -- as it is, the estimate multiplied todo's rows by its (10^5 declared, 200 distinct
              -- assumed: 500 times), and a few thousand sessions to fill were planned as a million,
              -- a hash of every incomplete session of their months rather than a probe each
              JOIN (SELECT d.ip, min(d.document_id) AS document_id FROM document_ids d GROUP BY d.ip) x
                ON x.ip = t.source_ip
              LEFT JOIN classes c ON c.ip = t.source_ip AND c.day = t.day AND coalesce(c.asn, -1) = coalesce(t.asn, -1)
              ORDER BY t.row_table, t.row_ctid
              OFFSET 0) t
        -- by the whole key (revision 0055): a probe of one partition, not of every month's.
        -- Only in the months that hold a queued session (revision 0064; before, revision 0062,
        -- among the incomplete sessions of a partial index): joined to every session, the update
        -- hashed all the months kept on every run, even one with nothing to fill (6M sessions of
        -- which 1M incomplete: a hash of 6M rows in 4 batches, 3.1 s of a 7.3 s run that changed
        -- nothing). The rows todo locked are incomplete, and no other transaction can complete
        -- them meanwhile.
        -- By session_id alone for a whole pass, as todo: estimated right, the planner hashes the
        -- rows to write rather than spilling a hash planned for a few.
        WHERE s.session_id = t.session_id AND (p_ips IS NULL OR s.first_event_at = t.first_event_at)
          AND s.first_event_at BETWEEN v_first AND v_last AND s.snapshot_complete_at IS NULL
        RETURNING s.session_id, s.snapshot_complete_at IS NOT NULL AS complete, t.day
    ), dequeued AS (
        -- the snapshots completed leave the queue (their sessions are locked: no one else can
        -- have changed these rows)
        DELETE FROM ipintel.snapshot_queue q
        USING filled f
        WHERE f.complete AND q.session_id = f.session_id
    ), days_queued AS (
        -- the days whose rollup these snapshots change (first_event_at is not written here)
        INSERT INTO ipintel.attribution_dirty_days (day)
        SELECT DISTINCT f.day FROM filled f)
    SELECT count(*) INTO v_changed FROM filled;
    PERFORM set_config('ipintel.attribution_days_queued', v_days_flag, true);
    RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION ipintel.take_snapshots(inet[]) IS
    'Fills the unknown snapshot_* fields of incomplete sessions (all of them when p_ips is NULL, else those of the IPs p_ips) that no better-ranked source is still awaited for (see ipintel.snapshot_waits), and marks a snapshot complete once no source is awaited. Never changes a known field. The IP''s enrichment document as it is now goes to snapshot_document: stored in enrichment_documents only when no session took the same document before (once per distinct document, not per session). The ASN and the class (snapshot_ip_type, snapshot_ip_provider: ip_classes) are as of the session''s day. Linear in the incomplete sessions and their IPs. Returns the sessions changed. Called by take_snapshots() (every session, after enrich) and by merge_cowrie_events (the sessions of an ingest chunk whose IPs are already enriched).';

CREATE OR REPLACE FUNCTION ipintel.redo_snapshots(p_since timestamptz, p_until timestamptz, p_reason text)
    RETURNS TABLE (redo_id bigint, sessions_reset bigint, sessions_taken bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_days_flag text;
    v_redo bigint;
    v_reset bigint;
    v_taken bigint;
BEGIN
    INSERT INTO ipintel.snapshot_redos (since, until, reason) VALUES (p_since, p_until, p_reason)
    RETURNING snapshot_redos.redo_id INTO v_redo;
    PERFORM set_config('ipintel.snapshot_redo', v_redo::text, true);
    -- The days this statement updates are queued by the statement itself (CTE days_queued;
    -- revision 0065); the flag tells the update trigger so, which otherwise queues every day. On
    -- for this statement only (an error undoes it with the transaction).
    v_days_flag := coalesce(current_setting('ipintel.attribution_days_queued', true), '');
    PERFORM set_config('ipintel.attribution_days_queued', 'on', true);
    WITH reset AS (
        UPDATE ipintel.session_summaries s
        SET snapshot_asn = NULL, snapshot_asn_source = NULL, snapshot_country = NULL, snapshot_country_source = NULL,
            snapshot_ip_type = NULL, snapshot_ip_type_source = NULL, snapshot_ip_provider = NULL,
            snapshot_is_scanner = NULL, snapshot_is_scanner_source = NULL, snapshot_is_known_attacker = NULL,
            snapshot_threatfeeds = NULL, snapshot_is_known_attacker_source = NULL, snapshot_document = NULL,
            snapshot_at = NULL, snapshot_complete_at = NULL, updated_at = now()
        WHERE s.first_event_at >= p_since AND s.first_event_at < p_until AND s.snapshot_at IS NOT NULL
        RETURNING s.session_id, s.first_event_at, s.source_ip, s.created_at
    ), queued AS (
        -- incomplete again: back in the queue (revision 0064; one that was incomplete is there)
        INSERT INTO ipintel.snapshot_queue (session_id, first_event_at, source_ip, created_at)
        SELECT r.session_id, r.first_event_at, r.source_ip, r.created_at FROM reset r
        ON CONFLICT (session_id) DO NOTHING
    ), days_queued AS (
        -- their groups change even where take_snapshots below leaves them waiting
        INSERT INTO ipintel.attribution_dirty_days (day)
        SELECT DISTINCT (r.first_event_at AT TIME ZONE 'UTC')::date FROM reset r)
    SELECT count(*) INTO v_reset FROM reset;
    PERFORM set_config('ipintel.attribution_days_queued', v_days_flag, true);
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

CREATE OR REPLACE FUNCTION ipintel.merge_cowrie_events(p_batch_id bigint)
    RETURNS TABLE (events bigint, sessions_new bigint, sessions_updated bigint, ips_new bigint, event_counts jsonb)
    LANGUAGE plpgsql
    SET search_path = ''
    -- A chunk of 50,000 events sorts in ~8 MB: in memory, not in temporary files.
    SET work_mem = '64MB'
AS $$
DECLARE
    v_days_flag text;
    v_events bigint;
    v_event_counts jsonb;
    v_sessions_new bigint;
    v_sessions_updated bigint;
    v_ips_new bigint;
    v_asns bigint[];
    v_asn_sessions bigint[];
    v_asn_first_seen timestamptz[];
    v_asn_last_seen timestamptz[];
    v_chunk_ips inet[];
    v_enriched_ips inet[];
BEGIN
    -- Before any row lock, so it adds no lock order: only merges of Cowrie events take it.
    PERFORM pg_advisory_xact_lock(hashtextextended('ipintel.session_summaries', 0));

    SELECT coalesce(sum(e.n), 0), coalesce(jsonb_object_agg(e.eventid, e.n), '{}'::jsonb)
    INTO v_events, v_event_counts
    FROM (SELECT c.eventid, count(*) AS n FROM ipintel_staging.cowrie_events c
          WHERE c.batch_id = p_batch_id GROUP BY c.eventid) e;

    -- Every "first" below is the first of the session's events by (event_ts, line_no): the events
    -- come sorted so from the subquery, and each aggregate takes them in that order (a GROUP BY
    -- on a prefix of the subquery's sort keeps it; an INSERT plan is never parallel). One sort for
    -- the batch instead of one per ordered aggregate and session: the aggregation in half the
    -- time (issue 15). normalize_ip is applied once per session, to the address picked. The
    -- sessions are sorted and grouped by their id in the "C" collation (revision 0054): bytes
    -- compared, with abbreviated keys, rather than the database's collation, about 15% of the
    -- aggregation; grouping needs only equality, which every deterministic collation shares.
    INSERT INTO ipintel_staging.cowrie_sessions
    SELECT p_batch_id, c.session_key,
           -- The peer is the address of the connect event. Without one in this batch (a session
           -- continued from an earlier file), the earliest event's, but never a direct-tcpip
           -- event's: Cowrie logs the client-claimed forwarding origin (e.g. 127.0.0.1) there.
           ipintel.normalize_ip(coalesce((array_agg(c.src_ip) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
                                         (array_agg(c.src_ip) FILTER (WHERE c.eventid NOT LIKE 'cowrie.direct-tcpip.%'))[1],
                                         (array_agg(c.src_ip))[1])),
           (array_agg(c.sensor) FILTER (WHERE c.sensor IS NOT NULL))[1],
           min(c.event_ts), max(c.event_ts),
           (array_agg(c.protocol) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           (array_agg(c.src_port) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           ipintel.normalize_ip((array_agg(c.dst_ip) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1]),
           (array_agg(c.dst_port) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           max(c.duration) FILTER (WHERE c.eventid = 'cowrie.session.closed'),
           (array_agg(c.client_version) FILTER (WHERE c.eventid = 'cowrie.client.version'))[1],
           (array_agg(c.hassh) FILTER (WHERE c.eventid = 'cowrie.client.kex'))[1],
           count(*) FILTER (WHERE c.eventid IN ('cowrie.login.failed', 'cowrie.login.success')),
           count(*) FILTER (WHERE c.eventid = 'cowrie.login.success'),
           count(*) FILTER (WHERE c.eventid = 'cowrie.command.input'),
           count(*) FILTER (WHERE c.eventid = 'cowrie.session.file_download'),
           count(*)
    FROM (SELECT e.*, e.session_id COLLATE "C" AS session_key FROM ipintel_staging.cowrie_events e
          WHERE e.batch_id = p_batch_id
          ORDER BY session_key, e.event_ts, e.line_no) c
    GROUP BY c.session_key;

    -- The partitions of this chunk's months, and of this month and the next (before anything here
    -- reads session_summaries: making a partition locks it, and no lock is taken weaker first).
    PERFORM ipintel.ensure_session_partitions(
        ARRAY(SELECT DISTINCT date_trunc('month', m.first_event_at, 'UTC') FROM ipintel_staging.cowrie_sessions m
              WHERE m.batch_id = p_batch_id)
        || ARRAY[now(), now() + interval '1 month']);

    -- The one lookup of the batch's sessions in session_summaries (revision 0054): a session
    -- already merged keeps the peer it was first seen with, and its key is kept for the update
    -- below, which then reads it by key (one partition), while the insert needs no lookup at all.
    -- Looked up three times before (here, by the update and by the insert's NOT EXISTS), every
    -- staged session cost three probes of every partition (issue 15). Sound because nothing else
    -- adds, moves or deletes a session until this merge ends: every writer of sessions is a merge
    -- of Cowrie events, and merges take the advisory lock above (ensure_session_partitions, which
    -- moves sessions out of the default partition, ran above, inside this merge).
    -- The session's first_event_at comes from session_keys (revision 0060: one probe), and the
    -- session is then read in that one partition; by session_id alone every month's partition
    -- was probed for every staged session, or all of them scanned. A key whose session is gone
    -- (a month detached or dropped) finds nothing: the session is new again.
    UPDATE ipintel_staging.cowrie_sessions m SET source_ip = s.source_ip, merged_first_event_at = s.first_event_at
    FROM ipintel.session_keys k
    JOIN ipintel.session_summaries s ON s.session_id = k.session_id AND s.first_event_at = k.first_event_at
    WHERE m.batch_id = p_batch_id AND k.session_id = m.session_id;

    -- New source IPs first: session_summaries.source_ip references ip_inventory.
    WITH new_ips AS (
        INSERT INTO ipintel.ip_inventory AS i (ip, first_seen, last_seen)
        SELECT m.source_ip, min(m.first_event_at), max(m.last_event_at)
        FROM ipintel_staging.cowrie_sessions m
        WHERE m.batch_id = p_batch_id
        GROUP BY m.source_ip
        ORDER BY m.source_ip  -- a stable lock order: concurrent merges cannot deadlock
        ON CONFLICT (ip) DO NOTHING
        RETURNING 1)
    SELECT count(*) INTO v_ips_new FROM new_ips;

    -- The one lock order of every writer of the tiers (see lock_for_merge): this chunk's IPs in
    -- ip order, then their ASNs, before any session row; so a concurrent enrich cannot deadlock it.
    v_chunk_ips := ARRAY(SELECT DISTINCT m.source_ip FROM ipintel_staging.cowrie_sessions m
                         WHERE m.batch_id = p_batch_id);
    PERFORM ipintel.lock_for_merge(v_chunk_ips, '{}');

    -- The foreign key of the sessions inserted below is checked when this merge ends (SET
    -- CONSTRAINTS ... IMMEDIATE after take_snapshots), not row by row now: take_snapshots updates
    -- most of them again, and PostgreSQL checks an updated row's key again when the row was
    -- inserted by the same transaction, equal or not. Deferred, a session inserted and then
    -- updated is checked once (its inserted version is dead by then and skipped), not twice
    -- (issue 15: ~130 ms of a 1 s chunk of 50,000 events). Every IP was inserted above and is
    -- locked by lock_for_merge, so the checks cannot fail later than they would have now.
    SET CONSTRAINTS ipintel.session_summaries_source_ip_fkey DEFERRED;

    -- The sessions found by the lookup above are updated, the others inserted.
    -- The days this statement updates are queued by the statement itself (CTE days_queued;
    -- revision 0065); the flag tells the update trigger so, which otherwise queues every day. On
    -- for this statement only (an error undoes it with the transaction).
    v_days_flag := coalesce(current_setting('ipintel.attribution_days_queued', true), '');
    PERFORM set_config('ipintel.attribution_days_queued', 'on', true);
    WITH updated AS (
        UPDATE ipintel.session_summaries s SET
            sensor           = coalesce(s.sensor, m.sensor),
            first_event_at   = least(s.first_event_at, m.first_event_at),
            last_event_at    = greatest(s.last_event_at, m.last_event_at),
            protocol         = coalesce(s.protocol, m.protocol),
            src_port         = coalesce(s.src_port, m.src_port),
            dst_ip           = coalesce(s.dst_ip, m.dst_ip),
            dst_port         = coalesce(s.dst_port, m.dst_port),
            duration_seconds = coalesce(m.duration_seconds, s.duration_seconds),
            client_version   = coalesce(s.client_version, m.client_version),
            hassh            = coalesce(s.hassh, m.hassh),
            login_attempts   = s.login_attempts + m.login_attempts,
            login_successes  = s.login_successes + m.login_successes,
            command_count    = s.command_count + m.command_count,
            download_count   = s.download_count + m.download_count,
            event_count      = s.event_count + m.event_count,
            updated_at       = now()
        FROM ipintel_staging.cowrie_sessions m
        WHERE m.batch_id = p_batch_id AND m.merged_first_event_at IS NOT NULL
          AND s.session_id = m.session_id AND s.first_event_at = m.merged_first_event_at
        RETURNING s.source_ip, s.session_id, s.first_event_at, m.merged_first_event_at AS old_first_event_at,
                  s.snapshot_at IS NOT NULL AS counted)
    , moved AS (
        -- a session whose first_event_at moved earlier (a later file brought earlier events): its
        -- key follows it (revision 0060), in the snapshot queue too if it is there (revision 0064)
        UPDATE ipintel.session_keys k SET first_event_at = u.first_event_at
        FROM updated u
        WHERE k.session_id = u.session_id AND k.first_event_at <> u.first_event_at)
    , moved_queued AS (
        UPDATE ipintel.snapshot_queue q SET first_event_at = u.first_event_at
        FROM updated u
        WHERE q.session_id = u.session_id AND q.first_event_at <> u.first_event_at)
    , days_queued AS (
        -- a snapshotted session's counts changed: its day's rollup, and its old day's when its
        -- first_event_at moved (sessions without a snapshot are in no group)
        INSERT INTO ipintel.attribution_dirty_days (day)
        SELECT DISTINCT (d.at AT TIME ZONE 'UTC')::date
        FROM updated u CROSS JOIN LATERAL (VALUES (u.first_event_at), (u.old_first_event_at)) d(at)
        WHERE u.counted)
    , inserted AS (
        INSERT INTO ipintel.session_summaries (
            session_id, source_ip, sensor, first_event_at, last_event_at, protocol, src_port, dst_ip,
            dst_port, duration_seconds, client_version, hassh, login_attempts, login_successes,
            command_count, download_count, event_count)
        SELECT m.session_id, m.source_ip, m.sensor, m.first_event_at, m.last_event_at, m.protocol,
               m.src_port, m.dst_ip, m.dst_port, m.duration_seconds, m.client_version, m.hassh,
               m.login_attempts, m.login_successes, m.command_count, m.download_count, m.event_count
        FROM ipintel_staging.cowrie_sessions m
        WHERE m.batch_id = p_batch_id AND m.merged_first_event_at IS NULL
        ORDER BY m.session_id
        RETURNING source_ip)
    , merged AS (
        SELECT u.source_ip, false AS inserted FROM updated u
        UNION ALL
        SELECT i.source_ip, true FROM inserted i)
    , per_ip AS (
        SELECT g.source_ip, count(*) FILTER (WHERE g.inserted) AS new_sessions, count(*) AS touched
        FROM merged g GROUP BY g.source_ip)
    , ip_update AS (
        UPDATE ipintel.ip_inventory i
        SET session_count = i.session_count + p.new_sessions,
            first_seen = least(i.first_seen, t.first_seen),
            last_seen = greatest(i.last_seen, t.last_seen),
            updated_at = now()
        FROM per_ip p
        JOIN (SELECT m.source_ip, min(m.first_event_at) AS first_seen, max(m.last_event_at) AS last_seen
              FROM ipintel_staging.cowrie_sessions m WHERE m.batch_id = p_batch_id
              GROUP BY m.source_ip) t ON t.source_ip = p.source_ip
        WHERE i.ip = p.source_ip
        RETURNING i.current_asn, p.new_sessions, t.first_seen, t.last_seen)
    , per_asn AS (
        -- what each ASN of these IPs gains: their new sessions and times (no IP changes its ASN here)
        SELECT u.current_asn AS asn, sum(u.new_sessions)::bigint AS sessions, min(u.first_seen) AS first_seen,
               max(u.last_seen) AS last_seen
        FROM ip_update u WHERE u.current_asn IS NOT NULL GROUP BY u.current_asn)
    SELECT (SELECT sum(p.new_sessions) FROM per_ip p),
           (SELECT sum(p.touched - p.new_sessions) FROM per_ip p),
           (SELECT array_agg(a.asn) FROM per_asn a), (SELECT array_agg(a.sessions) FROM per_asn a),
           (SELECT array_agg(a.first_seen) FROM per_asn a), (SELECT array_agg(a.last_seen) FROM per_asn a)
    INTO v_sessions_new, v_sessions_updated, v_asns, v_asn_sessions, v_asn_first_seen, v_asn_last_seen;
    PERFORM set_config('ipintel.attribution_days_queued', v_days_flag, true);

    -- added, not recounted (revision 0050): a recount read every IP of each ASN the chunk touched
    IF v_asns IS NOT NULL THEN
        PERFORM ipintel.add_to_asn_counts(v_asns, array_fill(0::bigint, ARRAY[cardinality(v_asns)]),
                                          v_asn_sessions, v_asn_first_seen, v_asn_last_seen);
    END IF;

    -- The snapshots of this chunk's sessions whose IP is already enriched, taken here rather than
    -- by the next enrichment (issue 15): what no awaited source can improve is filled now, by the
    -- same rule as after an enrichment (take_snapshots). IPs no source has answered yet (this
    -- chunk's new IPs among them, and bogons, which are never asked) are left to the next
    -- take_snapshots(): at most a field no enabled source gives could be filled for them now. A
    -- chunk with no answered IP (a first load) does not call it at all. One index probe per IP
    -- (revision 0051; LIMIT keeps it a probe): as a semi-join the planner hashed all of
    -- enrichment_state for every chunk.
    v_enriched_ips := ARRAY(
        SELECT c.ip FROM unnest(v_chunk_ips) c(ip)
        CROSS JOIN LATERAL (SELECT 1 FROM ipintel.enrichment_state e WHERE e.ip = c.ip LIMIT 1) x);
    IF cardinality(v_enriched_ips) > 0 THEN
        -- a month's first chunks: its partition analyzed first (revision 0065)
        PERFORM ipintel.analyze_sessions_without_statistics();
        PERFORM ipintel.take_snapshots(v_enriched_ips);
    END IF;
    -- The deferred checks run here, inside the merge: a violation is this merge's error.
    SET CONSTRAINTS ipintel.session_summaries_source_ip_fkey IMMEDIATE;

    DELETE FROM ipintel_staging.cowrie_events c WHERE c.batch_id = p_batch_id;
    DELETE FROM ipintel_staging.cowrie_sessions m WHERE m.batch_id = p_batch_id;

    RETURN QUERY SELECT v_events, coalesce(v_sessions_new, 0), coalesce(v_sessions_updated, 0),
                        v_ips_new, v_event_counts;
END;
$$;

COMMENT ON FUNCTION ipintel.merge_cowrie_events(bigint) IS
    'Merges one staged batch of Cowrie events (ipintel_staging.cowrie_events) into ip_inventory and session_summaries, takes the snapshots of its sessions whose IP is already enriched (take_snapshots of those IPs), then empties the batch. Set-based; call in the transaction that COPYed the batch.';

ALTER FUNCTION ipintel.roll_up_attribution() SECURITY DEFINER;
ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;
