-- From migrations/versions/0027_session_partitions.upgrade.sql (sql/030_tiers.sql's session_summaries,
-- its indexes (and 095's window index), 075's trigger and 050's foreign key, as partitioned)
-- The first of 0027's three parts: session_summaries partitioned by month of first_event_at is
-- built beside the table, empty, under the name session_summaries_partitioned, with a partition for
-- every month that has sessions and for this month and the next, the default partition, every
-- index, constraint, comment and grant it will have. From this commit on, a trigger on
-- session_summaries repeats every insert, update and delete there, so the batched copy
-- (0027_session_partitions.copy.sql: CALL ipintel.copy_sessions_to_partitions()) can run while
-- ingest and enrich go on, and the swap (0027_session_partitions.swap.sql) finds the two tables
-- equal. Locks: SHARE ROW EXCLUSIVE on session_summaries (the trigger) and ip_inventory (the
-- foreign key) until this commit, a fraction of a second; the rest is new objects. If this part
-- is found already done (the revision is run again after its copy stopped, or a DBA ran the
-- parts by hand), 0027_session_partitions.py skips it and the copy resumes where it was.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';
-- Months are UTC months (the partitions' names and bounds).
SET LOCAL timezone = 'UTC';

CREATE TABLE ipintel.session_summaries_partitioned (
    session_id          text        NOT NULL,
    sensor              text,
    first_event_at      timestamptz NOT NULL,
    last_event_at       timestamptz NOT NULL,
    protocol            text,
    source_ip           inet        NOT NULL,
    -- TCP ports fit in integer (0-65535, checked below).
    -- squawk-ignore prefer-bigint-over-int
    src_port            integer,
    dst_ip              inet,
    -- TCP ports fit in integer (0-65535, checked below).
    -- squawk-ignore prefer-bigint-over-int
    dst_port            integer,
    duration_seconds    double precision,
    client_version      text,
    hassh               text,
    login_attempts      bigint      NOT NULL DEFAULT 0,
    login_successes     bigint      NOT NULL DEFAULT 0,
    command_count       bigint      NOT NULL DEFAULT 0,
    download_count      bigint      NOT NULL DEFAULT 0,
    event_count         bigint      NOT NULL DEFAULT 0,
    snapshot_asn        bigint,
    snapshot_country    text,
    snapshot_ip_type    text,
    snapshot_is_scanner boolean,
    snapshot_enrichment jsonb,
    snapshot_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    snapshot_asn_source        text,
    snapshot_country_source    text,
    snapshot_ip_type_source    text,
    snapshot_is_scanner_source text,
    snapshot_complete_at       timestamptz,
    -- A partitioned table's keys must include its partition key; session_id alone is unique too,
    -- kept so by merge_cowrie_events (see the COMMENT on the constraint) and checked by verify_sessions.
    CONSTRAINT session_summaries_partitioned_pkey PRIMARY KEY (session_id, first_event_at),
    CONSTRAINT session_summaries_events_in_order CHECK (first_event_at <= last_event_at),
    CONSTRAINT session_summaries_counts_are_not_negative CHECK (
        login_attempts >= 0 AND login_successes >= 0 AND command_count >= 0
        AND download_count >= 0 AND event_count >= 0),
    CONSTRAINT session_summaries_successes_within_attempts CHECK (login_successes <= login_attempts),
    CONSTRAINT session_summaries_ports_in_range CHECK (src_port BETWEEN 0 AND 65535 AND dst_port BETWEEN 0 AND 65535),
    CONSTRAINT session_summaries_source_ip_is_host_address CHECK (masklen(source_ip) = CASE family(source_ip) WHEN 4 THEN 32 ELSE 128 END),
    CONSTRAINT session_summaries_snapshot_country_is_iso_alpha2 CHECK (snapshot_country ~ '^[A-Z]{2}$'),
    CONSTRAINT session_summaries_snapshot_is_consistent CHECK (
        (snapshot_at IS NULL) = (snapshot_enrichment IS NULL)
        AND (snapshot_complete_at IS NULL
             OR (snapshot_at IS NOT NULL AND snapshot_asn_source IS NOT NULL AND snapshot_country_source IS NOT NULL
                 AND snapshot_ip_type_source IS NOT NULL AND snapshot_is_scanner_source IS NOT NULL))),
    -- Created with the table (empty): a partitioned table's foreign key cannot be added NOT VALID
    -- and validated later, so every copied row is checked as it arrives instead.
    CONSTRAINT session_summaries_source_ip_fkey FOREIGN KEY (source_ip) REFERENCES ipintel.ip_inventory (ip)
) PARTITION BY RANGE (first_event_at);
COMMENT ON TABLE ipintel.session_summaries_partitioned IS
    'Tier 3: one row per Cowrie session, with point-in-time snapshot_* columns: what ipintel knew about the source IP for the session''s time. A snapshot field is known once its *_source is set and is then never rewritten; an unknown field is filled when its source first answers, within that source''s snapshot_window (enrichment_policy) from the session''s created_at. Partitioned by month of first_event_at (UTC): session_summaries_YYYY_MM, made by ensure_session_partitions, and session_summaries_default for a session whose month has no partition yet.';
COMMENT ON CONSTRAINT session_summaries_partitioned_pkey ON ipintel.session_summaries_partitioned IS
    'The key includes first_event_at because a partitioned table''s keys must include its partition key. session_id alone names one session all the same: merge_cowrie_events, the one writer of new sessions, updates the row of a known session_id wherever it is and inserts the others one merge at a time; ipintel.verify_sessions() checks it.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.session_id IS 'Cowrie session id.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.sensor IS 'Cowrie sensor (honeypot) name that logged the session.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.first_event_at IS 'Time of the first event of the session (UTC). The partition key: its month (UTC) says which partition holds the session; a filter on it reads only the months it covers.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.last_event_at IS 'Time of the last event of the session (UTC).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.protocol IS 'ssh or telnet (cowrie.session.connect).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.source_ip IS 'Attacker address (normalised like ip_inventory.ip).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.src_port IS 'Attacker TCP source port (cowrie.session.connect).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.dst_ip IS 'Honeypot address the attacker connected to.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.dst_port IS 'Honeypot TCP port the attacker connected to (22, 23, 2222...).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.duration_seconds IS 'Session duration reported by cowrie.session.closed.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.client_version IS 'SSH client version string (cowrie.client.version); attacker-chosen text.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.hassh IS 'HASSH fingerprint of the SSH client key exchange (cowrie.client.kex).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.login_attempts IS 'Login attempts: cowrie.login.failed plus cowrie.login.success events.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.login_successes IS 'cowrie.login.success events.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.command_count IS 'Commands entered (cowrie.command.input events).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.download_count IS 'Files fetched by the attacker (cowrie.session.file_download events).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.event_count IS 'All events of the session, known or not.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_asn IS 'Snapshot: origin AS of the source IP at the session''s time: from routing history (prefix_origins) at its day, else ip_asn_history at its time, else its current_asn when the field was filled. Known once snapshot_asn_source is set (NULL then means not routed / not known by any source).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_country IS 'Snapshot: ip_inventory.geo_country when the field was filled. Known once snapshot_country_source is set.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_ip_type IS 'Snapshot: ip_inventory.ip_type when the field was filled (only once no source is still awaited). Known once snapshot_ip_type_source is set.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_is_scanner IS 'Snapshot: ip_inventory.is_scanner when the field was filled. Known once snapshot_is_scanner_source is set (NULL then means GreyNoise declined, e.g. IPv6).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_enrichment IS 'Snapshot: the full ip_inventory.enrichment document as it was when a snapshot field was last filled.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_at IS 'When the first snapshot field was filled; NULL means no field is known yet.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_asn_source IS
    'Where snapshot_asn came from: routing:<dataset>:<snapshot day> (routing history), <source>:history (the ip_asn_history range at the session''s time), <source>:current (current_asn when filled), bogon (never asked), none (every source answered or declined, none knew). Before revision 0022: the bare source name. NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_country_source IS
    'Where snapshot_country came from: maxmind (geolocation), cymru (registration country), bogon, none (XX: no source knew). NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_ip_type_source IS
    'Which source decided snapshot_ip_type: greynoise (riot, scanner), maxmind (anonymizer, routed), cymru (unrouted, routed), bogon, none (unknown). NULL: not known yet (filled only once no source is awaited).';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_is_scanner_source IS
    'Where snapshot_is_scanner came from: greynoise, bogon (never asked), none (GreyNoise declined or its window closed). NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries_partitioned.snapshot_complete_at IS
    'When every snapshot field became known: every enabled source had answered or declined (bogon, not applicable, not found), or its snapshot_window had closed. NULL: incomplete, see ipintel.snapshot_backlog.';

CREATE INDEX session_summaries_partitioned_first_event_at_brin_idx ON ipintel.session_summaries_partitioned USING brin (first_event_at);
COMMENT ON INDEX ipintel.session_summaries_partitioned_first_event_at_brin_idx IS 'Sessions arrive roughly in time order: a tiny BRIN index serves time-window scans.';
CREATE INDEX session_summaries_partitioned_source_ip_idx ON ipintel.session_summaries_partitioned (source_ip);
CREATE INDEX session_summaries_partitioned_snapshot_asn_idx ON ipintel.session_summaries_partitioned (snapshot_asn);
CREATE INDEX session_summaries_partitioned_snapshot_country_idx ON ipintel.session_summaries_partitioned (snapshot_country);
CREATE INDEX session_summaries_partitioned_incomplete_snapshot_idx ON ipintel.session_summaries_partitioned (source_ip) WHERE snapshot_complete_at IS NULL;
COMMENT ON INDEX ipintel.session_summaries_partitioned_incomplete_snapshot_idx IS 'Finds the sessions whose snapshot is still incomplete.';

CREATE INDEX session_summaries_partitioned_window_idx ON ipintel.session_summaries_partitioned (first_event_at)
    INCLUDE (snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, source_ip,
             last_event_at);
COMMENT ON INDEX ipintel.session_summaries_partitioned_window_idx IS
    'Window queries on the snapshot columns (top ASNs / countries in a time range): first_event_at with the snapshot ASN and country and the source IP, so session_attribution''s window aggregates are index-only scans; with last_event_at, verify_counts'' recount per IP reads this index instead of the table.';

CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at
    ON ipintel.session_summaries_partitioned
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

GRANT SELECT ON ipintel.session_summaries_partitioned TO ipintel_reader, ipintel_loader;

CREATE TABLE ipintel.session_summaries_default PARTITION OF ipintel.session_summaries_partitioned DEFAULT;
COMMENT ON TABLE ipintel.session_summaries_default IS
    'Sessions whose month has no partition of its own yet (ensure_session_partitions could not take its locks, or a writer other than ingest). Normally empty: the next ensure_session_partitions for that month moves them into its partition.';
GRANT SELECT ON ipintel.session_summaries_default TO ipintel_reader, ipintel_loader;

-- The month partitions: every month with sessions (found by one probe of the window index per
-- month, not a scan), this month and the next. Named, commented and granted as
-- ensure_session_partitions (created by the swap) makes them.
DO $$
DECLARE
    v_month timestamptz;
    v_name text;
BEGIN
    FOR v_month IN
        WITH RECURSIVE months(month) AS (
            SELECT date_trunc('month', min(s.first_event_at)) FROM ipintel.session_summaries s
            UNION ALL
            SELECT (SELECT date_trunc('month', min(s.first_event_at)) FROM ipintel.session_summaries s
                    WHERE s.first_event_at >= m.month + interval '1 month')
            FROM months m
            WHERE m.month IS NOT NULL)
        SELECT x.month FROM months x WHERE x.month IS NOT NULL
        UNION
        SELECT date_trunc('month', t) FROM unnest(ARRAY[now(), now() + interval '1 month']) AS t
        ORDER BY 1
    LOOP
        v_name := 'session_summaries_' || to_char(v_month, 'YYYY_MM');
        EXECUTE format('CREATE TABLE ipintel.%I PARTITION OF ipintel.session_summaries_partitioned FOR VALUES FROM (%L) TO (%L)',
                       v_name, v_month, v_month + interval '1 month');
        EXECUTE format('COMMENT ON TABLE ipintel.%I IS %L', v_name,
                       format('Sessions that started in %s (UTC): a partition of session_summaries, made by ensure_session_partitions.',
                              to_char(v_month, 'YYYY-MM')));
        EXECUTE format('GRANT SELECT ON ipintel.%I TO ipintel_reader, ipintel_loader', v_name);
    END LOOP;
END;
$$;

------------------------------------------------------------------------------------------
-- Until the swap: the copy's progress, the trigger that keeps the two tables equal, the copy
------------------------------------------------------------------------------------------
CREATE TABLE ipintel.session_summaries_copy (
    last_session_id text,
    rows_copied     bigint      NOT NULL DEFAULT 0,
    batches         bigint      NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
COMMENT ON TABLE ipintel.session_summaries_copy IS
    'Revision 0027, until its swap: how far copy_sessions_to_partitions has copied session_summaries into session_summaries_partitioned (by session_id). One row.';
COMMENT ON COLUMN ipintel.session_summaries_copy.last_session_id IS 'The last session_id copied; the next batch starts after it.';
COMMENT ON COLUMN ipintel.session_summaries_copy.rows_copied IS 'Rows the batches copied (rows the trigger had already repeated are not counted).';
COMMENT ON COLUMN ipintel.session_summaries_copy.batches IS 'Batches committed.';
COMMENT ON COLUMN ipintel.session_summaries_copy.started_at IS 'When 0027''s first part ran.';
COMMENT ON COLUMN ipintel.session_summaries_copy.finished_at IS 'When the last batch found nothing more to copy; the swap refuses to run before.';
INSERT INTO ipintel.session_summaries_copy DEFAULT VALUES;

-- Every change to a session is repeated on the partitioned table in the writer's transaction: a
-- row already copied is replaced, a row not yet copied is added (the copy then skips it), a new
-- session is added. An update replaces (delete, insert) so a first_event_at moved to another
-- month lands in that month's partition.
CREATE FUNCTION ipintel.mirror_session_to_partitioned()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM ipintel.session_summaries_partitioned p
        WHERE p.session_id = OLD.session_id AND p.first_event_at = OLD.first_event_at;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO ipintel.session_summaries_partitioned SELECT NEW.*;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.mirror_session_to_partitioned() IS
    'Revision 0027, until its swap: repeats an insert, update or delete of session_summaries on session_summaries_partitioned.';
CREATE TRIGGER session_summaries_mirror_to_partitioned
    AFTER INSERT OR UPDATE OR DELETE ON ipintel.session_summaries
    FOR EACH ROW EXECUTE FUNCTION ipintel.mirror_session_to_partitioned();

-- The copy: batches of p_batch_rows sessions in session_id order, each its own transaction
-- (COMMIT inside: run it with CALL outside a transaction block; a procedure that commits cannot
-- carry a SET clause, hence no search_path here and every name qualified). A batch locks its rows
-- FOR SHARE while it copies them: a writer of one of them waits for the batch's commit (about a
-- second), then the trigger repeats its change on the copied row; a row changed before the batch
-- read it is copied as changed. Rows the trigger already added are skipped (ON CONFLICT). Stopped
-- at any point, it resumes after the last batch committed.
CREATE PROCEDURE ipintel.copy_sessions_to_partitions(p_batch_rows integer DEFAULT 10000)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_last text;
    v_batch_last text;
    v_read bigint;
    v_copied bigint;
BEGIN
    LOOP
        SELECT c.last_session_id INTO v_last FROM ipintel.session_summaries_copy c;
        WITH batch AS (
            SELECT s.* FROM ipintel.session_summaries s
            -- one range condition, so a generic plan still walks the primary key from v_last
            WHERE s.session_id >= coalesce(v_last, '') AND s.session_id IS DISTINCT FROM v_last
            ORDER BY s.session_id
            LIMIT p_batch_rows
            FOR SHARE
        ), copied AS (
            INSERT INTO ipintel.session_summaries_partitioned SELECT * FROM batch
            ON CONFLICT DO NOTHING
            RETURNING 1)
        SELECT (SELECT max(b.session_id) FROM batch b), (SELECT count(*) FROM batch), (SELECT count(*) FROM copied)
        INTO v_batch_last, v_read, v_copied;
        IF v_read = 0 THEN
            UPDATE ipintel.session_summaries_copy SET finished_at = pg_catalog.clock_timestamp();
            COMMIT;
            EXIT;
        END IF;
        UPDATE ipintel.session_summaries_copy
        SET last_session_id = v_batch_last, rows_copied = rows_copied + v_copied, batches = batches + 1;
        COMMIT;
    END LOOP;
END;
$$;
COMMENT ON PROCEDURE ipintel.copy_sessions_to_partitions(integer) IS
    'Revision 0027, until its swap: copies session_summaries into session_summaries_partitioned in batches of p_batch_rows sessions, one transaction each, resuming after the last batch committed (session_summaries_copy). CALL it outside a transaction block; ingest and enrich may run meanwhile.';
