-- From sql/075_snapshots.sql
-- Tier 3's point-in-time snapshots: when a session's snapshot_* fields are filled, and the one
-- function that fills them.
--
-- The rule, for every snapshot_* field of a session: a known field (its *_source set) is never
-- changed; an unknown one is filled as soon as no source that could still give a better value
-- is awaited. A source is awaited for a session while it is enabled (and set up: its last pass
-- was not skipped for want of its files, key or contact), has no fresh answer
-- for the IP, has not declined it (bogon, policy says not applicable, a failure asking again
-- cannot fix; a session-count threshold declines only when no ingest is running), and the
-- session was ingested less than the source's snapshot_window ago (so a backfill of old logs is
-- completed too). "Better" is the registry's rank for the field
-- (enrichment_policy.asn_rank, country_rank, is_scanner_rank, ip_type_rank,
-- is_known_attacker_rank, which also decides threatfeeds): a field is ready
-- when its value comes from a source ranked before every awaited source of that field, or when
-- none is awaited. ip_type also waits for the ASN (an IP no source classified is routed once it
-- has one).
--
-- The cost is linear: the awaited sources are computed once per IP (hash joins, no per-session
-- subquery), then once per IP and ingest time (take_snapshots) or per session (snapshot_waits).

-- The sessions whose snapshot is incomplete, listed apart (revision 0064), so that no index of
-- session_summaries depends on a column take_snapshots writes and every fill of a snapshot,
-- the one that completes it too, is a HOT update (no index entry written). A partial index of the
-- incomplete sessions did this job before; the update that completed a snapshot took the row out
-- of it, so it was not HOT and added an entry to every index of the partition (2M sessions: a
-- plain update of the snapshot columns 50.9 s with that index, 21.7 s without it).
--
-- Listed by key (revision 0084): one row per IP and ingest time (source_ip, created_at) with an
-- incomplete session, not one per session. The sessions of a key were ingested by one transaction
-- (one ingest chunk), so they await the same sources, and a whole pass writes them alike: a pass
-- reads the keys as they are rather than grouping a row per session into them, dequeues a key
-- rather than each of its sessions, and knows from the key which fields its sessions all have
-- (known) rather than reading them (2M sessions of 300K IPs on a clone: the first pass 24.1 and
-- 23.4 s per session, 20.1 and 20.0 s by key; a pass with nothing new 4.7 and 4.9 s, 2.2 and
-- 2.2 s). first_at and last_at bound the first_event_at of the key's incomplete sessions (they
-- may be wider: they only grow); known is a subset of the fields every one of them has.
-- Rows are added (or widened) by the statement trigger below for the sessions inserted
-- incomplete, removed by take_snapshots once a key's sessions are complete and by the delete
-- trigger once a key has no incomplete session left, added again (known reset) by
-- redo_snapshots; merge_cowrie_events widens a key when a session's first_event_at moves earlier.
-- No foreign key to session_summaries (a partitioned table's key would cost a probe per session
-- ingested): ipintel.verify_sessions checks that the keys cover exactly the incomplete sessions.
CREATE TABLE ipintel.snapshot_queue (
    source_ip  inet        NOT NULL,
    created_at timestamptz NOT NULL,
    first_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    known      smallint    NOT NULL DEFAULT 0,
    CONSTRAINT snapshot_queue_pkey PRIMARY KEY (source_ip, created_at),
    CONSTRAINT snapshot_queue_span_check CHECK (first_at <= last_at)
)
-- Half of each page left free, so that take_snapshots' update of the keys' known is HOT (no index
-- covers it): 150,000 keys of the 2M seed's first pass 0.34 s against 0.80 s filled to 100%, and
-- the delete of the 150,000 completed keys 0.06 s against 0.31 s (fewer pages). The table holds keys,
-- not sessions: small.
WITH (fillfactor = 50);
COMMENT ON TABLE ipintel.snapshot_queue IS
    'The keys (source IP, ingest time) of the sessions whose snapshot is incomplete (session_summaries.snapshot_complete_at NULL), one row per key: where take_snapshots, snapshot_waits and snapshot_backlog find those sessions (source_ip, created_at, first_event_at between first_at and last_at, snapshot_complete_at NULL). Kept apart from session_summaries so that no index there covers a column the snapshot writes (every snapshot fill is a HOT update). Written by the triggers session_summaries_snapshot_queue_insert / _delete, take_snapshots (removes the keys it completes, marks the fields it filled as known), redo_snapshots (adds the redone) and merge_cowrie_events (a session''s earlier first_event_at); ipintel.verify_sessions checks it against the sessions.';
COMMENT ON COLUMN ipintel.snapshot_queue.source_ip IS 'The sessions'' session_summaries.source_ip: the IP whose sources their snapshots wait for.';
COMMENT ON COLUMN ipintel.snapshot_queue.created_at IS 'The sessions'' session_summaries.created_at (when ingested, one transaction): each source''s snapshot_window starts here.';
COMMENT ON COLUMN ipintel.snapshot_queue.first_at IS 'At or before the first_event_at of every incomplete session of the key.';
COMMENT ON COLUMN ipintel.snapshot_queue.last_at IS 'At or after the first_event_at of every incomplete session of the key.';
COMMENT ON COLUMN ipintel.snapshot_queue.known IS
    'The snapshot fields every incomplete session of the key already has (their *_source set), as bits (ipintel.snapshot_field_bits): 1 ASN, 2 country, 4 is_scanner, 8 ip_type, 16 known attacker. May say less than the sessions have, never more: take_snapshots writes a key whose ready fields are not all known.';

-- The bits of snapshot_queue.known: the fields whose flag is true. Plain SQL, IMMUTABLE: inlined.
CREATE FUNCTION ipintel.snapshot_field_bits(p_asn boolean, p_country boolean, p_scanner boolean, p_ip_type boolean,
                                            p_known_attacker boolean)
    RETURNS smallint
    LANGUAGE sql
    IMMUTABLE PARALLEL SAFE
RETURN (CASE WHEN p_asn THEN 1 ELSE 0 END | CASE WHEN p_country THEN 2 ELSE 0 END
        | CASE WHEN p_scanner THEN 4 ELSE 0 END | CASE WHEN p_ip_type THEN 8 ELSE 0 END
        | CASE WHEN p_known_attacker THEN 16 ELSE 0 END)::smallint;
COMMENT ON FUNCTION ipintel.snapshot_field_bits(boolean, boolean, boolean, boolean, boolean) IS
    'The snapshot fields whose flag is true (ASN, country, is_scanner, ip_type, known attacker, in that order) as the bits of snapshot_queue.known: 1, 2, 4, 8, 16.';

-- `changed`: the statement's inserted rows, or its deleted ones. An inserted session adds its key
-- or widens it, and the key knows only what every new session has as well (an insert after
-- ensure_session_partitions moved a month's sessions out of the default partition, deleting them
-- there unseen by these triggers: the same keys). A deleted incomplete session takes its key
-- with it once the key has no other incomplete session (its bounds are left as they are).
CREATE FUNCTION ipintel.keep_snapshot_queue()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM ipintel.snapshot_queue q
        USING (SELECT DISTINCT c.source_ip, c.created_at FROM changed c WHERE c.snapshot_complete_at IS NULL) c
        WHERE q.source_ip = c.source_ip AND q.created_at = c.created_at
          AND NOT EXISTS (SELECT 1 FROM ipintel.session_summaries s
                          WHERE s.source_ip = q.source_ip AND s.created_at = q.created_at
                            AND s.first_event_at BETWEEN q.first_at AND q.last_at
                            AND s.snapshot_complete_at IS NULL);
    ELSE
        INSERT INTO ipintel.snapshot_queue AS q (source_ip, created_at, first_at, last_at, known)
        SELECT c.source_ip, c.created_at, min(c.first_event_at), max(c.first_event_at),
               bit_and(ipintel.snapshot_field_bits(c.snapshot_asn_source IS NOT NULL, c.snapshot_country_source IS NOT NULL,
                                                   c.snapshot_is_scanner_source IS NOT NULL,
                                                   c.snapshot_ip_type_source IS NOT NULL,
                                                   c.snapshot_is_known_attacker_source IS NOT NULL))
        FROM changed c
        WHERE c.snapshot_complete_at IS NULL
        GROUP BY c.source_ip, c.created_at
        ON CONFLICT (source_ip, created_at) DO UPDATE
        SET first_at = least(q.first_at, excluded.first_at), last_at = greatest(q.last_at, excluded.last_at),
            known = q.known & excluded.known
        WHERE (q.first_at, q.last_at, q.known)
              IS DISTINCT FROM (least(q.first_at, excluded.first_at), greatest(q.last_at, excluded.last_at),
                                q.known & excluded.known);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.keep_snapshot_queue() IS
    'Statement trigger function of session_summaries: queues the keys of the inserted sessions whose snapshot is incomplete in snapshot_queue (or widens them, and keeps as known only what the new sessions have too), and removes the keys of deleted sessions that have no incomplete session left.';

CREATE TRIGGER session_summaries_snapshot_queue_insert
    AFTER INSERT ON ipintel.session_summaries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.keep_snapshot_queue();
COMMENT ON TRIGGER session_summaries_snapshot_queue_insert ON ipintel.session_summaries IS
    'Queues the keys of the inserted sessions whose snapshot is incomplete in snapshot_queue.';
CREATE TRIGGER session_summaries_snapshot_queue_delete
    AFTER DELETE ON ipintel.session_summaries
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.keep_snapshot_queue();
COMMENT ON TRIGGER session_summaries_snapshot_queue_delete ON ipintel.session_summaries IS
    'Removes from snapshot_queue the keys of deleted sessions that have no incomplete session left.';

-- (IP, source) pairs a snapshot of the IP would wait for: every IP of the inventory, with the
-- enabled sources without a fresh answer for it that have not declined it. A source whose last
-- pass was skipped (an offline database with none of its files installed, a service without its
-- key or contact) will not answer until an operator sets it up: nothing waits for it; its next
-- pass that runs makes it awaited again. Kept apart from snapshot_pending_sources (revision 0080)
-- for the ingest merge: it works out the snapshots of sessions it has not inserted yet, whose IPs
-- need not be queued (snapshot_key_values of a batch, filtered by the batch's IPs).
CREATE VIEW ipintel.awaited_sources AS
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
           AND NOT (SELECT ipintel.ingest_is_running()));
COMMENT ON VIEW ipintel.awaited_sources IS
    'Every IP of the inventory with the enabled sources that have neither answered it (freshly) nor declined it: what a snapshot of the IP taken now would wait for (snapshot_pending_sources: the IPs with an incomplete snapshot), with each source''s snapshot_window and field ranks. A source whose last pass was skipped (an offline database without its files, a service without its key or contact) is not waited for. A session-count threshold (min_session_count) declines an IP only while no ingest is running (ingest_is_running).';

-- (IP, source) pairs a snapshot may still wait for: the IPs with an incomplete snapshot (queued),
-- with their awaited sources.
CREATE VIEW ipintel.snapshot_pending_sources AS
SELECT a.ip, a.source, a.snapshot_window, a.asn_rank, a.country_rank, a.is_scanner_rank, a.ip_type_rank,
       a.is_known_attacker_rank
FROM ipintel.awaited_sources a
WHERE a.ip IN (SELECT q.source_ip FROM ipintel.snapshot_queue q);
COMMENT ON VIEW ipintel.snapshot_pending_sources IS
    'IPs with an incomplete snapshot and the enabled sources that have neither answered them (freshly) nor declined them, with each source''s snapshot_window and field ranks. A source whose last pass was skipped (an offline database without its files, a service without its key or contact) is not waited for. A session-count threshold (min_session_count) declines an IP only while no ingest is running (ingest_is_running): a running ingest may still add its sessions.';

-- Per incomplete session: the sources still awaited (their window open) and, per field, the
-- best rank among them.
CREATE VIEW ipintel.snapshot_waits AS
SELECT s.session_id, k.waiting_for, k.window_closes_at, k.asn_wait_rank, k.country_wait_rank, k.is_scanner_wait_rank,
       k.ip_type_wait_rank, k.is_known_attacker_wait_rank,
       -- added by revision 0042 (a view's new column goes last): a grouping column, so that a
       -- filter on it (take_snapshots of a few IPs) is applied before the grouping, to the
       -- awaited sources' IPs (w.ip, not the queue's source_ip: the same value, but read from
       -- ip_inventory by its key rather than found by a scan of it)
       k.source_ip
-- The awaited sources of each queued key (revision 0084: the keys of the incomplete sessions),
-- worked out once per key and then joined to the key's incomplete sessions.
FROM (SELECT q.created_at, q.first_at, q.last_at,
             array_agg(w.source ORDER BY w.source) AS waiting_for,
             max(q.created_at + w.snapshot_window) AS window_closes_at,
             min(w.asn_rank) AS asn_wait_rank,
             min(w.country_rank) AS country_wait_rank,
             min(w.is_scanner_rank) AS is_scanner_wait_rank,
             min(w.ip_type_rank) AS ip_type_wait_rank,
             min(w.is_known_attacker_rank) AS is_known_attacker_wait_rank,
             w.ip AS source_ip
      FROM ipintel.snapshot_queue q
      -- The awaited sources of each IP, found once per IP and then joined to its keys (revision
      -- 0058). Grouped (each (ip, source) is one row already), so the planner plans them apart and
      -- a filter on source_ip, a grouping column, still reaches the inventory's key. Flattened
      -- into one join, the planner paired every incomplete session with every enabled source
      -- first and ran the per-IP checks on each pair (2M sessions: 6M pairs, about a sixth of
      -- take_snapshots).
      JOIN (SELECT p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank, p.ip_type_rank,
                   p.is_known_attacker_rank
            FROM ipintel.snapshot_pending_sources p
            GROUP BY p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank, p.ip_type_rank,
                     p.is_known_attacker_rank) w ON w.ip = q.source_ip
      WHERE q.created_at + w.snapshot_window > now()
      GROUP BY q.created_at, q.first_at, q.last_at, w.ip) k
JOIN ipintel.session_summaries s
  ON s.source_ip = k.source_ip AND s.created_at = k.created_at AND s.first_event_at BETWEEN k.first_at AND k.last_at
 AND s.snapshot_complete_at IS NULL;
COMMENT ON VIEW ipintel.snapshot_waits IS
    'Incomplete sessions that still wait for a source: which ones (waiting_for), when the last window closes, and per snapshot field the best rank among the awaited sources (NULL: the field waits for none).';
COMMENT ON COLUMN ipintel.snapshot_waits.source_ip IS 'The session''s source IP (session_summaries.source_ip).';

CREATE VIEW ipintel.snapshot_backlog AS
SELECT s.session_id,
       s.source_ip,
       s.first_event_at,
       s.created_at AS ingested_at,
       s.snapshot_at,
       coalesce(w.waiting_for, '{}'::text[]) AS waiting_for,
       w.window_closes_at
-- the incomplete sessions, found through the keys of snapshot_queue (revision 0084)
FROM ipintel.snapshot_queue q
JOIN ipintel.session_summaries s
  ON s.source_ip = q.source_ip AND s.created_at = q.created_at AND s.first_event_at BETWEEN q.first_at AND q.last_at
LEFT JOIN ipintel.snapshot_waits w ON w.session_id = s.session_id
WHERE s.snapshot_complete_at IS NULL;
COMMENT ON VIEW ipintel.snapshot_backlog IS
    'Sessions whose snapshot is still incomplete, with the sources still awaited (waiting_for; empty: complete at the next take_snapshots) and when the last of their windows closes.';
COMMENT ON COLUMN ipintel.snapshot_backlog.ingested_at IS 'session_summaries.created_at: each source''s snapshot_window starts here.';
COMMENT ON COLUMN ipintel.snapshot_backlog.waiting_for IS
    'Enabled (and, for offline databases, installed) sources that have neither answered nor declined for the IP while their window is open.';
COMMENT ON COLUMN ipintel.snapshot_backlog.window_closes_at IS 'When the last awaited source''s window closes; the snapshot is then completed with what is known.';

-- The enrichment documents snapshots refer to: each distinct ip_inventory.enrichment document a
-- snapshot took, stored once however many sessions took it (issue 15: copied into every session,
-- the documents were most of session_summaries' heap). jsonb's text form is canonical (keys
-- sorted, duplicates dropped, no insignificant white space), so equal documents have equal
-- digests; the digest, not the document, is the key because a document may exceed the 2.7 kB a
-- btree entry can hold.
CREATE FUNCTION ipintel.enrichment_digest(p_document jsonb)
    RETURNS bytea
    LANGUAGE sql
    IMMUTABLE
    STRICT
    PARALLEL SAFE
-- sha256 of the document's text (UTF-8): text::bytea reads backslashes as escapes, hence doubled
-- (convert_to would say the same but is only STABLE, and a generated column needs IMMUTABLE).
RETURN sha256(replace(p_document::text, '\', '\\')::bytea);
COMMENT ON FUNCTION ipintel.enrichment_digest(jsonb) IS
    'SHA-256 of a jsonb document''s canonical text: the key of ipintel.enrichment_documents (equal documents, equal digests). Find the stored copy of a document with WHERE digest = ipintel.enrichment_digest(<document>).';

CREATE TABLE ipintel.enrichment_documents (
    document_id   bigint      GENERATED ALWAYS AS IDENTITY,
    document      jsonb       NOT NULL,
    digest        bytea       NOT NULL GENERATED ALWAYS AS (ipintel.enrichment_digest(document)) STORED,
    first_used_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT enrichment_documents_pkey PRIMARY KEY (document_id),
    CONSTRAINT enrichment_documents_digest_key UNIQUE (digest)
);
COMMENT ON TABLE ipintel.enrichment_documents IS
    'Every distinct ip_inventory.enrichment document a snapshot took, stored once and shared by the sessions that took it (session_summaries.snapshot_document; the view session_documents reads it back per session). Append-only: a stored document is never changed or deleted (trigger enrichment_documents_are_immutable), so a complete snapshot''s document stays as it was. A document no session refers to any more (after redo_snapshots) stays.';
COMMENT ON COLUMN ipintel.enrichment_documents.document_id IS 'Document number: what session_summaries.snapshot_document holds.';
COMMENT ON COLUMN ipintel.enrichment_documents.document IS 'The ip_inventory.enrichment document as it was when a snapshot took it: every source''s latest answer, keyed by source.';
COMMENT ON COLUMN ipintel.enrichment_documents.digest IS 'ipintel.enrichment_digest(document), computed by PostgreSQL: unique, so each document is stored once.';
COMMENT ON COLUMN ipintel.enrichment_documents.first_used_at IS 'When a snapshot (or revision 0036''s backfill of earlier snapshots) first stored it.';
COMMENT ON CONSTRAINT enrichment_documents_digest_key ON ipintel.enrichment_documents IS
    'One row per distinct document: take_snapshots inserts only the documents whose digest is not stored yet (ON CONFLICT DO NOTHING).';

CREATE FUNCTION ipintel.refuse_document_change()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    RAISE EXCEPTION 'enrichment document %: a stored document is never changed or deleted', OLD.document_id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
COMMENT ON FUNCTION ipintel.refuse_document_change() IS
    'Trigger function: refuses every UPDATE and DELETE of ipintel.enrichment_documents (sessions refer to its rows without a per-row foreign key; verify_snapshots checks the references).';
CREATE TRIGGER enrichment_documents_are_immutable
    BEFORE UPDATE OR DELETE ON ipintel.enrichment_documents
    FOR EACH ROW EXECUTE FUNCTION ipintel.refuse_document_change();
COMMENT ON TRIGGER enrichment_documents_are_immutable ON ipintel.enrichment_documents IS
    'A stored document is never changed or deleted: the snapshots that refer to it stay as they were taken.';

-- The stored document of each IP's enrichment as it is now, for the snapshots take_snapshots is
-- about to write: the documents not stored yet are stored first, each once. A function of an
-- array, as ip_classes is, so that take_snapshots joins its result by hash: inline CTEs of the
-- sessions to take and of their documents, estimated at a few rows each, were joined by a nested
-- loop, quadratic (20,000 sessions of 10,000 IPs: 200M comparisons, 60 s).
CREATE FUNCTION ipintel.snapshot_documents(p_ips inet[])
    RETURNS TABLE (ip inet, document_id bigint)
    LANGUAGE plpgsql
    ROWS 100000
    SET search_path = ''
    -- planned with the array's real length each call (a generic plan guesses 10 elements)
    SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
    WITH digests AS MATERIALIZED (
        -- once per IP (not per session): its digest, not its document (revision 0069)
        SELECT i.ip, ipintel.enrichment_digest(i.enrichment) AS digest
        FROM ipintel.ip_inventory i
        WHERE i.ip = ANY (p_ips)
    ), stored AS (
        -- Only the documents not stored yet, each once: one IP of each new digest (a hash of
        -- narrow rows), its document read again by its key, in the same snapshot of the row. The
        -- documents were carried through that grouping before, sorted by digest: 200,000 IPs of
        -- 6,000 distinct documents, an external sort of 78 MB.
        INSERT INTO ipintel.enrichment_documents (document)
        SELECT i.enrichment
        FROM (SELECT d.digest, min(d.ip) AS ip
              FROM digests d
              WHERE NOT EXISTS (SELECT 1 FROM ipintel.enrichment_documents e WHERE e.digest = d.digest)
              GROUP BY d.digest) n
        JOIN ipintel.ip_inventory i ON i.ip = n.ip
        ORDER BY n.digest
        ON CONFLICT (digest) DO NOTHING
        RETURNING enrichment_documents.document_id, enrichment_documents.digest
    )
    -- A document another transaction is storing right now is neither visible here nor inserted
    -- (the insert waited for it and did nothing): its IP is left out, and take_snapshots leaves
    -- its sessions for the next run. (Two take_snapshots no longer overlap, revision 0068: both
    -- take the sessions' lock first.)
    SELECT d.ip, coalesce(e.document_id, n.document_id)
    FROM digests d
    LEFT JOIN ipintel.enrichment_documents e ON e.digest = d.digest
    LEFT JOIN stored n ON n.digest = d.digest
    WHERE e.document_id IS NOT NULL OR n.document_id IS NOT NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.snapshot_documents(inet[]) IS
    'For take_snapshots: stores the enrichment documents of the IPs p_ips that are not stored yet (each distinct document once), and returns each IP with the document_id of its document as it is now. An IP whose document another transaction is storing at this moment is left out (taken by the next run).';

-- Statistics before take_snapshots (revision 0065). A partition that has rows but was never
-- analyzed (a month's first ingest chunks, a first load, a restore) has no column statistics,
-- and the planner's defaults for take_snapshots' filters (0.5% per range or IS NULL) made it
-- expect one session where there were thousands: nested loops that compared every session with
-- every IP's awaited sources (20,000 sessions: 61 s instead of under 1 s; the test of ingest and
-- enrich at once took 350 s instead of 38 s). Autovacuum analyzes a partition only a minute or
-- so later, and never the partitioned table itself. So the first take_snapshots on such a
-- partition analyzes it first: ANALYZE reads a sample (30,000 rows at most), once per partition.
-- Called by merge_cowrie_events (in the chunk's short transaction) and by `ipintel enrich` in a
-- statement of its own, so that ANALYZE's lock (SHARE UPDATE EXCLUSIVE: writers and readers go
-- on) is not held through a long snapshot pass.
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

-- Whether a session has a field to fill: its snapshot awaits no source (complete now), or a field
-- ready now is still unknown in it (its *_source NULL). The one statement of this rule for every
-- write of take_snapshots and for snapshot_key_values' choice of the keys it works out (revision
-- 0075; before, three copies). Plain SQL, IMMUTABLE and without SET, so the planner inlines it:
-- it costs what the expression costs.
CREATE FUNCTION ipintel.snapshot_has_field_to_fill(
        p_all_ready boolean, p_asn_ready boolean, p_country_ready boolean, p_scanner_ready boolean,
        p_ip_type_ready boolean, p_known_attacker_ready boolean,
        p_asn_source text, p_country_source text, p_is_scanner_source text, p_ip_type_source text,
        p_is_known_attacker_source text)
    RETURNS boolean
    LANGUAGE sql
    IMMUTABLE PARALLEL SAFE
RETURN p_all_ready
       OR (p_asn_ready AND p_asn_source IS NULL)
       OR (p_country_ready AND p_country_source IS NULL)
       OR (p_scanner_ready AND p_is_scanner_source IS NULL)
       OR (p_ip_type_ready AND p_ip_type_source IS NULL)
       OR (p_known_attacker_ready AND p_is_known_attacker_source IS NULL);
COMMENT ON FUNCTION ipintel.snapshot_has_field_to_fill(boolean, boolean, boolean, boolean, boolean, boolean, text, text, text, text, text) IS
    'Whether take_snapshots writes a session: every field ready (p_all_ready: no source awaited), or some field ready (p_*_ready) whose source in the session (snapshot_*_source, passed in the same order: asn, country, is_scanner, ip_type, is_known_attacker) is still NULL.';

-- The classes snapshots take: ip_classes of the parallel arrays (IP, epoch day, ASN, ASN source),
-- with the class's source as a snapshot writes it: list:<list>:<snapshot day> for a class from a
-- range or ASN list, bogon, the source that said it, none; for a class resting on the ASN alone
-- (routed, residential: rests_on_asn) NULL, the caller writing the ASN's source of its session
-- or key. Shared by both statements of take_snapshots (revision 0075; before, two copies).
CREATE FUNCTION ipintel.snapshot_classes(p_ips inet[], p_epochs date[], p_asns bigint[], p_asn_sources text[])
    RETURNS TABLE (ip inet, epoch date, asn bigint, ip_type text, ip_provider text, ip_type_source text,
                   rests_on_asn boolean)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT c.ip, c.day, c.asn, c.ip_type, c.ip_provider,
           CASE WHEN c.ip_class_basis ? 'list'
                THEN 'list:' || (c.ip_class_basis ->> 'list') || ':' || (c.ip_class_basis ->> 'snapshot')
                WHEN c.ip_type = 'bogon' THEN 'bogon'
                WHEN c.ip_class_basis ->> 'rule' IN ('routed', 'residential') THEN NULL
                ELSE coalesce(c.ip_type_source, 'none') END,
           c.ip_class_basis ->> 'rule' IN ('routed', 'residential')
    FROM ipintel.ip_classes(p_ips, p_epochs, p_asns, p_asn_sources) c;
END;
COMMENT ON FUNCTION ipintel.snapshot_classes(inet[], date[], bigint[], text[]) IS
    'The class of each (IP, epoch day, ASN) of the parallel arrays (ip_classes; p_asn_sources: where each ASN came from) as a snapshot takes it: ip_type, ip_provider and ip_type_source (list:<list>:<snapshot day>, bogon, the source that said it, none; NULL when the class rests on the ASN alone, rests_on_asn: routed or residential, whose source is the snapshot''s ASN source).';

-- A whole pass's keys and their values (snapshot_key_values), written and analyzed by
-- take_snapshots() and emptied before it returns (revision 0074). A table rather than a CTE so
-- that the planner has their statistics: a CTE's or function's column has none, a hash of it
-- is costed as if a tenth of its rows shared one bucket, and the planner hashed the 2M sessions
-- instead and wrote them in the keys' order (each page of the heap dirtied again for each IP on
-- it: 1.4M page writes for 111K pages). Only under the sessions' lock (one writer at a time).
CREATE UNLOGGED TABLE ipintel_staging.snapshot_keys (
    ip                    inet        NOT NULL,
    created_at            timestamptz,
    first_at              timestamptz,
    last_at               timestamptz,
    hard                  boolean     NOT NULL,
    all_ready             boolean,
    asn_ready             boolean,
    country_ready         boolean,
    scanner_ready         boolean,
    ip_type_ready         boolean,
    known_attacker_ready  boolean,
    asn                   bigint,
    asn_source            text,
    country               text,
    country_source        text,
    is_scanner            boolean,
    is_scanner_source     text,
    is_known_attacker     boolean,
    threatfeeds           text[],
    known_attacker_source text,
    ip_type               text,
    ip_type_source        text,
    ip_provider           text,
    document_id           bigint
);
COMMENT ON TABLE ipintel_staging.snapshot_keys IS
    'Scratch for take_snapshots(): the keys of a whole pass and their snapshot values (ipintel.snapshot_key_values), analyzed, then joined by hash to the sessions they fill; empty outside a pass.';

-- The incomplete sessions take_snapshots' per-session statement reads (revision 0084), one row
-- each, as it read snapshot_queue when the queue listed sessions: those of the keys of the IPs
-- p_ips, or of every queued key for a whole pass with dated data (then analyzed). Only under the
-- sessions' lock (one writer at a time); left as the last such statement left it.
CREATE UNLOGGED TABLE ipintel_staging.snapshot_sessions (
    session_id     text        NOT NULL,
    first_event_at timestamptz NOT NULL,
    source_ip      inet        NOT NULL,
    created_at     timestamptz NOT NULL,
    CONSTRAINT snapshot_sessions_pkey PRIMARY KEY (session_id)
);
COMMENT ON TABLE ipintel_staging.snapshot_sessions IS
    'Scratch for take_snapshots'' per-session statement: the incomplete sessions it reads (of the queued keys of some IPs, or of every queued key), one row each; refilled by each such statement.';

-- A whole pass's snapshot values, once per key rather than once per session (revision 0074): a
-- key is an IP, an ingest time (created_at: the sources' windows start there) and a run of
-- consecutive UTC days on which every range list has the same snapshot (class_epochs), with the
-- first and last first_event_at of its queued sessions. Without routing snapshots and dated
-- geolocation builds (take_snapshots asks for these keys only then), everything a session's
-- snapshot takes is the same for every session of its key, except the ASN history at the
-- session's time: a key whose sessions all fall in one ip_asn_history range, or in none, takes
-- one ASN; any other key (the IP's ASN changed among its sessions) is `hard`, and so are all the
-- keys of its IP, which take_snapshots leaves to the per-session statement (by IP). take_snapshots
-- then writes the sessions of the other keys in one pass over their months' heap in its own
-- order, each session joined by hash to its key: 2M sessions of 300K IPs, 300K keys (46 hard).
--
-- Per key, as take_snapshots' per-session statement works them out for each session (its todo):
-- the readiness of each field (awaited sources, snapshot_pending_sources), the values, the class
-- (snapshot_classes, for keys whose ip_type is ready) and the document (snapshot_documents). A document
-- is stored only for a key some session of which will be written (in_play): every key that
-- awaits nothing (its sessions are all completed), and a key that has some field ready when one
-- of its incomplete sessions still lacks that field: since revision 0084 one the queue's key
-- does not know all of them have (snapshot_queue.known; at 0075 to 0083 a semi-join, one read of
-- the months' waiting sessions; at 0074 an index probe by IP per such key). A key with nothing
-- ready, or whose sessions all have their ready fields already, writes nothing.
--
-- The same for the new sessions of an ingest batch (p_batch_id, of the enriched IPs p_ips;
-- revision 0080): merge_cowrie_events inserts them with their snapshot rather than inserting,
-- queueing, updating and dequeueing them (take_snapshots of the chunk's IPs, a per-session
-- statement: about 130 ms of a chunk of 4,000 sessions, most of its merge). Their key's ingest
-- time is now() (the merge's transaction: the sessions' created_at), their IPs are not queued
-- (the awaited sources are read from awaited_sources), and they have no field yet (a key with a
-- field ready is in play).
CREATE FUNCTION ipintel.snapshot_key_values(p_first timestamptz, p_last timestamptz, p_batch_id bigint DEFAULT NULL,
                                             p_ips inet[] DEFAULT NULL)
    RETURNS TABLE (ip inet, created_at timestamptz, first_at timestamptz, last_at timestamptz, hard boolean,
                   all_ready boolean, asn_ready boolean, country_ready boolean, scanner_ready boolean,
                   ip_type_ready boolean, known_attacker_ready boolean,
                   asn bigint, asn_source text, country text, country_source text, is_scanner boolean,
                   is_scanner_source text, is_known_attacker boolean, threatfeeds text[], known_attacker_source text,
                   ip_type text, ip_type_source text, ip_provider text, document_id bigint)
    LANGUAGE plpgsql
    ROWS 100000
    SET search_path = ''
    -- planned with the arguments' values each call (revision 0080): a pass reads the queue, a
    -- batch the few IPs p_ips by their keys; the branch not taken is folded away
    SET plan_cache_mode = force_custom_plan
    -- Set by take_snapshots for a pass, and needed as much for an ingest batch (revision 0080):
    -- with nested loops costed out (below), every statement here and in the functions it calls
    -- looked expensive enough to compile (an ingest chunk of 4,000 sessions: seconds of JIT).
    SET jit = off
    -- Every join here is of sets worked out once (keys, IPs, answers, classes), each estimated
    -- from CTEs or functions without statistics: a nested loop over one of them is the quadratic
    -- shape (40,000 sessions: the keys looped over the classes). The probes that must be nested
    -- are the only way to join (ip_classes' range probes, which have no other plan).
    SET enable_nestloop = off
    -- At 0074 in_play probed each key's sessions by the IP's index, and a bitmap of the BRIN index
    -- on first_event_at (the key's days) read every session of those days for each key (40,000
    -- sessions over 2 days: 20,000 rows a probe). Since 0084 in_play reads no session; the
    -- setting stays for the sessions of a key over several runs of days, read by its key.
    SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
    IF p_batch_id IS NOT NULL THEN
        -- An ingest batch's keys are few (an IP's sessions of one chunk), and the rows they need
        -- are read by their keys: each IP's inventory row, answers, history, document and class
        -- probed by index, as take_snapshots(ips) does. With nested loops costed out every chunk
        -- hashed whole tables (300,000 enriched IPs: enrichment_state, ip_asn_history and
        -- ip_inventory read through for each chunk, slower than the per-session statement this
        -- replaces). For this call only (the SET clauses above are restored at its end).
        PERFORM set_config('enable_nestloop', 'on', true);
        PERFORM set_config('enable_bitmapscan', 'on', true);
    END IF;
    RETURN QUERY
    WITH sessions AS NOT MATERIALIZED (
        -- the sessions to take: the queued keys' incomplete sessions (p_batch_id NULL: a pass; read
        -- only for a key over several runs of days, below), or the new sessions of the
        -- IPs p_ips in an ingest batch not inserted yet (revision 0080: their snapshot is written by
        -- the insert itself, with created_at the merge's transaction time). One-time filters: only
        -- one branch is read.
        SELECT s.source_ip, s.created_at, s.first_event_at
        FROM ipintel.snapshot_queue q
        JOIN ipintel.session_summaries s
          ON s.source_ip = q.source_ip AND s.created_at = q.created_at AND s.first_event_at BETWEEN q.first_at AND q.last_at
        WHERE p_batch_id IS NULL AND s.first_event_at BETWEEN p_first AND p_last AND s.snapshot_complete_at IS NULL
        UNION ALL
        SELECT m.source_ip, now(), m.first_event_at
        FROM ipintel_staging.cowrie_sessions m
        WHERE p_batch_id IS NOT NULL AND m.batch_id = p_batch_id AND m.merged_first_event_at IS NULL
          AND m.source_ip = ANY (p_ips)
    ), days AS MATERIALIZED (
        -- each day of [p_first, p_last] with its epoch (class_epochs) and the first day of its run
        -- (the consecutive days before it with the same epoch)
        SELECT d.day, d.epoch, min(d.day) OVER (PARTITION BY d.run) AS run_from
        FROM (SELECT e.day, e.epoch,
                     count(*) FILTER (WHERE e.starts) OVER (ORDER BY e.day) AS run
              FROM (SELECT e.day, e.epoch, e.epoch IS DISTINCT FROM lag(e.epoch) OVER (ORDER BY e.day) AS starts
                    FROM ipintel.class_epochs(ARRAY(SELECT g.day::date
                                                    FROM generate_series((p_first AT TIME ZONE 'UTC')::date,
                                                                         (p_last AT TIME ZONE 'UTC')::date,
                                                                         interval '1 day') AS g(day))) e) e) d
    ), pairs AS MATERIALIZED (
        -- each IP and ingest time of the sessions once, with their first and last time and the
        -- fields all of them have (known): a pass's are the queue's keys as they are (revision
        -- 0084; grouped from a row per queued session before, 2M sessions: about 1 s), a batch's
        -- new sessions have none
        SELECT q.source_ip AS ip, q.created_at, q.first_at, q.last_at, q.known
        FROM ipintel.snapshot_queue q
        WHERE p_batch_id IS NULL
        UNION ALL
        SELECT q.source_ip, q.created_at, min(q.first_event_at), max(q.first_event_at), 0::smallint
        FROM sessions q
        WHERE p_batch_id IS NOT NULL
        GROUP BY q.source_ip, q.created_at
    ), spans AS MATERIALIZED (
        SELECT p.ip, p.created_at, p.first_at, p.last_at, p.known, f.epoch, f.run_from, f.run_from = l.run_from AS one_run
        FROM pairs p
        JOIN days f ON f.day = (p.first_at AT TIME ZONE 'UTC')::date
        JOIN days l ON l.day = (p.last_at AT TIME ZONE 'UTC')::date
    ), keys AS MATERIALIZED (
        -- A pair whose sessions fall in one run of days is one key (with no range list snapshot
        -- among the days, every pair); one over several runs is a key per run, grouped again from
        -- its sessions (grouping every queued session by its day's run: 2M sessions, 1.6 s more
        -- than by pair).
        SELECT s.ip, s.created_at, s.epoch, s.run_from, s.first_at, s.last_at, s.known
        FROM spans s
        WHERE s.one_run
        UNION ALL
        SELECT q.source_ip, q.created_at, d.epoch, d.run_from, min(q.first_event_at), max(q.first_event_at), s.known
        FROM sessions q
        JOIN spans s ON s.ip = q.source_ip AND s.created_at = q.created_at AND NOT s.one_run
        JOIN days d ON d.day = (q.first_event_at AT TIME ZONE 'UTC')::date
        -- a one-time filter: nearly always no pair spans several runs, and then nothing is read (an
        -- ingest batch, nested loops allowed, compared each session with each pair for nothing:
        -- 27 ms of a 41 ms chunk)
        WHERE EXISTS (SELECT 1 FROM spans x WHERE NOT x.one_run)
        GROUP BY q.source_ip, q.created_at, d.epoch, d.run_from, s.known
    ), history AS MATERIALIZED (
        -- the ASN history ranges among a key's sessions: one that holds them all, or several
        SELECT k.ip, k.created_at, k.run_from, count(*) AS ranges, min(h.asn) AS asn, min(h.source) AS source,
               bool_and(h.valid @> tstzrange(k.first_at, k.last_at, '[]')) AS holds_all
        FROM keys k
        JOIN ipintel.ip_asn_history h ON h.ip = k.ip AND h.valid && tstzrange(k.first_at, k.last_at, '[]')
        GROUP BY k.ip, k.created_at, k.run_from
    ), hard AS MATERIALIZED (
        SELECT DISTINCT h.ip FROM history h WHERE h.ranges > 1 OR NOT h.holds_all
    ), waits AS (
        -- the awaited sources by the rule of snapshot_waits, once per IP and ingest time (as
        -- take_snapshots' per-session statement works them out): of the queued IPs for a pass, of
        -- the IPs p_ips for a batch (not queued yet)
        SELECT c.ip, c.created_at,
               min(p.asn_rank) AS asn_wait_rank, min(p.country_rank) AS country_wait_rank,
               min(p.is_scanner_rank) AS is_scanner_wait_rank, min(p.ip_type_rank) AS ip_type_wait_rank,
               min(p.is_known_attacker_rank) AS is_known_attacker_wait_rank
        FROM (SELECT p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank,
                     p.ip_type_rank, p.is_known_attacker_rank
              FROM ipintel.snapshot_pending_sources p
              WHERE p_batch_id IS NULL
              GROUP BY p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank,
                       p.ip_type_rank, p.is_known_attacker_rank
              UNION ALL
              SELECT p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank,
                     p.ip_type_rank, p.is_known_attacker_rank
              FROM ipintel.awaited_sources p
              WHERE p_batch_id IS NOT NULL AND p.ip = ANY (p_ips)
              GROUP BY p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank,
                       p.ip_type_rank, p.is_known_attacker_rank) p
        JOIN pairs c ON c.ip = p.ip
        WHERE c.created_at + p.snapshot_window > now()
        GROUP BY c.ip, c.created_at
    ), v AS MATERIALIZED (
        SELECT k.ip, k.created_at, k.run_from, k.epoch, k.first_at, k.last_at, k.known,
               r.all_ready, r.asn_ready, r.country_ready, r.scanner_ready, r.ip_type_ready, r.known_attacker_ready,
               -- as take_snapshots' todo with no routing snapshot and no dated build: the ASN of
               -- the history range at the sessions' time, else the current one
               CASE WHEN h.ip IS NOT NULL THEN h.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon' WHEN h.ip IS NOT NULL THEN h.source || ':history'
                    ELSE coalesce(i.current_asn_source || ':current', 'none') END AS asn_source,
               i.geo_country AS country,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.geo_country_source, 'none') END AS country_source,
               i.is_scanner,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_scanner_source, 'none') END AS is_scanner_source,
               CASE WHEN h.ip IS NOT NULL THEN h.source ELSE i.current_asn_source END AS class_asn_source,
               i.is_known_attacker, i.threatfeeds,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_known_attacker_source, 'none') END
                   AS known_attacker_source
        FROM keys k
        JOIN ipintel.ip_inventory i ON i.ip = k.ip
        LEFT JOIN history h ON h.ip = k.ip AND h.created_at = k.created_at AND h.run_from = k.run_from
        LEFT JOIN waits w ON w.ip = k.ip AND w.created_at = k.created_at
        LEFT JOIN ipintel.enrichment_policy ka ON ka.source = i.current_asn_source
        LEFT JOIN ipintel.enrichment_policy kc ON kc.source = i.geo_country_source
        LEFT JOIN ipintel.enrichment_policy ks ON ks.source = i.is_scanner_source
        LEFT JOIN ipintel.enrichment_policy kt ON kt.source = i.ip_type_source
        LEFT JOIN ipintel.enrichment_policy kk ON kk.source = i.is_known_attacker_source
        CROSS JOIN LATERAL (
            SELECT w.ip IS NULL AS all_ready,
                   w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false) AS asn_ready,
                   w.country_wait_rank IS NULL OR coalesce(kc.country_rank < w.country_wait_rank, false)
                       AS country_ready,
                   w.is_scanner_wait_rank IS NULL OR coalesce(ks.is_scanner_rank < w.is_scanner_wait_rank, false)
                       AS scanner_ready,
                   (w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false))
                   AND (w.ip_type_wait_rank IS NULL OR coalesce(kt.ip_type_rank < w.ip_type_wait_rank, false))
                       AS ip_type_ready,
                   w.is_known_attacker_wait_rank IS NULL
                   OR coalesce(kk.is_known_attacker_rank < w.is_known_attacker_wait_rank, false)
                       AS known_attacker_ready) r
        WHERE NOT EXISTS (SELECT 1 FROM hard x WHERE x.ip = k.ip)
    ), in_play AS MATERIALIZED (
        -- The keys some session of which take_snapshots will write (see above): those that await
        -- nothing, and those with a field ready that not all of their incomplete sessions have:
        -- one not among the fields the key knows all of them have (revision 0084; before, a
        -- semi-join that read the queued months' sessions, 2M sessions: about 1.7 s). A batch's new
        -- sessions have no field yet (known 0): every key with a field ready.
        SELECT v.ip, v.created_at, v.run_from, v.epoch, v.asn, v.class_asn_source, v.ip_type_ready
        FROM v
        WHERE v.all_ready
           OR ipintel.snapshot_field_bits(v.asn_ready, v.country_ready, v.scanner_ready, v.ip_type_ready,
                                          v.known_attacker_ready) & ~ v.known <> 0
    ), class_keys AS MATERIALIZED (
        -- each (IP, epoch, ASN) whose ip_type is ready, once, with one of the ASN's sources
        SELECT array_agg(c.ip) AS ips, array_agg(c.epoch) AS days, array_agg(c.asn) AS asns,
               array_agg(c.class_asn_source) AS asn_sources
        FROM (SELECT p.ip, p.epoch, p.asn, min(p.class_asn_source) AS class_asn_source
              FROM in_play p
              WHERE p.ip_type_ready
              GROUP BY p.ip, p.epoch, p.asn) c
    ), classes AS MATERIALIZED (
        -- the class as a snapshot takes it; for a class resting on the ASN alone (rests_on_asn)
        -- the key's ASN source, below
        SELECT c.*
        FROM ipintel.snapshot_classes((SELECT k.ips FROM class_keys k), (SELECT k.days FROM class_keys k),
                                      (SELECT k.asns FROM class_keys k), (SELECT k.asn_sources FROM class_keys k)) c
    ), documents AS MATERIALIZED (
        SELECT x.ip, min(x.document_id) AS document_id
        FROM ipintel.snapshot_documents(ARRAY(SELECT DISTINCT p.ip FROM in_play p)) x
        GROUP BY x.ip
    )
    SELECT v.ip, v.created_at, v.first_at, v.last_at, false,
           v.all_ready, v.asn_ready, v.country_ready, v.scanner_ready, v.ip_type_ready, v.known_attacker_ready,
           v.asn, v.asn_source, v.country, v.country_source, v.is_scanner, v.is_scanner_source,
           v.is_known_attacker, v.threatfeeds, v.known_attacker_source,
           c.ip_type, CASE WHEN c.rests_on_asn THEN coalesce(v.class_asn_source, 'none') ELSE c.ip_type_source END,
           c.ip_provider, d.document_id
    FROM v
    JOIN in_play p ON p.ip = v.ip AND p.created_at = v.created_at AND p.run_from = v.run_from
    JOIN documents d ON d.ip = v.ip
    LEFT JOIN classes c ON c.ip = v.ip AND c.epoch = v.epoch AND coalesce(c.asn, -1) = coalesce(v.asn, -1)
    UNION ALL
    SELECT x.ip, NULL, NULL, NULL, true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL
    FROM hard x;
END;
$$;
COMMENT ON FUNCTION ipintel.snapshot_key_values(timestamptz, timestamptz, bigint, inet[]) IS
    'For take_snapshots() without routing snapshots or dated geolocation builds: the snapshot values of each key of the queued sessions whose first_event_at is in [p_first, p_last] (or, p_batch_id given, of the new sessions of the IPs p_ips in that staged batch of Cowrie sessions, which merge_cowrie_events then inserts with their snapshot; created_at is now()) (an IP, an ingest time created_at, and a run of days on which the range lists keep their snapshots; first_at and last_at bound its sessions'' first_event_at) that some session of it will take: the readiness of each field, the values, the class and the document (stored first when new). hard rows (values NULL) name the IPs whose ASN history changes among the sessions of a key: those are left to the per-session statement.';

-- Whether snapshots are asked of dated data: routing history or a dated geolocation build, whose
-- answers are per session and day. Then take_snapshots works per session (never per key), and
-- merge_cowrie_events leaves a chunk's snapshots to it rather than inserting them (revision 0080):
-- one test for both, so the two never choose differently.
CREATE FUNCTION ipintel.snapshots_are_dated()
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = ''
RETURN EXISTS (SELECT 1 FROM ipintel.routing_snapshots) OR EXISTS (SELECT 1 FROM ipintel.geo_builds);
COMMENT ON FUNCTION ipintel.snapshots_are_dated() IS
    'True once a routing snapshot or a dated geolocation build is loaded: snapshots then take per-session, per-day answers (take_snapshots per session; merge_cowrie_events does not insert a chunk''s snapshots itself).';

-- p_ips NULL: every incomplete session; else the incomplete sessions of those IPs only (the
-- ingest merge, for the IPs of its chunk that are already enriched).
CREATE FUNCTION ipintel.take_snapshots(p_ips inet[])
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
    -- The update's rows meet their classes and documents in hash joins (revision 0059). Merge
    -- joins sorted every row by IP first, then by place again (2M sessions: two external sorts
    -- of 325 and 385 MB, about a tenth of the run).
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
    v_queued text[];
    v_from timestamptz;
    v_until timestamptz;
    v_dated boolean;
    v_hard inet[];
BEGIN
    -- The one writer of sessions at a time (revision 0068): the lock every merge of Cowrie events
    -- takes first (merge_cowrie_events, which holds it already when it calls this for a chunk),
    -- and redo_snapshots. Nothing else changes a session while it is held, so the sessions read
    -- below are written from what was read, with no row lock: locking each one first (FOR NO KEY
    -- UPDATE ... SKIP LOCKED, revisions 0046 to 0067) wrote every row twice, the lock then the
    -- snapshot (2M sessions: 4 to 5 s of about 47 on clones). A pass waits for the ingest chunk
    -- in flight (one chunk: a second or so), and ingest waits for a pass; each takes this lock
    -- before any row, so neither can hold a row the other waits for: no deadlock.
    PERFORM pg_advisory_xact_lock(hashtextextended('ipintel.session_summaries', 0));

    -- The incomplete sessions are those of snapshot_queue's keys (revisions 0064, 0084). Their
    -- first and last first_event_at bound every read of session_summaries below: planned with
    -- these values (force_custom_plan), each statement reads only the months that hold a queued
    -- session. With nothing queued there is nothing to do. The per-session statement reads them
    -- staged one row each (ipintel_staging.snapshot_sessions, below), as it read the queue
    -- before the queue was kept by key.
    --
    -- The sessions of some IPs (an ingest chunk's) are planned as a few thousand rows whatever
    -- the statistics say (revision 0073). Estimated at a few (the quadratic plans of an ingest
    -- chunk: a join over the chunk's awaited sources or dated builds worked out again for each
    -- session), every estimate after them was off. Three filters gave such estimates, each for
    -- statistics that are stale in the daily steady state:
    -- * the queue's source_ip: the statistics of the last ANALYZE that saw rows (ANALYZE of an
    --   empty table keeps the old ones), and the queue is empty after every enrich and every
    --   chunk whose IPs were all enriched. Those of a day's backlog (10^5 IPs) made a chunk's
    --   3,000 sessions of 300 IPs an estimate of 7. Instead: the staged sessions' ids (v_queued),
    --   the staging table's key, which any statistics take for one row per id;
    -- * first_event_at BETWEEN v_first AND v_last: a chunk's sessions are the newest, past the
    --   end of the month's histogram (its partition is analyzed when a tenth of it changed), an
    --   estimate of none. Instead: the whole months (v_from, v_until), which prune the same
    --   partitions and hold their every row;
    -- * snapshot_complete_at IS NULL: the month's share of incomplete sessions when it was
    --   analyzed, none after an enrich. Left out of the reads for a chunk: the staged sessions
    --   are the incomplete ones (found by IP, one probe each), and the update keeps the filter.
    -- 3,000 sessions of 300 IPs, statistics of an analyzed backlog: 0.93 s against 0.19 s with
    -- fresh ones; with GreyNoise awaited for half of the IPs, 10.9 s.
    IF p_ips IS NULL THEN
        SELECT min(q.first_at), max(q.last_at) INTO v_first, v_last
        FROM ipintel.snapshot_queue q;
        v_from := v_first;
        v_until := v_last;
    ELSE
        -- The incomplete sessions of the IPs' keys, staged: each IP's sessions between its keys'
        -- first and last time probed once by the IP's index (OFFSET 0: one probe per IP, whatever
        -- the queue's statistics say), then kept if a key of it covers them. Once per IP, not
        -- per key: an IP that a chunk after chunk brings keeps a key per chunk until its sources
        -- answer, and a probe per key read its sessions again for each (an IP with 100,000
        -- sessions in the month and two keys: 0.3 s a chunk against 0.03 s by the session queue
        -- of 0083; about one read of them by IP).
        TRUNCATE ipintel_staging.snapshot_sessions;
        INSERT INTO ipintel_staging.snapshot_sessions (session_id, first_event_at, source_ip, created_at)
        SELECT s.session_id, s.first_event_at, s.source_ip, s.created_at
        FROM (SELECT q.source_ip, min(q.first_at) AS first_at, max(q.last_at) AS last_at
              FROM ipintel.snapshot_queue q
              WHERE q.source_ip = ANY (p_ips)
              GROUP BY q.source_ip) i
        CROSS JOIN LATERAL (SELECT s.session_id, s.first_event_at, s.source_ip, s.created_at
                            FROM ipintel.session_summaries s
                            WHERE s.source_ip = i.source_ip AND s.first_event_at BETWEEN i.first_at AND i.last_at
                              AND s.snapshot_complete_at IS NULL
                            OFFSET 0) s
        WHERE EXISTS (SELECT 1 FROM ipintel.snapshot_queue q
                      WHERE q.source_ip = s.source_ip AND q.created_at = s.created_at
                        AND s.first_event_at BETWEEN q.first_at AND q.last_at);
        SELECT min(q.first_event_at), max(q.first_event_at), array_agg(q.session_id) INTO v_first, v_last, v_queued
        FROM ipintel_staging.snapshot_sessions q;
        v_from := date_trunc('month', v_first, 'UTC');
        v_until := date_trunc('month', v_last, 'UTC') + interval '1 month' - interval '1 microsecond';
    END IF;
    IF v_first IS NULL THEN
        RETURN 0;
    END IF;
    v_dated := ipintel.snapshots_are_dated();

    -- A whole pass without routing snapshots or dated geolocation builds (revision 0074): the
    -- values are worked out once per key (snapshot_key_values: an IP, an ingest time and a run
    -- of days), and the sessions are written in one pass over their months in the order of the
    -- heap, each joined by hash to its key, as a plain UPDATE ... FROM would. The per-session
    -- statement below read every queued session, joined it to the queue, sorted the rows to
    -- write by heap place and joined them to the sessions again (2M sessions of 300K IPs on a
    -- clone: 38.4 s, against 25.9 s this way; the pass after GreyNoise answers half of them 28.4
    -- against 20.8 s). The keys whose ASN history changes among their sessions (hard) are left to
    -- it, by IP: take_snapshots(those IPs).
    IF p_ips IS NULL AND NOT v_dated THEN
        -- the whole months that hold a queued session: estimated at all their rows whatever their
        -- histograms, so the keys are hashed, never the sessions
        v_from := date_trunc('month', v_first, 'UTC');
        v_until := date_trunc('month', v_last, 'UTC') + interval '1 month' - interval '1 microsecond';
        v_days_flag := coalesce(current_setting('ipintel.attribution_days_queued', true), '');
        PERFORM set_config('ipintel.attribution_days_queued', 'on', true);
        TRUNCATE ipintel_staging.snapshot_keys;
        INSERT INTO ipintel_staging.snapshot_keys SELECT * FROM ipintel.snapshot_key_values(v_first, v_last);
        ANALYZE ipintel_staging.snapshot_keys;
        v_changed := 0;
        -- Nothing to fill (every key waits), nothing read (as revision 0069 below).
        IF EXISTS (SELECT 1 FROM ipintel_staging.snapshot_keys v WHERE NOT v.hard) THEN
            WITH filled AS (
                -- A known field is kept, as below; s.* are the fields as they are (the sessions' lock).
                UPDATE ipintel.session_summaries s
                SET snapshot_asn = CASE WHEN s.snapshot_asn_source IS NULL AND v.asn_ready THEN v.asn ELSE s.snapshot_asn END,
                    snapshot_asn_source = CASE WHEN s.snapshot_asn_source IS NULL AND v.asn_ready THEN v.asn_source
                                               ELSE s.snapshot_asn_source END,
                    snapshot_country = CASE WHEN s.snapshot_country_source IS NULL AND v.country_ready THEN v.country
                                            ELSE s.snapshot_country END,
                    snapshot_country_source = CASE WHEN s.snapshot_country_source IS NULL AND v.country_ready
                                                   THEN v.country_source ELSE s.snapshot_country_source END,
                    snapshot_is_scanner = CASE WHEN s.snapshot_is_scanner_source IS NULL AND v.scanner_ready THEN v.is_scanner
                                               ELSE s.snapshot_is_scanner END,
                    snapshot_is_scanner_source = CASE WHEN s.snapshot_is_scanner_source IS NULL AND v.scanner_ready
                                                      THEN v.is_scanner_source ELSE s.snapshot_is_scanner_source END,
                    snapshot_ip_type = CASE WHEN s.snapshot_ip_type_source IS NULL AND v.ip_type_ready THEN v.ip_type
                                            ELSE s.snapshot_ip_type END,
                    snapshot_ip_type_source = CASE WHEN s.snapshot_ip_type_source IS NULL AND v.ip_type_ready
                                                   THEN v.ip_type_source ELSE s.snapshot_ip_type_source END,
                    snapshot_is_known_attacker = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND v.known_attacker_ready
                                                      THEN v.is_known_attacker ELSE s.snapshot_is_known_attacker END,
                    snapshot_threatfeeds = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND v.known_attacker_ready
                                                THEN v.threatfeeds ELSE s.snapshot_threatfeeds END,
                    snapshot_is_known_attacker_source = CASE WHEN s.snapshot_is_known_attacker_source IS NULL
                                                                  AND v.known_attacker_ready
                                                             THEN v.known_attacker_source
                                                             ELSE s.snapshot_is_known_attacker_source END,
                    snapshot_ip_provider = CASE WHEN s.snapshot_ip_type_source IS NULL AND v.ip_type_ready THEN v.ip_provider
                                                ELSE s.snapshot_ip_provider END,
                    snapshot_document = v.document_id,
                    snapshot_at = coalesce(s.snapshot_at, now()),
                    snapshot_complete_at = CASE WHEN v.all_ready THEN now() END,
                    updated_at = now()
                FROM ipintel_staging.snapshot_keys v
                WHERE NOT v.hard
                  AND s.source_ip = v.ip AND s.created_at = v.created_at
                  AND s.first_event_at BETWEEN v.first_at AND v.last_at
                  AND s.first_event_at BETWEEN v_from AND v_until
                  -- s.snapshot_complete_at IS NULL, as a condition of the join (v.hard is false here):
                  -- on the sessions alone it would be estimated from the months' statistics, which
                  -- after an enrich count no incomplete session, and the planner would hash the
                  -- sessions and write them in the keys' order (a page dirtied again for each IP on it)
                  AND (s.snapshot_complete_at IS NULL OR v.hard)
                  AND ipintel.snapshot_has_field_to_fill(v.all_ready, v.asn_ready, v.country_ready, v.scanner_ready,
                                                         v.ip_type_ready, v.known_attacker_ready,
                                                         s.snapshot_asn_source, s.snapshot_country_source,
                                                         s.snapshot_is_scanner_source, s.snapshot_ip_type_source,
                                                         s.snapshot_is_known_attacker_source)
                RETURNING (s.first_event_at AT TIME ZONE 'UTC')::date AS day
            ), days_queued AS (
                INSERT INTO ipintel.attribution_dirty_days (day)
                SELECT DISTINCT f.day FROM filled f)
            SELECT count(*) INTO v_changed FROM filled;
            -- The queue by key (revision 0084): a key that awaits nothing is complete now, every
            -- incomplete session of it written above; the other keys written have every field
            -- that was ready in each of their incomplete sessions (written, or had it already).
            -- Per session before: a delete of each completed session found through the rows
            -- the update returned (2M sessions: about 3 s of the pass).
            DELETE FROM ipintel.snapshot_queue q
            USING ipintel_staging.snapshot_keys v
            WHERE NOT v.hard AND v.all_ready AND q.source_ip = v.ip AND q.created_at = v.created_at;
            UPDATE ipintel.snapshot_queue q SET known = q.known | k.known
            FROM (SELECT v.ip, v.created_at,
                         bit_and(ipintel.snapshot_field_bits(v.asn_ready, v.country_ready, v.scanner_ready,
                                                             v.ip_type_ready, v.known_attacker_ready)) AS known
                  FROM ipintel_staging.snapshot_keys v
                  WHERE NOT v.hard AND NOT v.all_ready
                  GROUP BY v.ip, v.created_at) k
            WHERE q.source_ip = k.ip AND q.created_at = k.created_at AND k.known & ~ q.known <> 0;
        END IF;
        SELECT array_agg(v.ip) INTO v_hard FROM ipintel_staging.snapshot_keys v WHERE v.hard;
        TRUNCATE ipintel_staging.snapshot_keys;
        PERFORM set_config('ipintel.attribution_days_queued', v_days_flag, true);
        IF v_hard IS NOT NULL THEN
            v_changed := v_changed + ipintel.take_snapshots(v_hard);
        END IF;
        RETURN v_changed;
    END IF;

    IF p_ips IS NULL THEN
        -- A whole pass with dated data: every incomplete session of the queued keys, staged and
        -- analyzed (p_ips: staged above).
        TRUNCATE ipintel_staging.snapshot_sessions;
        INSERT INTO ipintel_staging.snapshot_sessions (session_id, first_event_at, source_ip, created_at)
        SELECT s.session_id, s.first_event_at, s.source_ip, s.created_at
        FROM ipintel.snapshot_queue q
        JOIN ipintel.session_summaries s
          ON s.source_ip = q.source_ip AND s.created_at = q.created_at AND s.first_event_at BETWEEN q.first_at AND q.last_at
        WHERE s.first_event_at BETWEEN v_from AND v_until AND s.snapshot_complete_at IS NULL;
        ANALYZE ipintel_staging.snapshot_sessions;
    END IF;

    -- Routing history and the dated geolocation builds are asked only about sessions whose ASN
    -- or country is still unknown, once per IP and day; and only when there is one routing
    -- snapshot or geolocation build to ask (revision 0066): without them, as on an install that
    -- never loaded one, routing_asns and geo_build_facts answer nothing, and finding the pairs
    -- read every queued session once more for nothing (2M sessions: 4.3 to 5 s of about 60).
    IF v_dated THEN
        SELECT array_agg(x.ip), array_agg(x.day) INTO v_ips, v_days
        FROM (SELECT DISTINCT s.source_ip AS ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day
              FROM ipintel_staging.snapshot_sessions q
              -- by session_id alone: see todo below
              JOIN ipintel.session_summaries s ON s.session_id = q.session_id
              WHERE (v_queued IS NULL OR q.session_id = ANY (v_queued))
                AND s.first_event_at BETWEEN v_from AND v_until
                AND (v_queued IS NOT NULL OR s.snapshot_complete_at IS NULL)
                AND (s.snapshot_asn_source IS NULL OR s.snapshot_country_source IS NULL)) x;
    END IF;

    -- The days this statement updates are queued by the statement itself (CTE days_queued;
    -- revision 0065); the flag tells the update trigger so, which otherwise queues every day. On
    -- for this statement only (an error undoes it with the transaction).
    v_days_flag := coalesce(current_setting('ipintel.attribution_days_queued', true), '');
    PERFORM set_config('ipintel.attribution_days_queued', 'on', true);
    WITH todo AS (
        SELECT s.session_id, s.first_event_at, s.source_ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day,
               -- where the session is in the heap (the update goes in this order) and its snapshot
               -- fields as read here (no other writer runs: the lock above): the update writes
               -- from these, so its join to the sessions carries their keys alone (revision 0057)
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
        -- The incomplete sessions (of p_ips: by their ids, v_queued): those staged, read in
        -- the months that hold them (v_from, v_until), by session_id alone, which names one
        -- session (verify_sessions).
        -- By both columns of the key the planner takes the two equalities for independent and
        -- expects one row where there are thousands, and plans every join after it for that:
        -- 2M sessions, index probes of ip_inventory per session and hashes spilled to disk; an
        -- ingest chunk's 2,670 sessions (revision 0065), nested loops comparing every session with
        -- every IP of the chunk and every IP's awaited sources, 10 to 14 s a chunk instead of
        -- well under one. The few of p_ips cost one probe of each month of [v_from, v_until]
        -- (the months of those IPs' queued sessions: one or two but after a backlog).
        FROM ipintel_staging.snapshot_sessions q
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
                   -- the IP's incomplete sessions, with their created_at, in the queue alone: each
                   -- (IP, created_at) once before the join (revision 0067), not each session (2M
                   -- queued sessions: 2.5 s for this subquery, 1.7 s with each ingest time once)
                   JOIN (SELECT DISTINCT c.source_ip, c.created_at FROM ipintel_staging.snapshot_sessions c
                         WHERE v_queued IS NULL OR c.session_id = ANY (v_queued)) c ON c.source_ip = p.ip
                   WHERE c.created_at + p.snapshot_window > now()
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
        WHERE (v_queued IS NOT NULL OR s.snapshot_complete_at IS NULL)
          AND (v_queued IS NULL OR q.session_id = ANY (v_queued))
          AND s.first_event_at BETWEEN v_from AND v_until
          AND ipintel.snapshot_has_field_to_fill(r.all_ready, r.asn_ready, r.country_ready, r.scanner_ready,
                                                 r.ip_type_ready, r.known_attacker_ready,
                                                 s.snapshot_asn_source, s.snapshot_country_source,
                                                 s.snapshot_is_scanner_source, s.snapshot_ip_type_source,
                                                 s.snapshot_is_known_attacker_source)
    ), epochs AS MATERIALIZED (
        -- Each day from the first queued session's (of p_ips) to the last's, with its epoch
        -- (class_epochs): the days on which every range list has the same snapshot classify alike.
        SELECT e.day, e.epoch
        FROM ipintel.class_epochs(ARRAY(SELECT generate_series((v_first AT TIME ZONE 'UTC')::date,
                                                               (v_last AT TIME ZONE 'UTC')::date, interval '1 day')::date)) e
    ), class_keys AS MATERIALIZED (
        -- Each (IP, epoch, ASN) of the sessions whose ip_type is filled now, once (revision 0070;
        -- before, each (IP, day, ASN, source): 2M sessions of 200K IPs over 31 days, 1M keys
        -- where one epoch holds 200K), with one of the ASN's sources (the class's own source is
        -- the session's, in the update). The four arrays are built by one aggregate, so they stay
        -- aligned without sorting.
        SELECT array_agg(k.source_ip) AS ips, array_agg(k.epoch) AS days, array_agg(k.asn) AS asns,
               array_agg(k.class_asn_source) AS asn_sources
        FROM (SELECT t.source_ip, e.epoch, t.asn, min(t.class_asn_source) AS class_asn_source
              FROM todo t JOIN epochs e ON e.day = t.day
              WHERE t.ip_type_ready AND t.kept_ip_type_source IS NULL
              GROUP BY t.source_ip, e.epoch, t.asn) k
    ), classes AS MATERIALIZED (
        -- ip_type and ip_provider as of the session's day (issue 12): the range lists of that day
        -- (of its epoch) and the snapshot's ASN, weighed with what the sources said (ip_classes).
        -- One call for them all (snapshot_classes: with the class's source, once per key; for a
        -- class resting on the ASN alone the ASN's source, which is the session's, in the update).
        SELECT c.*
        FROM ipintel.snapshot_classes((SELECT k.ips FROM class_keys k), (SELECT k.days FROM class_keys k),
                                      (SELECT k.asns FROM class_keys k), (SELECT k.asn_sources FROM class_keys k)) c
    ), document_ids AS MATERIALIZED (
        -- Each IP's document as it is now, stored once (snapshot_documents: joined by hash).
        SELECT x.ip, x.document_id
        FROM ipintel.snapshot_documents(ARRAY(SELECT DISTINCT t.source_ip FROM todo t)) x
    ), filled AS (
        -- A known field is kept (t.kept_*: the session's fields as todo read them, which no
        -- other transaction can change while this one holds the sessions' lock).
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
            -- the class's source (classes); for routed and residential, the session's ASN's
            snapshot_ip_type_source = CASE WHEN t.kept_ip_type_source IS NULL AND t.ip_type_ready
                                           THEN CASE WHEN t.class_rests_on_asn THEN coalesce(t.class_asn_source, 'none')
                                                     ELSE t.class_ip_type_source END
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
        -- order of the heap (revision 0057): in the order of the joins above (by IP), a month
        -- larger than shared_buffers had each page read, dirtied and written back many times (2M
        -- sessions: 2.3M page writes for a heap of 111K pages, 45 s).
        FROM (SELECT t.*, x.document_id, c.ip_type AS class_ip_type, c.rests_on_asn AS class_rests_on_asn,
                     c.ip_type_source AS class_ip_type_source, c.ip_provider AS class_ip_provider
              FROM todo t
              -- grouped by ip, which the planner then knows to be unique here: joined to the CTE
              -- as it is, the estimate multiplied todo's rows by its (10^5 declared, 200 distinct
              -- assumed: 500 times), and a few thousand sessions to fill were planned as a million,
              -- a hash of every incomplete session of their months rather than a probe each
              JOIN (SELECT d.ip, min(d.document_id) AS document_id FROM document_ids d GROUP BY d.ip) x
                ON x.ip = t.source_ip
              JOIN epochs e ON e.day = t.day
              LEFT JOIN classes c ON c.ip = t.source_ip AND c.epoch = e.epoch AND coalesce(c.asn, -1) = coalesce(t.asn, -1)
              ORDER BY t.row_table, t.row_ctid
              OFFSET 0) t
        -- by the whole key (revision 0055): a probe of one partition, not of every month's.
        -- Only in the months that hold a queued session (revision 0064; before, revision 0062,
        -- among the incomplete sessions of a partial index): joined to every session, the update
        -- hashed all the months kept on every run, even one with nothing to fill (6M sessions of
        -- which 1M incomplete: a hash of 6M rows in 4 batches, 3.1 s of a 7.3 s run that changed
        -- nothing). The rows todo read are incomplete, and no other transaction can complete
        -- them meanwhile (the sessions' lock).
        -- By session_id alone for a whole pass, as todo: estimated right, the planner hashes the
        -- rows to write rather than spilling a hash planned for a few.
        WHERE s.session_id = t.session_id AND (p_ips IS NULL OR s.first_event_at = t.first_event_at)
          AND s.first_event_at BETWEEN v_from AND v_until AND s.snapshot_complete_at IS NULL
          -- Nothing to fill, nothing read (revision 0069): a one-time filter above the join. The
          -- hash join built its hash of the queued months' sessions before it asked for a row to
          -- write (they come through the sort by heap place, which starts late), so a pass that
          -- found nothing ready still hashed every waiting session: 1M sessions waiting for
          -- GreyNoise, about 0.9 s of a 5 s pass.
          AND EXISTS (SELECT 1 FROM todo)
        RETURNING s.session_id, s.snapshot_complete_at IS NOT NULL AS complete, t.day
    ), dequeued AS (
        -- a key whose staged sessions (all its incomplete ones) are all complete now leaves the
        -- queue (under the sessions' lock: no one else can have changed these rows). Its known
        -- fields stay as they were: this statement only adds fields, so they are still had.
        DELETE FROM ipintel.snapshot_queue q
        USING (SELECT c.source_ip, c.created_at
               FROM ipintel_staging.snapshot_sessions c
               LEFT JOIN filled f ON f.session_id = c.session_id AND f.complete
               GROUP BY c.source_ip, c.created_at
               HAVING bool_and(f.session_id IS NOT NULL)) d
        WHERE q.source_ip = d.source_ip AND q.created_at = d.created_at
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
    'Fills the unknown snapshot_* fields of incomplete sessions (all of them when p_ips is NULL, else those of the IPs p_ips) that no better-ranked source is still awaited for (see ipintel.snapshot_waits), and marks a snapshot complete once no source is awaited. Never changes a known field. The IP''s enrichment document as it is now goes to snapshot_document: stored in enrichment_documents only when no session took the same document before (once per distinct document, not per session). The ASN and the class (snapshot_ip_type, snapshot_ip_provider: ip_classes) are as of the session''s day. Linear in the incomplete sessions and their IPs: a whole pass without routing snapshots or dated geolocation builds works the values out once per key (snapshot_key_values: IP, ingest time, run of days) and writes the sessions in one pass over their months; the IPs whose ASN history changes among a key''s sessions, a pass with dated data and a pass for some IPs work them out per session. Returns the sessions changed. Called by take_snapshots() (every session, after enrich) and by merge_cowrie_events (the sessions of an ingest chunk whose IPs are already enriched). Takes the sessions'' one-writer lock first (the transaction advisory lock merge_cowrie_events takes, on hashtextextended(''ipintel.session_summaries'', 0)): it waits for an ingest chunk in flight, and ingest waits for it until the caller''s transaction ends.';

CREATE FUNCTION ipintel.take_snapshots()
    RETURNS bigint
    LANGUAGE sql
    SET search_path = ''
AS $$
    SELECT ipintel.take_snapshots(NULL::inet[]);
$$;
COMMENT ON FUNCTION ipintel.take_snapshots() IS
    'Takes the snapshots of every incomplete session that can be taken now: ipintel.take_snapshots(NULL). Run after every enrichment; returns the sessions changed.';

-- The audited way to take snapshots again (e.g. after loading routing history for old sessions):
-- one row per redo, with its reason and counts. The trigger below refuses every other rewrite.
CREATE TABLE ipintel.snapshot_redos (
    redo_id         bigint      GENERATED ALWAYS AS IDENTITY,
    since           timestamptz NOT NULL,
    until           timestamptz NOT NULL,
    reason          text        NOT NULL,
    requested_by    text        NOT NULL DEFAULT session_user,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    sessions_reset  bigint      NOT NULL DEFAULT 0,
    sessions_taken  bigint      NOT NULL DEFAULT 0,
    CONSTRAINT snapshot_redos_pkey PRIMARY KEY (redo_id),
    CONSTRAINT snapshot_redos_window_is_ordered CHECK (since < until),
    CONSTRAINT snapshot_redos_reason_is_given CHECK (length(btrim(reason)) > 0),
    CONSTRAINT snapshot_redos_counts_are_not_negative CHECK (sessions_reset >= 0 AND sessions_taken >= 0)
);
COMMENT ON TABLE ipintel.snapshot_redos IS
    'Every redo of snapshots (ipintel snapshots redo): the only way a known snapshot field is ever rewritten.';
COMMENT ON COLUMN ipintel.snapshot_redos.redo_id IS 'Redo number.';
COMMENT ON COLUMN ipintel.snapshot_redos.since IS 'Sessions that started at or after this time were redone...';
COMMENT ON COLUMN ipintel.snapshot_redos.until IS '...and before this time.';
COMMENT ON COLUMN ipintel.snapshot_redos.reason IS 'Why, in the operator''s words (required).';
COMMENT ON COLUMN ipintel.snapshot_redos.requested_by IS 'The database user that asked (session_user).';
COMMENT ON COLUMN ipintel.snapshot_redos.started_at IS 'When the redo started.';
COMMENT ON COLUMN ipintel.snapshot_redos.finished_at IS 'When it ended (in the same transaction: a redo is all or nothing).';
COMMENT ON COLUMN ipintel.snapshot_redos.sessions_reset IS 'Snapshots cleared.';
COMMENT ON COLUMN ipintel.snapshot_redos.sessions_taken IS 'Sessions take_snapshots then filled (some may wait again for a source whose window is still open).';

CREATE FUNCTION ipintel.protect_snapshot()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    -- Called only for an update that would change a known snapshot field: the trigger's WHEN
    -- (session_summaries_snapshot_is_immutable, revision 0072) is the one statement of which.
    -- Inside redo_snapshots (which records itself in snapshot_redos first): allowed.
    IF EXISTS (SELECT 1 FROM ipintel.snapshot_redos r
               WHERE r.redo_id::text = current_setting('ipintel.snapshot_redo', true) AND r.finished_at IS NULL) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'snapshot of session %: a known snapshot field is never rewritten', OLD.session_id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
COMMENT ON FUNCTION ipintel.protect_snapshot() IS
    'Trigger function of session_summaries_snapshot_is_immutable, whose WHEN finds the updates that would change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot (its document too: snapshot_document): refuses them, except inside redo_snapshots (audited in snapshot_redos). Unknown fields may be filled (the trigger calls no function for them).';

CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_document, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at, snapshot_is_known_attacker, snapshot_threatfeeds,
                     snapshot_is_known_attacker_source, snapshot_ip_provider
    ON ipintel.session_summaries
    FOR EACH ROW
    -- Only where a known field would change (revision 0072): this WHEN is the rule's one
    -- statement, and protect_snapshot refuses what reaches it but inside a redo. Filling an
    -- unknown field calls no function, also when others are known (the pass after a later source
    -- answers: 1M such sessions took 17 to 19 s with the function called for each, 5.2 to 5.6 s
    -- without). Revision 0038 tested only that some field was known, which spared first fills alone.
    WHEN ((OLD.snapshot_asn_source IS NOT NULL
           AND (NEW.snapshot_asn, NEW.snapshot_asn_source) IS DISTINCT FROM (OLD.snapshot_asn, OLD.snapshot_asn_source))
          OR (OLD.snapshot_country_source IS NOT NULL
              AND (NEW.snapshot_country, NEW.snapshot_country_source)
                  IS DISTINCT FROM (OLD.snapshot_country, OLD.snapshot_country_source))
          OR (OLD.snapshot_ip_type_source IS NOT NULL
              AND (NEW.snapshot_ip_type, NEW.snapshot_ip_type_source, NEW.snapshot_ip_provider)
                  IS DISTINCT FROM (OLD.snapshot_ip_type, OLD.snapshot_ip_type_source, OLD.snapshot_ip_provider))
          OR (OLD.snapshot_is_scanner_source IS NOT NULL
              AND (NEW.snapshot_is_scanner, NEW.snapshot_is_scanner_source)
                  IS DISTINCT FROM (OLD.snapshot_is_scanner, OLD.snapshot_is_scanner_source))
          OR (OLD.snapshot_is_known_attacker_source IS NOT NULL
              AND (NEW.snapshot_is_known_attacker, NEW.snapshot_threatfeeds, NEW.snapshot_is_known_attacker_source)
                  IS DISTINCT FROM
                  (OLD.snapshot_is_known_attacker, OLD.snapshot_threatfeeds, OLD.snapshot_is_known_attacker_source))
          OR (OLD.snapshot_at IS NOT NULL AND NEW.snapshot_at IS DISTINCT FROM OLD.snapshot_at)
          OR (OLD.snapshot_complete_at IS NOT NULL
              AND (NEW.snapshot_complete_at, NEW.snapshot_document)
                  IS DISTINCT FROM (OLD.snapshot_complete_at, OLD.snapshot_document)))
    EXECUTE FUNCTION ipintel.protect_snapshot();


CREATE FUNCTION ipintel.redo_snapshots(p_since timestamptz, p_until timestamptz, p_reason text)
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
    -- The sessions' one-writer lock (revision 0068), before any row: its reset and the
    -- take_snapshots after it (which takes the same lock) run while no ingest chunk writes.
    -- Taken by take_snapshots alone, after the reset had updated rows an ingest chunk could be
    -- waiting for, the two could deadlock.
    PERFORM pg_advisory_xact_lock(hashtextextended('ipintel.session_summaries', 0));
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
        -- incomplete again: their keys back in the queue (revisions 0064, 0084), widened if
        -- there, and knowing no field (these sessions have none now)
        INSERT INTO ipintel.snapshot_queue AS q (source_ip, created_at, first_at, last_at, known)
        SELECT r.source_ip, r.created_at, min(r.first_event_at), max(r.first_event_at), 0
        FROM reset r
        GROUP BY r.source_ip, r.created_at
        ON CONFLICT (source_ip, created_at) DO UPDATE
        SET first_at = least(q.first_at, excluded.first_at), last_at = greatest(q.last_at, excluded.last_at), known = 0
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
    'Takes again the snapshots of the sessions that started in [p_since, p_until), recorded in snapshot_redos with p_reason and its counts: the one audited way a known snapshot is rewritten (e.g. after loading routing history for sessions snapshotted from the current ASN). Returns the redo and its counts. Takes the sessions'' one-writer lock first (as take_snapshots): ingest waits for a redo until its transaction ends.';
