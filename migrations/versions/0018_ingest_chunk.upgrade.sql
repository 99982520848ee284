-- From migrations/versions/0018_ingest_chunk.upgrade.sql (sql/060_ingest.sql as of this revision)
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- Rejected lines of the chunk being loaded, moved to ingest_rejects by ingest_chunk.
CREATE UNLOGGED TABLE ipintel_staging.cowrie_rejects (
    batch_id    bigint  NOT NULL,
    line_no     bigint  NOT NULL,
    reason      text    NOT NULL,
    detail      text    NOT NULL,
    excerpt     text    NOT NULL
);
COMMENT ON TABLE ipintel_staging.cowrie_rejects IS 'Staging for ingest: the rejected lines of one chunk; emptied by ingest_chunk.';
-- A new, empty table.
-- squawk-ignore require-concurrent-index-creation
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
    'One chunk of a Cowrie log, after the loader COPYed its events (cowrie_events) and rejected lines (cowrie_rejects) under p_batch_id: merges the events (merge_cowrie_events), records the rejects, creates or moves the file''s row in ingest_files (offset p_offset, p_lines lines) and adds to the run''s counters. Returns the file_id and what changed.';
