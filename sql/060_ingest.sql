-- From sql/060_ingest.sql
-- Cowrie ingest: runs, files (how far each was read), rejected lines, the staging table the
-- loader COPYs events into, and the set-based merge into the tiers.
--
-- Each chunk of a file is loaded in ONE transaction: COPY into staging, merge, rejects, and the
-- file's new offset. A crash mid-chunk rolls all of it back, so the next run re-reads exactly
-- that chunk: nothing lost, nothing counted twice.

CREATE TABLE ipintel.ingest_runs (
    run_id          bigint      GENERATED ALWAYS AS IDENTITY,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    status          text        NOT NULL DEFAULT 'running',
    files_read      bigint      NOT NULL DEFAULT 0,
    files_skipped   bigint      NOT NULL DEFAULT 0,
    lines_read      bigint      NOT NULL DEFAULT 0,
    events_loaded   bigint      NOT NULL DEFAULT 0,
    sessions_new    bigint      NOT NULL DEFAULT 0,
    sessions_updated bigint     NOT NULL DEFAULT 0,
    ips_new         bigint      NOT NULL DEFAULT 0,
    rejects         bigint      NOT NULL DEFAULT 0,
    event_counts    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT ingest_runs_pkey PRIMARY KEY (run_id),
    CONSTRAINT ingest_runs_status_is_known CHECK (status IN ('running', 'succeeded', 'finished_with_rejects', 'failed', 'interrupted')),
    CONSTRAINT ingest_runs_finished_after_start CHECK (finished_at >= started_at)
);
COMMENT ON TABLE ipintel.ingest_runs IS 'One row per `ipintel ingest` invocation, with what it read and loaded.';
COMMENT ON COLUMN ipintel.ingest_runs.status IS 'running, succeeded, finished_with_rejects, failed or interrupted (Ctrl-C / killed: shown as running until the next run notices).';
COMMENT ON COLUMN ipintel.ingest_runs.files_read IS 'Files with new lines read by this run.';
COMMENT ON COLUMN ipintel.ingest_runs.files_skipped IS 'Files already fully ingested (same content), skipped.';
COMMENT ON COLUMN ipintel.ingest_runs.lines_read IS 'Lines read, loaded or rejected.';
COMMENT ON COLUMN ipintel.ingest_runs.events_loaded IS 'Events merged into session_summaries.';
COMMENT ON COLUMN ipintel.ingest_runs.sessions_new IS 'Sessions created by this run.';
COMMENT ON COLUMN ipintel.ingest_runs.sessions_updated IS 'Existing sessions that received more events (e.g. split across rotated files).';
COMMENT ON COLUMN ipintel.ingest_runs.ips_new IS 'Source IPs added to ip_inventory by this run.';
COMMENT ON COLUMN ipintel.ingest_runs.rejects IS 'Lines rejected (see ingest_rejects).';
COMMENT ON COLUMN ipintel.ingest_runs.event_counts IS 'Events per Cowrie eventid, unknown eventids included.';
COMMENT ON COLUMN ipintel.ingest_runs.run_id IS 'Ingest run number (ingest_rejects.run_id, ingest_files.first_run_id / last_run_id).';
COMMENT ON COLUMN ipintel.ingest_runs.started_at IS 'When `ipintel ingest` started.';
COMMENT ON COLUMN ipintel.ingest_runs.finished_at IS 'When it ended; NULL while running (or if killed).';

CREATE TABLE ipintel.ingest_files (
    file_id         bigint      GENERATED ALWAYS AS IDENTITY,
    fingerprint     text        NOT NULL,
    -- A live log under 4 KiB is hashed whole; this says how many bytes the hash covers.
    -- squawk-ignore prefer-bigint-over-int
    fingerprint_bytes integer   NOT NULL,
    path            text        NOT NULL,
    bytes_ingested  bigint      NOT NULL DEFAULT 0,
    lines_ingested  bigint      NOT NULL DEFAULT 0,
    finished        boolean     NOT NULL DEFAULT false,
    first_run_id    bigint      NOT NULL,
    last_run_id     bigint      NOT NULL,
    first_ingested_at timestamptz NOT NULL DEFAULT now(),
    last_ingested_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ingest_files_pkey PRIMARY KEY (file_id),
    CONSTRAINT ingest_files_fingerprint_key UNIQUE (fingerprint),
    CONSTRAINT ingest_files_offsets_are_not_negative CHECK (bytes_ingested >= 0 AND lines_ingested >= 0),
    CONSTRAINT ingest_files_first_run_id_fkey FOREIGN KEY (first_run_id) REFERENCES ipintel.ingest_runs (run_id),
    CONSTRAINT ingest_files_last_run_id_fkey FOREIGN KEY (last_run_id) REFERENCES ipintel.ingest_runs (run_id)
);
COMMENT ON TABLE ipintel.ingest_files IS
    'Every Cowrie log file ingested, known by the content of its beginning (so cowrie.json renamed to cowrie.json.DATE and gzipped is the same file) and how far it was read.';
COMMENT ON COLUMN ipintel.ingest_files.fingerprint IS 'sha256 of the first 4096 bytes of the decompressed content.';
COMMENT ON COLUMN ipintel.ingest_files.fingerprint_bytes IS 'Bytes the fingerprint covers: 4096, or the whole content of a smaller file.';
COMMENT ON COLUMN ipintel.ingest_files.path IS 'Path the file was last read from.';
COMMENT ON COLUMN ipintel.ingest_files.bytes_ingested IS 'Offset (decompressed bytes) just after the last complete line loaded; the next run resumes there.';
COMMENT ON COLUMN ipintel.ingest_files.lines_ingested IS 'Lines loaded or rejected so far.';
COMMENT ON COLUMN ipintel.ingest_files.finished IS 'A gzip file read to its end: it cannot grow any more.';
COMMENT ON COLUMN ipintel.ingest_files.file_id IS 'File number (ingest_rejects.file_id).';
COMMENT ON COLUMN ipintel.ingest_files.first_run_id IS 'Ingest run that first read this file.';
COMMENT ON COLUMN ipintel.ingest_files.last_run_id IS 'Ingest run that last read new lines of this file.';
COMMENT ON COLUMN ipintel.ingest_files.first_ingested_at IS 'When the file was first read.';
COMMENT ON COLUMN ipintel.ingest_files.last_ingested_at IS 'When new lines of the file were last loaded.';
CREATE INDEX ingest_files_first_run_id_idx ON ipintel.ingest_files (first_run_id);
CREATE INDEX ingest_files_last_run_id_idx ON ipintel.ingest_files (last_run_id);

CREATE TABLE ipintel.ingest_rejects (
    reject_id   bigint      GENERATED ALWAYS AS IDENTITY,
    run_id      bigint      NOT NULL,
    file_id     bigint      NOT NULL,
    path        text        NOT NULL,
    line_no     bigint      NOT NULL,
    reason      text        NOT NULL,
    detail      text        NOT NULL,
    excerpt     text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ingest_rejects_pkey PRIMARY KEY (reject_id),
    CONSTRAINT ingest_rejects_line_is_unique UNIQUE (file_id, line_no),
    CONSTRAINT ingest_rejects_reason_is_known CHECK (reason IN (
        'malformed_json', 'missing_session', 'missing_src_ip', 'missing_eventid', 'invalid_ip',
        'invalid_timestamp', 'implausible_timestamp', 'invalid_utf8', 'nul_character', 'truncated_gzip')),
    CONSTRAINT ingest_rejects_run_id_fkey FOREIGN KEY (run_id) REFERENCES ipintel.ingest_runs (run_id),
    CONSTRAINT ingest_rejects_file_id_fkey FOREIGN KEY (file_id) REFERENCES ipintel.ingest_files (file_id)
);
COMMENT ON TABLE ipintel.ingest_rejects IS 'Cowrie log lines that could not be loaded, with file, line and why.';
COMMENT ON COLUMN ipintel.ingest_rejects.line_no IS '1-based line number in the (decompressed) file.';
COMMENT ON COLUMN ipintel.ingest_rejects.reason IS 'Stable reason code: malformed_json, missing_session, missing_src_ip, missing_eventid, invalid_ip, invalid_timestamp (not ISO 8601), implausible_timestamp (before 1990 or more than a day in the future), invalid_utf8, nul_character, truncated_gzip.';
COMMENT ON COLUMN ipintel.ingest_rejects.detail IS 'What exactly was wrong (e.g. the bad IP value).';
COMMENT ON COLUMN ipintel.ingest_rejects.excerpt IS 'Start of the line, undecodable bytes and NULs escaped.';
COMMENT ON COLUMN ipintel.ingest_rejects.reject_id IS 'Reject number.';
COMMENT ON COLUMN ipintel.ingest_rejects.run_id IS 'Ingest run that rejected the line.';
COMMENT ON COLUMN ipintel.ingest_rejects.file_id IS 'File the line is in (ingest_files).';
COMMENT ON COLUMN ipintel.ingest_rejects.path IS 'Path of that file when the line was read.';
CREATE INDEX ingest_rejects_run_id_idx ON ipintel.ingest_rejects (run_id);

-- A batch staged event by event, emptied by merge_cowrie_events in the same transaction. The
-- loader stages each chunk's sessions instead (cowrie_sessions, revision 0081); SQL callers and
-- the tests that hold the loader's aggregation to the SQL's stage events here.
-- UNLOGGED: no WAL for rows that live a fraction of a second.
CREATE UNLOGGED TABLE ipintel_staging.cowrie_events (
    batch_id        bigint      NOT NULL,
    line_no         bigint      NOT NULL,
    eventid         text        NOT NULL,
    event_ts        timestamptz NOT NULL,
    session_id      text        NOT NULL,
    src_ip          inet        NOT NULL,
    sensor          text,
    protocol        text,
    -- TCP ports fit in integer (0-65535).
    -- squawk-ignore prefer-bigint-over-int
    src_port        integer,
    dst_ip          inet,
    -- squawk-ignore prefer-bigint-over-int
    dst_port        integer,
    duration        double precision,
    client_version  text,
    hassh           text
);
COMMENT ON TABLE ipintel_staging.cowrie_events IS 'Staging for merge_cowrie_events: one row per Cowrie event of a batch staged event by event (SQL callers; the loader stages each chunk''s sessions in cowrie_sessions since revision 0081).';
CREATE INDEX cowrie_events_batch_id_idx ON ipintel_staging.cowrie_events (batch_id);

-- The batch aggregated per session, between the steps of merge_cowrie_events.
CREATE UNLOGGED TABLE ipintel_staging.cowrie_sessions (
    batch_id         bigint      NOT NULL,
    session_id       text        NOT NULL,
    source_ip        inet        NOT NULL,
    sensor           text,
    first_event_at   timestamptz NOT NULL,
    last_event_at    timestamptz NOT NULL,
    protocol         text,
    -- squawk-ignore prefer-bigint-over-int
    src_port         integer,
    dst_ip           inet,
    -- squawk-ignore prefer-bigint-over-int
    dst_port         integer,
    duration_seconds double precision,
    client_version   text,
    hassh            text,
    login_attempts   bigint      NOT NULL,
    login_successes  bigint      NOT NULL,
    command_count    bigint      NOT NULL,
    download_count   bigint      NOT NULL,
    event_count      bigint      NOT NULL,
    CONSTRAINT cowrie_sessions_pkey PRIMARY KEY (batch_id, session_id),
    -- added by revision 0054 (a new column goes last)
    merged_first_event_at timestamptz
);
COMMENT ON TABLE ipintel_staging.cowrie_sessions IS 'Staging for ingest: the events of one batch aggregated per session (COPYed by the loader, which aggregates each chunk itself since revision 0081, or aggregated by merge_cowrie_events from cowrie_events); emptied by merge_cowrie_events.';
COMMENT ON COLUMN ipintel_staging.cowrie_sessions.merged_first_event_at IS
    'For a session already in session_summaries, its first_event_at there (with session_id, its key); NULL for a new session. Set by merge_cowrie_events'' one lookup of the batch''s sessions.';

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

CREATE SEQUENCE ipintel_staging.batch_id_seq;
COMMENT ON SEQUENCE ipintel_staging.batch_id_seq IS 'Tags the rows of one COPY batch in any staging table.';

-- Keeps asn_inventory.ip_count / session_count / first_seen / last_seen true for the given ASNs.
CREATE FUNCTION ipintel.refresh_asn_counts(p_asns bigint[])
    RETURNS void
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    UPDATE ipintel.asn_inventory a
    SET ip_count = coalesce(s.ip_count, 0),
        session_count = coalesce(s.session_count, 0),
        first_seen = s.first_seen,
        last_seen = s.last_seen,
        updated_at = now()
    FROM (SELECT x.asn, c.ip_count, c.session_count, c.first_seen, c.last_seen
          FROM unnest(p_asns) AS x(asn)
          LEFT JOIN LATERAL (
              SELECT count(*) AS ip_count, sum(i.session_count) AS session_count,
                     min(i.first_seen) AS first_seen, max(i.last_seen) AS last_seen
              FROM ipintel.ip_inventory i WHERE i.current_asn = x.asn) c ON true) s
    WHERE a.asn = s.asn
      AND (a.ip_count, a.session_count, a.first_seen, a.last_seen)
          IS DISTINCT FROM (coalesce(s.ip_count, 0), coalesce(s.session_count, 0), s.first_seen, s.last_seen);
END;
COMMENT ON FUNCTION ipintel.refresh_asn_counts(bigint[]) IS
    'Recomputes ip_count, session_count, first_seen and last_seen of the given ASNs from ip_inventory (set-based; unchanged rows are not written).';

-- Adds to the counts of the given ASNs what they gain (revision 0050): parallel arrays, one
-- element per distinct ASN: the IPs and sessions it gains, and the first_seen / last_seen of the
-- IPs that gained. For writers that only add: ingest (new sessions and wider times of IPs whose
-- current_asn it is) and merges that move IPs into an ASN. least / greatest widen first_seen and
-- last_seen exactly, since each IP's first_seen only moves earlier and last_seen later. An ASN
-- that loses an IP is recounted instead (refresh_asn_counts): its times may narrow. Linear in the
-- ASNs given, where a recount reads every IP of each: an ASN of 100,000 IPs was read whole by
-- every ingest chunk and every merged batch that touched it.
CREATE FUNCTION ipintel.add_to_asn_counts(p_asns bigint[], p_ips bigint[], p_sessions bigint[],
                                          p_first_seen timestamptz[], p_last_seen timestamptz[])
    RETURNS void
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    UPDATE ipintel.asn_inventory a
    SET ip_count = a.ip_count + d.ips,
        session_count = a.session_count + d.sessions,
        first_seen = least(a.first_seen, d.first_seen),
        last_seen = greatest(a.last_seen, d.last_seen),
        updated_at = now()
    FROM unnest(p_asns, p_ips, p_sessions, p_first_seen, p_last_seen) AS d(asn, ips, sessions, first_seen, last_seen)
    WHERE a.asn = d.asn
      AND (d.ips <> 0 OR d.sessions <> 0
           OR (a.first_seen, a.last_seen) IS DISTINCT FROM (least(a.first_seen, d.first_seen),
                                                            greatest(a.last_seen, d.last_seen)));
END;
COMMENT ON FUNCTION ipintel.add_to_asn_counts(bigint[], bigint[], bigint[], timestamptz[], timestamptz[]) IS
    'Adds to asn_inventory.ip_count / session_count the IPs and sessions each ASN gains (parallel arrays, one element per distinct ASN) and widens its first_seen / last_seen to those of the IPs that gained; unchanged rows are not written. Only for gains: an ASN that loses an IP is recounted (refresh_asn_counts).';

-- Merges one staged batch of Cowrie events into ip_inventory and session_summaries.
-- Sessions may already exist (a session split across two rotated files, or a live file read
-- in pieces): counts add up, first/last times widen, connect-time facts are kept from
-- whichever batch saw them. Returns what changed, for the run's summary.
-- session_summaries is partitioned by first_event_at, so its key is (session_id, first_event_at)
-- and INSERT ... ON CONFLICT (session_id) has no unique index to stand on: a known session is
-- updated wherever it is (moving to another partition when its first event is earlier), the
-- others are inserted, and one merge at a time does so (an advisory lock), so no two merges can
-- both insert the same new session_id.
CREATE FUNCTION ipintel.merge_cowrie_events(p_batch_id bigint)
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
                  s.snapshot_at IS NOT NULL AS counted, s.created_at, s.snapshot_complete_at IS NULL AS incomplete)
    , moved AS (
        -- a session whose first_event_at moved earlier (a later file brought earlier events): its
        -- key follows it (revision 0060), and its snapshot queue key takes it in if it is
        -- incomplete (revisions 0064, 0084)
        UPDATE ipintel.session_keys k SET first_event_at = u.first_event_at
        FROM updated u
        WHERE k.session_id = u.session_id AND k.first_event_at <> u.first_event_at)
    , moved_queued AS (
        UPDATE ipintel.snapshot_queue q SET first_at = u.first_at
        FROM (SELECT u.source_ip, u.created_at, min(u.first_event_at) AS first_at
              FROM updated u
              WHERE u.incomplete AND u.first_event_at <> u.old_first_event_at
              GROUP BY u.source_ip, u.created_at) u
        WHERE q.source_ip = u.source_ip AND q.created_at = u.created_at AND u.first_at < q.first_at)
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

-- Rejected lines of the chunk being loaded, moved to ingest_rejects by ingest_chunk.
CREATE UNLOGGED TABLE ipintel_staging.cowrie_rejects (
    batch_id    bigint  NOT NULL,
    line_no     bigint  NOT NULL,
    reason      text    NOT NULL,
    detail      text    NOT NULL,
    excerpt     text    NOT NULL
);
COMMENT ON TABLE ipintel_staging.cowrie_rejects IS 'Staging for ingest: the rejected lines of one chunk; emptied by ingest_chunk.';
CREATE INDEX cowrie_rejects_batch_id_idx ON ipintel_staging.cowrie_rejects (batch_id);

-- The one SQL call per chunk of a Cowrie log: the loader COPYs the chunk's events and rejects
-- into staging, then this merges them, records the rejects, moves the file's offset and adds to
-- the run's counters, all in the loader's transaction (a crash re-reads exactly this chunk).
CREATE FUNCTION ipintel.ingest_chunk(p_run_id bigint, p_batch_id bigint, p_file_id bigint, p_fingerprint text,
                                     p_fingerprint_bytes integer, p_path text, p_offset bigint, p_lines bigint,
                                     p_finished boolean, p_files_read bigint, p_files_skipped bigint)
    RETURNS TABLE (file_id bigint, events bigint, sessions_new bigint, sessions_updated bigint, ips_new bigint,
                   rejects bigint, event_counts jsonb)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_file_id bigint := p_file_id;
    v_merged record;
    v_rejects bigint;
BEGIN
    IF v_file_id IS NULL THEN
        INSERT INTO ipintel.ingest_files (fingerprint, fingerprint_bytes, path, first_run_id, last_run_id)
        VALUES (p_fingerprint, p_fingerprint_bytes, p_path, p_run_id, p_run_id)
        RETURNING ingest_files.file_id INTO v_file_id;
    END IF;

    SELECT * INTO STRICT v_merged FROM ipintel.merge_cowrie_events(p_batch_id);

    -- A truncated gzip is rejected again at the same line on every run until it is whole: the
    -- newest record replaces the previous one, and once the lines after the break load, the
    -- record is gone (they were not rejected after all).
    DELETE FROM ipintel.ingest_rejects r WHERE r.file_id = v_file_id AND r.reason = 'truncated_gzip';
    INSERT INTO ipintel.ingest_rejects (run_id, file_id, path, line_no, reason, detail, excerpt)
    SELECT p_run_id, v_file_id, p_path, c.line_no, c.reason, c.detail, c.excerpt
    FROM ipintel_staging.cowrie_rejects c
    WHERE c.batch_id = p_batch_id
    ORDER BY c.line_no;
    GET DIAGNOSTICS v_rejects = ROW_COUNT;
    DELETE FROM ipintel_staging.cowrie_rejects c WHERE c.batch_id = p_batch_id;

    UPDATE ipintel.ingest_files f
    SET bytes_ingested = p_offset, lines_ingested = p_lines, finished = p_finished, path = p_path,
        fingerprint = p_fingerprint, fingerprint_bytes = p_fingerprint_bytes, last_run_id = p_run_id,
        last_ingested_at = now()
    WHERE f.file_id = v_file_id;

    UPDATE ipintel.ingest_runs r
    SET files_read = p_files_read,
        files_skipped = p_files_skipped,
        lines_read = r.lines_read + v_merged.events + v_rejects,
        events_loaded = r.events_loaded + v_merged.events,
        sessions_new = r.sessions_new + v_merged.sessions_new,
        sessions_updated = r.sessions_updated + v_merged.sessions_updated,
        ips_new = r.ips_new + v_merged.ips_new,
        rejects = r.rejects + v_rejects,
        event_counts = (SELECT coalesce(jsonb_object_agg(k.key, k.n), '{}'::jsonb)
                        FROM (SELECT e.key, sum(e.value::bigint) AS n
                              FROM (SELECT * FROM jsonb_each_text(r.event_counts)
                                    UNION ALL SELECT * FROM jsonb_each_text(v_merged.event_counts)) AS e
                              GROUP BY e.key) AS k)
    WHERE r.run_id = p_run_id;

    RETURN QUERY SELECT v_file_id, v_merged.events, v_merged.sessions_new, v_merged.sessions_updated,
                        v_merged.ips_new, v_rejects, v_merged.event_counts;
END;
$$;
COMMENT ON FUNCTION ipintel.ingest_chunk(bigint, bigint, bigint, text, integer, text, bigint, bigint, boolean, bigint, bigint) IS
    'One chunk of a Cowrie log, after the loader COPYed its sessions (cowrie_sessions, with its events per eventid in cowrie_event_counts; or its events, cowrie_events) and rejected lines (cowrie_rejects) under p_batch_id: merges them (merge_cowrie_events), records the rejects, creates or moves the file''s row in ingest_files (offset p_offset, p_lines lines) and adds to the run''s counters. Returns the file_id and what changed.';

------------------------------------------------------------------------------------------
-- Ingest runs: every status change is one of these functions (the loader writes no table)
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.start_ingest_run()
    RETURNS bigint
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    INSERT INTO ipintel.ingest_runs DEFAULT VALUES RETURNING run_id;
END;
COMMENT ON FUNCTION ipintel.start_ingest_run() IS 'Records a new `ipintel ingest` run (running); returns its run_id.';

CREATE FUNCTION ipintel.finish_ingest_run(p_run_id bigint, p_status text, p_files_read bigint, p_files_skipped bigint)
    RETURNS void
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    UPDATE ipintel.ingest_runs
    SET status = p_status, finished_at = now(), files_read = p_files_read, files_skipped = p_files_skipped
    WHERE run_id = p_run_id;
END;
COMMENT ON FUNCTION ipintel.finish_ingest_run(bigint, text, bigint, bigint) IS
    'Ends an ingest run: its status and the files read or skipped (counted also after the last chunk, or in a run with none).';

CREATE FUNCTION ipintel.interrupt_abandoned_ingest_runs()
    RETURNS bigint
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    WITH ended AS (
        UPDATE ipintel.ingest_runs SET status = 'interrupted' WHERE status = 'running' RETURNING 1)
    SELECT count(*) FROM ended;
END;
COMMENT ON FUNCTION ipintel.interrupt_abandoned_ingest_runs() IS
    'Marks ingest runs still "running" as interrupted: called by a new ingest once it holds the ingest lock, so no other run can be alive. Returns how many.';
