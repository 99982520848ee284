-- From sql/072_routing.sql
-- Dated routing history: which origin AS announced a prefix, as of each loaded routing-table
-- snapshot (CAIDA RouteViews pfx2as, pyasn IPASN files, iptoasn dumps). Sessions are attributed
-- from it as of their own date, however late their logs are loaded.
--
-- Storage is run-length (sql/071_dated_runs.sql): a (prefix, origin) pair seen in consecutive
-- snapshots of a dataset is one row whose `valid` spans them, so a pair that stays the same over
-- 1,000 daily snapshots is one row. Snapshots may be loaded in any order (an older one splits or
-- joins runs) and loading one twice changes nothing: the table depends only on the set of
-- snapshots loaded.

CREATE EXTENSION IF NOT EXISTS ip4r WITH SCHEMA public;

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

-- Merges one staged file as the snapshot of p_dataset taken on p_taken_on: its (prefix, origin)
-- pairs into the runs (merge_dated_runs, between the dataset's snapshots just before and just
-- after it), its rejected lines, its counts. Every step is one set-based statement.
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
    v_opened bigint;
    v_closed bigint;
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

    -- The runs: the merge every dated snapshot shares (sql/071_dated_runs.sql).
    SELECT m.opened, m.closed INTO v_opened, v_closed
    FROM ipintel.merge_dated_runs('ipintel.prefix_origins', 'dataset', p_dataset, 'ipintel_staging.routing_prefixes',
                                  ARRAY['prefix', 'asn'], p_batch_id, p_taken_on, v_prev, v_next) m;

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
    RETURN QUERY SELECT v_snapshot, true, v_prefixes, v_opened, v_closed, v_rejects;
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
