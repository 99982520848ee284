-- From migrations/versions/0022_routing_history.upgrade.sql (sql/072_routing.sql, and take_snapshots
-- of sql/075_snapshots.sql, as of this revision)
-- Dated routing history (issue 11): routing-table snapshots stored run-length in prefix_origins,
-- looked up with ip4r's GiST; snapshots take a session's ASN from it at the session's day first.
-- New tables only (no lock on existing ones beyond replacing take_snapshots).
-- The extension needs a superuser (or one created beforehand by a DBA: IF NOT EXISTS); the rest
-- runs as ipintel_owner like every revision after 0021.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE EXTENSION IF NOT EXISTS ip4r WITH SCHEMA public;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'ipintel_owner')
       AND pg_catalog.pg_has_role(current_user, 'ipintel_owner', 'MEMBER') THEN
        SET LOCAL ROLE ipintel_owner;
    END IF;
END;
$$;

CREATE TABLE ipintel.routing_datasets (
    dataset     text     NOT NULL,
    max_age     interval NOT NULL DEFAULT interval '7 days',
    rank        bigint   NOT NULL,
    CONSTRAINT routing_datasets_pkey PRIMARY KEY (dataset),
    CONSTRAINT routing_datasets_rank_key UNIQUE (rank),
    CONSTRAINT routing_datasets_name_is_a_lower_case_name CHECK (dataset ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT routing_datasets_max_age_is_not_negative CHECK (max_age >= interval '0')
);
COMMENT ON TABLE ipintel.routing_datasets IS
    'Routing-table datasets (one per publisher and format), with how old a snapshot may be to attribute a session, and which dataset wins when two have snapshots equally close. A dataset is registered by its first load.';
COMMENT ON COLUMN ipintel.routing_datasets.dataset IS 'Dataset name, e.g. routeviews (CAIDA pfx2as), pyasn, iptoasn.';
COMMENT ON COLUMN ipintel.routing_datasets.max_age IS
    'A snapshot taken more than this before a session does not attribute it (default 7 days).';
COMMENT ON COLUMN ipintel.routing_datasets.rank IS 'Precedence when two datasets have snapshots taken the same day (1 first).';

CREATE TABLE ipintel.routing_snapshots (
    snapshot_id  bigint      GENERATED ALWAYS AS IDENTITY,
    dataset      text        NOT NULL,
    taken_on     date        NOT NULL,
    file         text        NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT now(),
    prefixes     bigint      NOT NULL DEFAULT 0,
    rejects      bigint      NOT NULL DEFAULT 0,
    CONSTRAINT routing_snapshots_pkey PRIMARY KEY (snapshot_id),
    CONSTRAINT routing_snapshots_dataset_taken_on_key UNIQUE (dataset, taken_on),
    CONSTRAINT routing_snapshots_dataset_fkey FOREIGN KEY (dataset) REFERENCES ipintel.routing_datasets (dataset),
    CONSTRAINT routing_snapshots_counts_are_not_negative CHECK (prefixes >= 0 AND rejects >= 0)
);
COMMENT ON TABLE ipintel.routing_snapshots IS 'Every routing-table snapshot loaded: one per dataset and day.';
COMMENT ON COLUMN ipintel.routing_snapshots.snapshot_id IS 'Snapshot number.';
COMMENT ON COLUMN ipintel.routing_snapshots.dataset IS 'The dataset it belongs to (routing_datasets).';
COMMENT ON COLUMN ipintel.routing_snapshots.loaded_at IS 'When ipintel routing load merged it.';
COMMENT ON COLUMN ipintel.routing_snapshots.taken_on IS 'The day the routing table was dumped (from the file name or --date).';
COMMENT ON COLUMN ipintel.routing_snapshots.file IS 'The file it was loaded from (as given to ipintel routing load).';
COMMENT ON COLUMN ipintel.routing_snapshots.prefixes IS '(prefix, origin) pairs in the snapshot.';
COMMENT ON COLUMN ipintel.routing_snapshots.rejects IS 'Lines of the file that could not be read (ipintel.routing_rejects).';

CREATE TABLE ipintel.prefix_origins (
    dataset      text      NOT NULL,
    prefix       cidr      NOT NULL,
    asn          bigint    NOT NULL,
    valid        daterange NOT NULL,
    prefix_range public.iprange NOT NULL GENERATED ALWAYS AS (public.iprange(prefix)) STORED,
    CONSTRAINT prefix_origins_dataset_fkey FOREIGN KEY (dataset) REFERENCES ipintel.routing_datasets (dataset),
    CONSTRAINT prefix_origins_asn_is_32_bit CHECK (asn BETWEEN 0 AND 4294967295),
    CONSTRAINT prefix_origins_valid_is_bounded_below CHECK (NOT lower_inf(valid) AND NOT isempty(valid))
);
COMMENT ON TABLE ipintel.prefix_origins IS
    'Routing history, run-length: prefix announced by origin asn in every snapshot of the dataset taken on a day in valid. A multi-origin prefix has one row per origin.';
COMMENT ON COLUMN ipintel.prefix_origins.dataset IS 'The dataset whose snapshots showed the pair (routing_datasets).';
COMMENT ON COLUMN ipintel.prefix_origins.prefix IS 'The announced prefix.';
COMMENT ON COLUMN ipintel.prefix_origins.asn IS 'An origin AS of the prefix.';
COMMENT ON COLUMN ipintel.prefix_origins.valid IS
    'The days of the consecutive snapshots that showed the pair: from the first to the last (upper bound exclusive); unbounded above while the dataset''s latest snapshot still shows it.';
COMMENT ON COLUMN ipintel.prefix_origins.prefix_range IS 'Generated: the prefix as an ip4r iprange, for the GiST longest-match lookups.';
CREATE UNIQUE INDEX prefix_origins_run_key ON ipintel.prefix_origins (dataset, prefix, asn, lower(valid));
COMMENT ON INDEX ipintel.prefix_origins_run_key IS 'One run per pair and first day.';
CREATE INDEX prefix_origins_lookup_idx ON ipintel.prefix_origins USING gist (prefix_range, valid);
COMMENT ON INDEX ipintel.prefix_origins_lookup_idx IS
    'Which prefixes contain an address on a day: ip4r''s own GiST operator class (not btree_gist''s inet one, which lost rows: issue 9).';

CREATE TABLE ipintel.routing_rejects (
    snapshot_id  bigint NOT NULL,
    line_no      bigint NOT NULL,
    reason       text   NOT NULL,
    excerpt      text   NOT NULL,
    CONSTRAINT routing_rejects_pkey PRIMARY KEY (snapshot_id, line_no),
    CONSTRAINT routing_rejects_snapshot_id_fkey FOREIGN KEY (snapshot_id) REFERENCES ipintel.routing_snapshots (snapshot_id)
);
COMMENT ON TABLE ipintel.routing_rejects IS 'Lines of a routing-table file that could not be read: where, why, and an excerpt.';
COMMENT ON COLUMN ipintel.routing_rejects.snapshot_id IS 'The snapshot (file) the line belongs to.';
COMMENT ON COLUMN ipintel.routing_rejects.line_no IS 'Line number in the file (1 first).';
COMMENT ON COLUMN ipintel.routing_rejects.reason IS 'Why the line could not be read.';
COMMENT ON COLUMN ipintel.routing_rejects.excerpt IS 'The start of the line, control characters escaped.';

CREATE UNLOGGED TABLE ipintel_staging.routing_prefixes (
    batch_id bigint NOT NULL,
    prefix   cidr   NOT NULL,
    asn      bigint NOT NULL
);
COMMENT ON TABLE ipintel_staging.routing_prefixes IS 'Staging for load_routing_snapshot: the (prefix, origin) pairs of one file.';
CREATE INDEX routing_prefixes_batch_id_idx ON ipintel_staging.routing_prefixes (batch_id);

CREATE UNLOGGED TABLE ipintel_staging.routing_rejects (
    batch_id bigint NOT NULL,
    line_no  bigint NOT NULL,
    reason   text   NOT NULL,
    excerpt  text   NOT NULL
);
COMMENT ON TABLE ipintel_staging.routing_rejects IS 'Staging for load_routing_snapshot: the rejected lines of one file.';
CREATE INDEX routing_rejects_batch_id_idx ON ipintel_staging.routing_rejects (batch_id);

-- Merges one staged file as the snapshot of p_dataset taken on p_taken_on. With P the dataset's
-- latest snapshot before it and N its earliest after it (either may be missing), a pair in the
-- file extends or joins the runs ending at P and starting at N, or opens a run; a pair absent
-- from the file whose run spans the day is split around it (or, for a newest snapshot, closed
-- after P). Every step is one set-based statement.
CREATE FUNCTION ipintel.load_routing_snapshot(p_dataset text, p_taken_on date, p_file text, p_batch_id bigint)
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

-- The routing snapshot that attributes a session of day p_day, per dataset: the latest taken on
-- or before that day and no older than the dataset's max_age.
CREATE FUNCTION ipintel.routing_snapshot_on(p_dataset text, p_day date)
    RETURNS date
    LANGUAGE sql
    STABLE
RETURN (SELECT max(s.taken_on)
        FROM ipintel.routing_snapshots s
        JOIN ipintel.routing_datasets d ON d.dataset = s.dataset
        WHERE s.dataset = p_dataset AND s.taken_on <= p_day AND s.taken_on >= (p_day - d.max_age)::date);
COMMENT ON FUNCTION ipintel.routing_snapshot_on(text, date) IS
    'The day of the dataset''s latest snapshot taken on or before p_day and not older than its max_age; NULL when none.';

-- Set-based: the origin AS of each (ip, day) pair from routing history. For each dataset, the
-- snapshot of routing_snapshot_on (computed once per distinct day); in it, the longest prefix
-- containing the IP (its smallest origin when several announce it); the dataset with the latest
-- snapshot wins, then by rank. One GiST probe per pair and dataset.
CREATE FUNCTION ipintel.routing_asns(p_ips inet[], p_days date[])
    RETURNS TABLE (ip inet, day date, asn bigint, dataset text, taken_on date, prefix cidr)
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    WITH pairs AS (
        SELECT DISTINCT q.ip, q.day FROM unnest(p_ips, p_days) AS q(ip, day)
    ), snapshots AS MATERIALIZED (  -- once per day and dataset, not once per pair
        SELECT x.day, d.dataset, d.rank, ipintel.routing_snapshot_on(d.dataset, x.day) AS taken_on
        FROM (SELECT DISTINCT pairs.day FROM pairs) x
        CROSS JOIN ipintel.routing_datasets d
    )
    SELECT DISTINCT ON (q.ip, q.day) q.ip, q.day, o.asn, o.dataset, w.taken_on, o.prefix
    FROM pairs q
    JOIN snapshots w ON w.day = q.day AND w.taken_on IS NOT NULL
    JOIN ipintel.prefix_origins o
      ON o.dataset = w.dataset
     AND o.prefix_range OPERATOR(public.>>=) public.iprange(q.ip::cidr)
     AND o.valid @> w.taken_on
    ORDER BY q.ip, q.day, w.taken_on DESC, w.rank, masklen(o.prefix) DESC, o.asn;
END;
COMMENT ON FUNCTION ipintel.routing_asns(inet[], date[]) IS
    'Attack-time ASNs from routing history for parallel arrays of IPs and (UTC) days: per pair the longest prefix containing the IP in the latest snapshot (of any dataset) taken on or before the day and within the dataset''s max_age, with that snapshot. Pairs routing history does not cover are absent.';

CREATE FUNCTION ipintel.asn_at(p_ip inet, p_at timestamptz)
    RETURNS bigint
    LANGUAGE sql
    STABLE
RETURN (SELECT r.asn FROM ipintel.routing_asns(ARRAY[p_ip], ARRAY[(p_at AT TIME ZONE 'UTC')::date]) r);
COMMENT ON FUNCTION ipintel.asn_at(inet, timestamptz) IS
    'The origin AS announcing p_ip at p_at according to routing history (routing_asns, by UTC day); NULL when no snapshot within max_age covers it.';

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

COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn IS 'Snapshot: origin AS of the source IP at the session''s time: from routing history (prefix_origins) at its day, else ip_asn_history at its time, else its current_asn when the field was filled. Known once snapshot_asn_source is set (NULL then means not routed / not known by any source).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn_source IS
    'Where snapshot_asn came from: routing:<dataset>:<snapshot day> (routing history), <source>:history (the ip_asn_history range at the session''s time), <source>:current (current_asn when filled), bogon (never asked), none (every source answered or declined, none knew). Before revision 0022: the bare source name. NULL: not known yet, still fillable.';

-- CREATE OR REPLACE resets a function's attributes: the loader's entry point stays SECURITY DEFINER.
ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;
-- The loader loads snapshots (SECURITY DEFINER), COPYs their staging rows and reads the history;
-- the reader reads it (tables a revision after 0021 adds are readable by default).
ALTER FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) TO ipintel_loader;
GRANT SELECT, INSERT ON ipintel_staging.routing_prefixes, ipintel_staging.routing_rejects TO ipintel_loader;
GRANT SELECT ON ipintel.routing_datasets, ipintel.routing_snapshots, ipintel.prefix_origins, ipintel.routing_rejects
    TO ipintel_loader, ipintel_reader;
REVOKE EXECUTE ON FUNCTION ipintel.routing_snapshot_on(text, date), ipintel.routing_asns(inet[], date[]),
    ipintel.asn_at(inet, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.routing_snapshot_on(text, date), ipintel.routing_asns(inet[], date[]),
    ipintel.asn_at(inet, timestamptz) TO ipintel_loader, ipintel_reader;
