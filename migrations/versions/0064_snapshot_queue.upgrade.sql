-- From migrations/versions/0064_snapshot_queue.upgrade.sql (sql/075_snapshots.sql, sql/030_tiers.sql,
-- sql/060_ingest.sql, sql/095_analyst_views.sql)
-- The incomplete sessions are listed in a table of their own, snapshot_queue, instead of the
-- partial index session_summaries_incomplete_snapshot_idx, whose predicate (snapshot_complete_at
-- IS NULL) made the update that completes a snapshot a non-HOT one: it wrote an entry in every
-- index of the partition (the key, source_ip). At 2M sessions that was over half of the snapshot
-- update (a plain update of the snapshot columns: 50.9 s with the index, 21.7 s without). Now no
-- index of session_summaries depends on a column take_snapshots writes.
-- Locks: the merges' advisory lock (no ingest chunk runs meanwhile), then SHARE on
-- session_summaries (writers wait: take_snapshots, redo_snapshots and ingest cannot change which
-- sessions are incomplete while the queue is filled), then ACCESS EXCLUSIVE for the DROP INDEX,
-- held to the end; readers wait from the DROP INDEX on. One pass over the incomplete sessions
-- (through the index being dropped); on the 2M-session bench seed, all incomplete: see
-- docs/operations.md.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '30min';

SELECT pg_advisory_xact_lock(hashtextextended('ipintel.session_summaries', 0));
LOCK TABLE ipintel.session_summaries IN SHARE MODE;

-- The sessions whose snapshot is incomplete, listed apart (revision 0064), so that no index of
-- session_summaries depends on a column take_snapshots writes and every fill of a snapshot,
-- the one that completes it too, is a HOT update (no index entry written). A partial index of the
-- incomplete sessions did this job before; the update that completed a snapshot took the row out
-- of it, so it was not HOT and added an entry to every index of the partition (2M sessions: a
-- plain update of the snapshot columns 50.9 s with that index, 21.7 s without it). Rows are
-- added by the statement triggers below for every session inserted incomplete, removed by
-- take_snapshots for the snapshots it completes and by the delete trigger, and added again by
-- redo_snapshots; merge_cowrie_events moves a row's first_event_at with its session's.
-- No foreign key to session_summaries (a partitioned table's key would cost a probe per session
-- ingested): ipintel.verify_sessions checks that the queue lists exactly the incomplete sessions.
CREATE TABLE ipintel.snapshot_queue (
    session_id     text        NOT NULL,
    first_event_at timestamptz NOT NULL,
    source_ip      inet        NOT NULL,
    created_at     timestamptz NOT NULL
);
COMMENT ON TABLE ipintel.snapshot_queue IS
    'The sessions whose snapshot is incomplete (session_summaries.snapshot_complete_at NULL), one row each: where take_snapshots, snapshot_waits and snapshot_backlog find them. Kept apart from session_summaries so that no index there covers a column the snapshot writes (every snapshot fill is a HOT update). Written by the triggers session_summaries_snapshot_queue_insert / _delete, take_snapshots (removes the completed), redo_snapshots (adds the redone) and merge_cowrie_events (a session''s earlier first_event_at); ipintel.verify_sessions checks it against the sessions.';
COMMENT ON COLUMN ipintel.snapshot_queue.session_id IS 'The session (session_summaries.session_id).';
COMMENT ON COLUMN ipintel.snapshot_queue.first_event_at IS 'Its session_summaries.first_event_at: with session_id, the session''s key.';
COMMENT ON COLUMN ipintel.snapshot_queue.source_ip IS 'Its session_summaries.source_ip: the IP whose sources the snapshot waits for.';
COMMENT ON COLUMN ipintel.snapshot_queue.created_at IS 'Its session_summaries.created_at (when ingested): each source''s snapshot_window starts here.';

-- `changed`: the statement's inserted rows, or its deleted ones. As with session_keys, an inserted
-- session whose id is listed already takes its place (ensure_session_partitions moves a month's
-- sessions out of the default partition by deleting them there, unseen by these triggers, and
-- inserting them again).
CREATE FUNCTION ipintel.keep_snapshot_queue()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM ipintel.snapshot_queue q
        USING changed c
        WHERE q.session_id = c.session_id AND q.first_event_at = c.first_event_at;
    ELSE
        INSERT INTO ipintel.snapshot_queue AS q (session_id, first_event_at, source_ip, created_at)
        SELECT c.session_id, c.first_event_at, c.source_ip, c.created_at FROM changed c
        WHERE c.snapshot_complete_at IS NULL
        ON CONFLICT (session_id) DO UPDATE
        SET first_event_at = excluded.first_event_at, source_ip = excluded.source_ip, created_at = excluded.created_at
        WHERE (q.first_event_at, q.source_ip, q.created_at)
              IS DISTINCT FROM (excluded.first_event_at, excluded.source_ip, excluded.created_at);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.keep_snapshot_queue() IS
    'Statement trigger function of session_summaries: queues the inserted sessions whose snapshot is incomplete in snapshot_queue and removes the deleted ones.';

CREATE TRIGGER session_summaries_snapshot_queue_insert
    AFTER INSERT ON ipintel.session_summaries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.keep_snapshot_queue();
COMMENT ON TRIGGER session_summaries_snapshot_queue_insert ON ipintel.session_summaries IS
    'Queues the inserted sessions whose snapshot is incomplete in snapshot_queue.';
CREATE TRIGGER session_summaries_snapshot_queue_delete
    AFTER DELETE ON ipintel.session_summaries
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.keep_snapshot_queue();
COMMENT ON TRIGGER session_summaries_snapshot_queue_delete ON ipintel.session_summaries IS
    'Removes deleted sessions from snapshot_queue.';

INSERT INTO ipintel.snapshot_queue (session_id, first_event_at, source_ip, created_at)
SELECT s.session_id, s.first_event_at, s.source_ip, s.created_at
FROM ipintel.session_summaries s
WHERE s.snapshot_complete_at IS NULL;
-- The key and the index built once the rows are in: a sorted build each, not an entry per row
-- (2M queued sessions: 31.8 s copied into the indexed table).
ALTER TABLE ipintel.snapshot_queue ADD CONSTRAINT snapshot_queue_pkey PRIMARY KEY (session_id);
CREATE INDEX snapshot_queue_source_ip_idx ON ipintel.snapshot_queue (source_ip);
COMMENT ON INDEX ipintel.snapshot_queue_source_ip_idx IS
    'The incomplete sessions of some IPs: take_snapshots of an ingest chunk''s enriched IPs, and the awaited sources per IP.';
ANALYZE ipintel.snapshot_queue;

GRANT SELECT ON ipintel.snapshot_queue TO ipintel_reader, ipintel_loader;

-- An index of a partitioned table cannot be dropped CONCURRENTLY; dropping one reads nothing.
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX ipintel.session_summaries_incomplete_snapshot_idx;

-- The readers of the incomplete sessions, now through the queue: the same columns.
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
LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
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
  AND (e.ip IS NULL OR ipintel.answer_is_stale(p, e.fetched_at, t.ttl))
  AND f.ip IS NULL
  -- the policy's filters (as ips_due reads them); the session threshold is looked at only when set
  AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
  -- A session-count threshold declines the IP only once no ingest is running: a running ingest
  -- may still add the IP's sessions (revision 0052). Otherwise snapshots taken while an ingest
  -- runs (by an enrichment, or by the ingest's own chunks) would settle a field on a count the
  -- same ingest then exceeds, and the same logs would give other snapshots than when enrich runs
  -- after ingest. Read once per query (an InitPlan).
  AND NOT (p.min_session_count IS NOT NULL AND ipintel.below_session_threshold(p, i)
           AND NOT (SELECT ipintel.ingest_is_running()))
  AND i.ip IN (SELECT q.source_ip FROM ipintel.snapshot_queue q);

CREATE OR REPLACE VIEW ipintel.snapshot_waits AS
SELECT s.session_id,
       array_agg(w.source ORDER BY w.source) AS waiting_for,
       max(s.created_at + w.snapshot_window) AS window_closes_at,
       min(w.asn_rank) AS asn_wait_rank,
       min(w.country_rank) AS country_wait_rank,
       min(w.is_scanner_rank) AS is_scanner_wait_rank,
       min(w.ip_type_rank) AS ip_type_wait_rank,
       min(w.is_known_attacker_rank) AS is_known_attacker_wait_rank,
       -- added by revision 0042 (a view's new column goes last): a grouping column, so that a
       -- filter on it (take_snapshots of a few IPs) is applied before the grouping, to the
       -- awaited sources' IPs (w.ip, not s.source_ip: the same value, but read from
       -- ip_inventory by its key rather than found by a scan of it)
       w.ip AS source_ip
-- the incomplete sessions (revision 0064: listed in snapshot_queue, with what this view reads of them)
FROM ipintel.snapshot_queue s
-- The awaited sources of each IP, found once per IP and then joined to its sessions (revision
-- 0058). Grouped (each (ip, source) is one row already), so the planner plans them apart and a
-- filter on source_ip, a grouping column, still reaches the inventory's key. Flattened into one
-- join, the planner paired every incomplete session with every enabled source first and ran the
-- per-IP checks on each pair (2M sessions: 6M pairs, about a sixth of take_snapshots).
JOIN (SELECT p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank, p.ip_type_rank,
             p.is_known_attacker_rank
      FROM ipintel.snapshot_pending_sources p
      GROUP BY p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank, p.ip_type_rank,
               p.is_known_attacker_rank) w ON w.ip = s.source_ip
WHERE s.created_at + w.snapshot_window > now()
GROUP BY s.session_id, w.ip;

CREATE OR REPLACE VIEW ipintel.snapshot_backlog AS
SELECT s.session_id,
       s.source_ip,
       s.first_event_at,
       s.created_at AS ingested_at,
       s.snapshot_at,
       coalesce(w.waiting_for, '{}'::text[]) AS waiting_for,
       w.window_closes_at
-- the incomplete sessions, found through snapshot_queue (revision 0064)
FROM ipintel.snapshot_queue q
JOIN ipintel.session_summaries s ON s.session_id = q.session_id AND s.first_event_at = q.first_event_at
LEFT JOIN ipintel.snapshot_waits w ON w.session_id = s.session_id
WHERE s.snapshot_complete_at IS NULL;

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
          -- by session_id, with first_event_at only for the few sessions of p_ips: see todo below
          JOIN ipintel.session_summaries s
            ON s.session_id = q.session_id AND (p_ips IS NULL OR s.first_event_at = q.first_event_at)
          WHERE (p_ips IS NULL OR q.source_ip = ANY (p_ips))
            AND s.first_event_at BETWEEN v_first AND v_last
            AND s.snapshot_complete_at IS NULL
            AND (s.snapshot_asn_source IS NULL OR s.snapshot_country_source IS NULL)) x;

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
        -- them (v_first, v_last). The few of p_ips (an ingest chunk) by their whole key, each a
        -- probe of its own partition (revision 0055). All of them by session_id alone, which names
        -- one session (verify_sessions): by both columns of the key the planner took the two
        -- equalities for independent and expected a few dozen rows of 2M, and planned every join
        -- after it for that (index probes of ip_inventory per session, hashes spilled to disk).
        FROM ipintel.snapshot_queue q
        JOIN ipintel.session_summaries s
          ON s.session_id = q.session_id AND (p_ips IS NULL OR s.first_event_at = q.first_event_at)
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
        RETURNING s.session_id, s.snapshot_complete_at IS NOT NULL AS complete
    ), dequeued AS (
        -- the snapshots completed leave the queue (their sessions are locked: no one else can
        -- have changed these rows)
        DELETE FROM ipintel.snapshot_queue q
        USING filled f
        WHERE f.complete AND q.session_id = f.session_id)
    SELECT count(*) INTO v_changed FROM filled;
    RETURN v_changed;
END;
$$;

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
        ON CONFLICT (session_id) DO NOTHING)
    SELECT count(*) INTO v_reset FROM reset;
    PERFORM set_config('ipintel.snapshot_redo', '', true);
    v_taken := ipintel.take_snapshots();
    UPDATE ipintel.snapshot_redos r
    SET finished_at = clock_timestamp(), sessions_reset = v_reset, sessions_taken = v_taken
    WHERE r.redo_id = v_redo;
    RETURN QUERY SELECT v_redo, v_reset, v_taken;
END;
$$;

CREATE OR REPLACE FUNCTION ipintel.merge_cowrie_events(p_batch_id bigint)
    RETURNS TABLE (events bigint, sessions_new bigint, sessions_updated bigint, ips_new bigint, event_counts jsonb)
    LANGUAGE plpgsql
    SET search_path = ''
    -- A chunk of 50,000 events sorts in ~8 MB: in memory, not in temporary files.
    SET work_mem = '64MB'
AS $$
DECLARE
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
        RETURNING s.source_ip, s.session_id, s.first_event_at)
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

CREATE OR REPLACE FUNCTION ipintel.verify_sessions()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT 'a session_id names one session (one row across the monthly partitions of session_summaries)' AS rule,
           count(*) AS violations, coalesce((array_agg(d.session_id ORDER BY d.session_id))[1:3], '{}') AS examples
    FROM (SELECT s.session_id FROM ipintel.session_summaries s GROUP BY s.session_id HAVING count(*) > 1) d
    UNION ALL
    -- revision 0060: ingest finds a session by its id through session_keys
    SELECT 'session_keys holds the key (session_id, first_event_at) of every session and of no other',
           count(*), coalesce((array_agg(x.session_id ORDER BY x.session_id))[1:3], '{}')
    FROM (SELECT s.session_id FROM ipintel.session_summaries s
          WHERE NOT EXISTS (SELECT 1 FROM ipintel.session_keys k
                            WHERE k.session_id = s.session_id AND k.first_event_at = s.first_event_at)
          UNION ALL
          SELECT k.session_id FROM ipintel.session_keys k
          WHERE NOT EXISTS (SELECT 1 FROM ipintel.session_summaries s
                            WHERE s.session_id = k.session_id AND s.first_event_at = k.first_event_at)) x
    UNION ALL
    -- revision 0064: take_snapshots finds the incomplete sessions through snapshot_queue
    SELECT 'snapshot_queue lists every session whose snapshot is incomplete, with its key, source_ip and created_at, and no other',
           count(*), coalesce((array_agg(x.session_id ORDER BY x.session_id))[1:3], '{}')
    FROM (SELECT s.session_id FROM ipintel.session_summaries s
          WHERE s.snapshot_complete_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM ipintel.snapshot_queue q
                            WHERE q.session_id = s.session_id AND q.first_event_at = s.first_event_at
                              AND q.source_ip = s.source_ip AND q.created_at = s.created_at)
          UNION ALL
          SELECT q.session_id FROM ipintel.snapshot_queue q
          WHERE NOT EXISTS (SELECT 1 FROM ipintel.session_summaries s
                            WHERE s.session_id = q.session_id AND s.first_event_at = q.first_event_at
                              AND s.snapshot_complete_at IS NULL)) x;
END;

COMMENT ON FUNCTION ipintel.verify_sessions() IS
    'The rules of session_summaries its partitioning leaves to ipintel, each with its violations and up to three example session ids: a session_id is one row (the primary key is (session_id, first_event_at), as a partitioned table''s keys must include the partition key; merge_cowrie_events keeps session_id unique), session_keys, through which ingest finds a session by its id, holds exactly the sessions'' keys, and snapshot_queue, through which take_snapshots finds the incomplete sessions, lists exactly those. violations = 0: sound.';

COMMENT ON TABLE ipintel.session_summaries IS
    'Tier 3: one row per Cowrie session, with point-in-time snapshot_* columns: what ipintel knew about the source IP for the session''s time. A snapshot field is known once its *_source is set and is then never rewritten; an unknown field is filled when its source first answers, within that source''s snapshot_window (enrichment_policy) from the session''s created_at. Partitioned by month of first_event_at (UTC): session_summaries_YYYY_MM, made by ensure_session_partitions, and session_summaries_default for a session whose month has no partition yet. The partitions are filled to 40% (fillfactor) and no index covers a snapshot column, so that take_snapshots'' fills, the one that completes a snapshot too, stay on their page (HOT); the incomplete sessions are listed in ipintel.snapshot_queue.';

COMMENT ON COLUMN ipintel.session_summaries.snapshot_complete_at IS
    'When every snapshot field became known: every enabled source had answered or declined (bogon, not applicable, not found), or its snapshot_window had closed. NULL: incomplete, listed in ipintel.snapshot_queue; see ipintel.snapshot_backlog.';

ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;
