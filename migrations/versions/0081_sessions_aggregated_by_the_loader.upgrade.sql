-- From migrations/versions/0081_sessions_aggregated_by_the_loader.upgrade.sql (sql/060_ingest.sql)
-- The loader aggregates each chunk's events per session itself (ipintel.chunks.ChunkSessions) and
-- stages the sessions (cowrie_sessions) with the chunk's events per eventid (the new table
-- cowrie_event_counts), not every event: merge_cowrie_events counts the events from either, and
-- still aggregates events staged in cowrie_events (SQL callers, older loaders).
-- Locks: none on a table that holds rows (a new empty table, one function replaced, comments).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- The events per eventid of a batch whose sessions the loader staged aggregated (revision 0081):
-- what the run's counters and summary count, without staging each event.
CREATE UNLOGGED TABLE ipintel_staging.cowrie_event_counts (
    batch_id bigint NOT NULL,
    eventid  text   NOT NULL,
    events   bigint NOT NULL
);
COMMENT ON TABLE ipintel_staging.cowrie_event_counts IS
    'Staging for ingest: the events per eventid of a batch whose sessions the loader COPYed aggregated into cowrie_sessions (revision 0081); emptied by merge_cowrie_events.';
COMMENT ON COLUMN ipintel_staging.cowrie_event_counts.batch_id IS 'The batch (batch_id_seq) of the chunk.';
COMMENT ON COLUMN ipintel_staging.cowrie_event_counts.eventid IS 'A Cowrie eventid.';
COMMENT ON COLUMN ipintel_staging.cowrie_event_counts.events IS 'How many of the chunk''s events have it.';
CREATE INDEX cowrie_event_counts_batch_id_idx ON ipintel_staging.cowrie_event_counts (batch_id);
-- as sql/099_roles.sql grants every staging table
GRANT SELECT, INSERT ON ipintel_staging.cowrie_event_counts TO ipintel_loader;
COMMENT ON TABLE ipintel_staging.cowrie_events IS 'Staging for merge_cowrie_events: one row per Cowrie event of a batch staged event by event (SQL callers; the loader stages each chunk''s sessions in cowrie_sessions since revision 0081).';
COMMENT ON TABLE ipintel_staging.cowrie_sessions IS 'Staging for ingest: the events of one batch aggregated per session (COPYed by the loader, which aggregates each chunk itself since revision 0081, or aggregated by merge_cowrie_events from cowrie_events); emptied by merge_cowrie_events.';

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
    v_at_insert boolean := false;
    v_first timestamptz;
    v_last timestamptz;
    v_rest inet[];
BEGIN
    -- Before any row lock, so it adds no lock order: only merges of Cowrie events take it.
    PERFORM pg_advisory_xact_lock(hashtextextended('ipintel.session_summaries', 0));

    -- The batch's events per eventid: counted from its staged events, or as the loader staged
    -- them with the batch's sessions (revision 0081: it aggregates each chunk itself, and stages
    -- no event).
    SELECT coalesce(sum(e.n), 0), coalesce(jsonb_object_agg(e.eventid, e.n), '{}'::jsonb)
    INTO v_events, v_event_counts
    FROM (SELECT c.eventid, sum(c.n) AS n
          FROM (SELECT c.eventid, count(*) AS n FROM ipintel_staging.cowrie_events c
                WHERE c.batch_id = p_batch_id GROUP BY c.eventid
                UNION ALL
                SELECT k.eventid, k.events FROM ipintel_staging.cowrie_event_counts k
                WHERE k.batch_id = p_batch_id) c
          GROUP BY c.eventid) e;

    -- Every "first" below is the first of the session's events by (event_ts, line_no): the events
    -- come sorted so from the subquery, and each aggregate takes them in that order (a GROUP BY
    -- on a prefix of the subquery's sort keeps it; an INSERT plan is never parallel). One sort for
    -- the batch instead of one per ordered aggregate and session: the aggregation in half the
    -- time (issue 15). normalize_ip is applied once per session, to the address picked. The
    -- sessions are sorted and grouped by their id in the "C" collation (revision 0054): bytes
    -- compared, with abbreviated keys, rather than the database's collation, about 15% of the
    -- aggregation; grouping needs only equality, which every deterministic collation shares.
    -- The loader stages its chunks' sessions aggregated already (revision 0081: ipintel.chunks.
    -- ChunkSessions, the same rules), so for its batches this reads no event and adds nothing.
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

    -- The snapshots of this chunk's sessions whose IP is already enriched are taken here rather
    -- than by the next enrichment (issue 15): what no awaited source can improve is filled now, by
    -- the same rule as after an enrichment (take_snapshots). IPs no source has answered yet (this
    -- chunk's new IPs among them, and bogons, which are never asked) are left to the next
    -- take_snapshots(): at most a field no enabled source gives could be filled for them now. A
    -- chunk with no answered IP (a first load) takes none. One index probe per IP (revision 0051;
    -- LIMIT keeps it a probe): as a semi-join the planner hashed all of enrichment_state for
    -- every chunk.
    v_enriched_ips := ARRAY(
        SELECT c.ip FROM unnest(v_chunk_ips) c(ip)
        CROSS JOIN LATERAL (SELECT 1 FROM ipintel.enrichment_state e WHERE e.ip = c.ip LIMIT 1) x);
    -- The new sessions of those IPs get their snapshot in their insert (revision 0080): its values
    -- worked out once per key (snapshot_key_values of this batch) into snapshot_keys (only under
    -- the sessions' lock, taken above), as a whole take_snapshots() pass does. Inserted empty, then
    -- queued, updated by take_snapshots(those IPs) (a per-session statement) and dequeued, they
    -- cost most of an enriched chunk's merge (4,000 sessions: about 100 of 130 ms). Not with
    -- routing snapshots or dated geolocation builds (asked per session and day: take_snapshots),
    -- nor while a session-count threshold could decline an IP outside an ingest (it reads the
    -- IP's session count, which this merge changes below).
    IF cardinality(v_enriched_ips) > 0
       AND NOT ipintel.snapshots_are_dated()
       AND (ipintel.ingest_is_running()
            OR NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.enabled AND p.min_session_count IS NOT NULL))
    THEN
        SELECT min(m.first_event_at), max(m.first_event_at) INTO v_first, v_last
        FROM ipintel_staging.cowrie_sessions m
        WHERE m.batch_id = p_batch_id AND m.merged_first_event_at IS NULL AND m.source_ip = ANY (v_enriched_ips);
        IF v_first IS NOT NULL THEN
            v_at_insert := true;
            TRUNCATE ipintel_staging.snapshot_keys;
            INSERT INTO ipintel_staging.snapshot_keys
            SELECT * FROM ipintel.snapshot_key_values(v_first, v_last, p_batch_id, v_enriched_ips);
        END IF;
    END IF;

    -- The foreign key of the sessions inserted below is checked when this merge ends (SET
    -- CONSTRAINTS ... IMMEDIATE after take_snapshots), not row by row now: take_snapshots may
    -- update them again (since revision 0080 only those of a chunk without its snapshots in the
    -- insert, and the hard IPs'), and PostgreSQL checks an updated row's key again when the row was
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
        -- with the snapshot of its key (above) where it has one: the fields ready, as take_snapshots
        -- fills a session that has none yet; complete when nothing is awaited (then never queued:
        -- the queue's trigger takes the incomplete ones only)
        INSERT INTO ipintel.session_summaries (
            session_id, source_ip, sensor, first_event_at, last_event_at, protocol, src_port, dst_ip,
            dst_port, duration_seconds, client_version, hassh, login_attempts, login_successes,
            command_count, download_count, event_count,
            snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_is_scanner,
            snapshot_is_scanner_source, snapshot_ip_type, snapshot_ip_type_source, snapshot_ip_provider,
            snapshot_is_known_attacker, snapshot_threatfeeds, snapshot_is_known_attacker_source,
            snapshot_document, snapshot_at, snapshot_complete_at)
        SELECT m.session_id, m.source_ip, m.sensor, m.first_event_at, m.last_event_at, m.protocol,
               m.src_port, m.dst_ip, m.dst_port, m.duration_seconds, m.client_version, m.hassh,
               m.login_attempts, m.login_successes, m.command_count, m.download_count, m.event_count,
               CASE WHEN v.asn_ready THEN v.asn END, CASE WHEN v.asn_ready THEN v.asn_source END,
               CASE WHEN v.country_ready THEN v.country END, CASE WHEN v.country_ready THEN v.country_source END,
               CASE WHEN v.scanner_ready THEN v.is_scanner END, CASE WHEN v.scanner_ready THEN v.is_scanner_source END,
               CASE WHEN v.ip_type_ready THEN v.ip_type END, CASE WHEN v.ip_type_ready THEN v.ip_type_source END,
               CASE WHEN v.ip_type_ready THEN v.ip_provider END,
               CASE WHEN v.known_attacker_ready THEN v.is_known_attacker END,
               CASE WHEN v.known_attacker_ready THEN v.threatfeeds END,
               CASE WHEN v.known_attacker_ready THEN v.known_attacker_source END,
               v.document_id, CASE WHEN v.ip IS NOT NULL THEN now() END, CASE WHEN v.all_ready THEN now() END
        FROM ipintel_staging.cowrie_sessions m
        -- a session is in one key of its IP at most (the keys' runs of days do not overlap)
        LEFT JOIN ipintel_staging.snapshot_keys v
               ON v_at_insert AND NOT v.hard AND v.ip = m.source_ip
              AND m.first_event_at BETWEEN v.first_at AND v.last_at
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

    -- The rest of the enriched IPs' snapshots, by take_snapshots of their IPs: all of them when
    -- the insert took none; else the IPs whose ASN history changes among a key's new sessions
    -- (hard: per session) and those with sessions queued before this chunk (an earlier ingest's,
    -- or a session this chunk continued). The other IPs are not looked at again: their new
    -- sessions, complete or not, were worked out now by the same rule.
    IF v_at_insert THEN
        v_rest := ARRAY(SELECT v.ip FROM ipintel_staging.snapshot_keys v WHERE v.hard
                        UNION
                        SELECT q.source_ip FROM ipintel.snapshot_queue q
                        WHERE q.source_ip = ANY (v_enriched_ips) AND q.created_at <> now());
        TRUNCATE ipintel_staging.snapshot_keys;
    ELSE
        v_rest := v_enriched_ips;
    END IF;
    IF cardinality(v_rest) > 0 THEN
        -- a month's first chunks: its partition analyzed first (revision 0065)
        PERFORM ipintel.analyze_sessions_without_statistics();
        PERFORM ipintel.take_snapshots(v_rest);
    END IF;
    -- The deferred checks run here, inside the merge: a violation is this merge's error.
    SET CONSTRAINTS ipintel.session_summaries_source_ip_fkey IMMEDIATE;

    DELETE FROM ipintel_staging.cowrie_events c WHERE c.batch_id = p_batch_id;
    DELETE FROM ipintel_staging.cowrie_event_counts k WHERE k.batch_id = p_batch_id;
    DELETE FROM ipintel_staging.cowrie_sessions m WHERE m.batch_id = p_batch_id;

    RETURN QUERY SELECT v_events, coalesce(v_sessions_new, 0), coalesce(v_sessions_updated, 0),
                        v_ips_new, v_event_counts;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_cowrie_events(bigint) IS
    'Merges one staged batch of Cowrie events (ipintel_staging.cowrie_events, or the loader''s sessions aggregated per chunk in cowrie_sessions with its events per eventid in cowrie_event_counts) into ip_inventory and session_summaries, takes the snapshots of its sessions whose IP is already enriched (take_snapshots of those IPs), then empties the batch. Set-based; call in the transaction that COPYed the batch.';
COMMENT ON FUNCTION ipintel.ingest_chunk(bigint, bigint, bigint, text, integer, text, bigint, bigint, boolean, bigint, bigint) IS
    'One chunk of a Cowrie log, after the loader COPYed its sessions (cowrie_sessions, with its events per eventid in cowrie_event_counts; or its events, cowrie_events) and rejected lines (cowrie_rejects) under p_batch_id: merges them (merge_cowrie_events), records the rejects, creates or moves the file''s row in ingest_files (offset p_offset, p_lines lines) and adds to the run''s counters. Returns the file_id and what changed.';
