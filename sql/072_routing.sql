-- From sql/072_routing.sql
-- Dated routing history: which origin AS announced a prefix, as of each loaded routing-table
-- snapshot (CAIDA RouteViews pfx2as, pyasn IPASN files, iptoasn dumps). Sessions are attributed
-- from it as of their own date, however late their logs are loaded.
--
-- Storage is run-length: a (prefix, origin) pair seen in consecutive snapshots of a dataset is
-- one row whose `valid` spans them, so a pair that stays the same over 1,000 daily snapshots is
-- one row. Snapshots may be loaded in any order (an older one splits or joins runs) and loading
-- one twice changes nothing: the table depends only on the set of snapshots loaded.

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
    sha256       text,
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
COMMENT ON COLUMN ipintel.routing_snapshots.sha256 IS
    'SHA-256 of the file (hex): ipintel routing load skips a file whose snapshot is loaded, and says so when the file differs. NULL: loaded before revision 0029.';

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
COMMENT ON COLUMN ipintel.prefix_origins.prefix_range IS 'Generated: the prefix as an ip4r iprange. Indexed for the longest-match lookups until revision 0082, which looks prefixes up by prefix itself (prefix_origins_prefix_idx); kept for queries that use it.';
CREATE UNIQUE INDEX prefix_origins_run_key ON ipintel.prefix_origins (dataset, prefix, asn, lower(valid));
COMMENT ON INDEX ipintel.prefix_origins_run_key IS 'One run per pair and first day.';
-- Which prefixes contain an address: an SP-GiST radix tree on the prefix itself (revision 0082),
-- the day a filter on the few runs of each prefix found. Until 0082 a GiST on the prefix as an ip4r
-- range (prefix_range): the same answers (1M lookups over six of the bench's daily tables: the same
-- rows), each probe about 1.7 times slower (1M (IP, day) pairs: 28 to 31 s against 16 to 19 s), and
-- built about six times slower (1.18M rows: 9.6 s against 1.5 s). SP-GiST never marks an index
-- entry dead from a scan (it has no kill_prior_tuple), the mechanism by which GiST inet indexes
-- lost live rows (issue 9); tests/test_ip_index_integrity.py compares its answers with a sequential
-- scan's after loads that close and open runs. Revision 0082 builds it CONCURRENTLY.
CREATE INDEX prefix_origins_prefix_idx ON ipintel.prefix_origins USING spgist (prefix inet_ops);
COMMENT ON INDEX ipintel.prefix_origins_prefix_idx IS
    'Which prefixes contain an address (prefix >>= ip; the day is checked on the rows found): SP-GiST inet_ops, a radix tree (revision 0082; no GiST on inet: issue 9).';

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

-- The run-length merge of one dated snapshot, shared by routing history (prefix_origins),
-- geolocation builds (sql/073_geo_builds.sql) and range lists (sql/073_range_lists.sql): p_runs
-- holds, per series (p_series_column = p_series, e.g. a dataset), runs of a key (p_key_columns,
-- e.g. prefix and asn) over `valid`;
-- p_staged holds the keys of the snapshot taken on p_day (batch p_batch_id; rows whose key has a
-- NULL are not part of it). With p_prev the series' latest snapshot before p_day and p_next its
-- earliest after it (either may be NULL), a key of the snapshot extends or joins the runs ending
-- at p_prev and starting at p_next, or opens a run; a key absent from it whose run spans the day
-- is split around it (or, for a newest snapshot, closed after p_prev). The table depends only on
-- the set of snapshots merged, in any order. Returns the runs opened and closed (or split), and
-- the snapshot's entries (its distinct keys).
--
-- One statement (revision 0077): the snapshot's keys and the runs that hold its day are compared
-- once, in one full join; each change below touches rows the others do not (a run spanning the
-- day is never one ending at p_prev or starting at p_next), so none needs to see another's work.
-- Before, the keys in no run were worked out again by each of four statements and the absent
-- keys by a fifth: five hash joins of the whole snapshot against the runs (a daily routing table
-- of 1.15M pairs: 4.5 s of a 6.2 s load, on disk at the default work_mem).
CREATE FUNCTION ipintel.merge_dated_runs(p_runs regclass, p_staged regclass, p_series_column text, p_series text,
                                         p_key_columns text[], p_batch_id bigint, p_day date, p_prev date,
                                         p_next date)
    RETURNS TABLE (opened bigint, closed bigint, entries bigint)
    LANGUAGE plpgsql
    SET search_path = ''
    -- The snapshot's keys and the runs holding its day are hashed whole (a routing table: 1.15M
    -- of each): in memory, not in 16 batches on disk.
    SET work_mem = '64MB'
    SET hash_mem_multiplier = 4
AS $$
DECLARE
    -- The key columns, bare; and a format: the key columns of the row aliased %1$s.
    v_keys text := (SELECT string_agg(format('%I', k), ', ') FROM unnest(p_key_columns) k);
    v_keys_of text := (SELECT string_agg(format('%%1$s.%1$I', k), ', ') FROM unnest(p_key_columns) k);
    -- A staged row is part of the snapshot when its key has no NULL.
    v_complete text := (SELECT string_agg(format('r.%I IS NOT NULL', k), ' AND ') FROM unnest(p_key_columns) k);
    -- A format: the rows aliased %1$s and %2$s have the same key.
    v_same_key text := (SELECT string_agg(format('%%1$s.%1$I = %%2$s.%1$I', k), ' AND ') FROM unnest(p_key_columns) k);
    -- The runs ending at p_prev and starting at p_next of the keys in no run: joined only when
    -- there is such a snapshot.
    v_neighbours text := concat_ws(' ',
        CASE WHEN p_prev IS NOT NULL THEN
            format('LEFT JOIN %s b ON b.%I = $1 AND %s AND upper(b.valid) = $4 + 1',
                   p_runs, p_series_column, format(v_same_key, 'b', 'c')) END,
        CASE WHEN p_next IS NOT NULL THEN
            format('LEFT JOIN %s a ON a.%I = $1 AND %s AND lower(a.valid) = $5',
                   p_runs, p_series_column, format(v_same_key, 'a', 'c')) END);
    v_neighbour_rows text :=
        CASE WHEN p_prev IS NOT NULL THEN 'b.ctid AS before_row' ELSE 'NULL::tid AS before_row' END || ', '
        || CASE WHEN p_next IS NOT NULL THEN 'a.ctid AS after_row, a.valid AS after_valid'
                ELSE 'NULL::tid AS after_row, NULL::daterange AS after_valid' END;
    v_opened bigint;
    v_closed bigint;
    v_entries bigint;
BEGIN
    -- $1 p_series, $2 p_batch_id, $3 p_day, $4 p_prev, $5 p_next.
    EXECUTE format($q$
        WITH compared AS MATERIALIZED (
            -- The snapshot's keys beside the series' runs that hold the day, kept where they
            -- differ: a key in no run (row_id NULL) and a run whose key the snapshot lacks (the
            -- key NULL). A key staged twice matches its run twice and is kept neither time, or is
            -- kept twice and made one in fresh: the snapshot's rows are not made distinct first
            -- (a routing table: a hash of 1.15M rows for a few thousand that differ).
            SELECT s.*, h.row_id, h.valid
            FROM (SELECT %3$s FROM %2$s r WHERE r.batch_id = $2 AND %4$s) s
            FULL JOIN (SELECT o.ctid AS row_id, o.* FROM %1$s o WHERE o.%5$I = $1 AND o.valid @> $3) h
                   ON %6$s
            WHERE s.%7$I IS NULL OR h.row_id IS NULL
        ), cut AS (
            -- 1. A run spanning the day whose key the snapshot lacks ends after p_prev ...
            UPDATE %1$s o SET valid = daterange(lower(c.valid), $4 + 1)
            FROM compared c
            WHERE c.%7$I IS NULL AND lower(c.valid) < $3 AND o.ctid = c.row_id
            RETURNING %8$s, c.valid AS spanned
        ), resumed AS (
            -- ... and resumes at p_next (after a newest snapshot it stays closed).
            INSERT INTO %1$s (%5$I, %9$s, valid)
            SELECT $1, %9$s, daterange($5, upper(cut.spanned)) FROM cut WHERE $5 IS NOT NULL
        ), fresh AS MATERIALIZED (
            -- 2. The keys of the snapshot in no run, with their runs ending at p_prev (before_row)
            -- and starting at p_next (after_row), if any.
            SELECT %10$s, %11$s
            FROM (SELECT DISTINCT %10$s FROM compared c WHERE c.row_id IS NULL) c
            %12$s
        ), joined AS (
            -- a run on both sides: the later one goes, the earlier one spans both (extended)
            DELETE FROM %1$s a USING fresh f WHERE f.before_row IS NOT NULL AND a.ctid = f.after_row
        ), extended AS (
            -- the run ending at p_prev takes the day: to the end of the run at p_next, else to the
            -- day (open after a newest snapshot)
            UPDATE %1$s b
            SET valid = daterange(lower(b.valid), CASE WHEN f.after_row IS NOT NULL THEN upper(f.after_valid)
                                                       WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END)
            FROM fresh f WHERE b.ctid = f.before_row
        ), moved_back AS (
            -- only the run starting at p_next: it starts on the day
            UPDATE %1$s a SET valid = daterange($3, upper(a.valid))
            FROM fresh f WHERE f.before_row IS NULL AND a.ctid = f.after_row
        ), opened AS (
            -- neither: a run of the day (open after a newest snapshot)
            INSERT INTO %1$s (%5$I, %9$s, valid)
            SELECT $1, %13$s, daterange($3, CASE WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END)
            FROM fresh f WHERE f.before_row IS NULL AND f.after_row IS NULL
            ORDER BY %13$s
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM opened), (SELECT count(*) FROM cut)$q$,
        p_runs, p_staged, format(v_keys_of, 'r'), v_complete, p_series_column, format(v_same_key, 's', 'h'),
        p_key_columns[1], format(v_keys_of, 'o'), v_keys, format(v_keys_of, 'c'), v_neighbour_rows, v_neighbours,
        format(v_keys_of, 'f'))
    INTO v_opened, v_closed
    USING p_series, p_batch_id, p_day, p_prev, p_next;
    -- The snapshot's distinct keys are now the series' runs that hold its day, one run each:
    -- counted there (revision 0077), one pass over the runs, for the callers' count of entries,
    -- rather than by a DISTINCT of the staged rows (a routing table's 1.15M pairs: a hash spilled
    -- to disk, about 1 s of a daily load).
    EXECUTE format('SELECT count(*) FROM %s o WHERE o.%I = $1 AND o.valid @> $2', p_runs, p_series_column)
    INTO v_entries
    USING p_series, p_day;
    RETURN QUERY SELECT v_opened, v_closed, v_entries;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date) IS
    'The run-length merge of one dated snapshot (routing history, geolocation builds): the keys (p_key_columns) staged in p_staged under p_batch_id, as the snapshot of series p_series (p_runs.p_series_column) taken on p_day, between its snapshots p_prev and p_next, into the runs of p_runs (valid daterange). Any merge order of the same snapshots gives the same table. Returns the runs opened and closed, and the snapshot''s entries (its distinct keys: the runs that hold p_day after the merge). Called by load_routing_snapshot, load_geo_build and load_range_snapshot.';

-- The inverse for old snapshots: drops a series' snapshots before p_first (its earliest snapshot
-- kept; NULL: none is kept) from the runs of p_runs, leaving the table as if only the snapshots
-- from p_first on had been merged: a run that ends before p_first goes, one that reaches it now
-- starts there (it contains p_first only if p_first's snapshot had its key). Returns the runs
-- deleted and the runs cut.
CREATE FUNCTION ipintel.trim_dated_runs(p_runs regclass, p_series_column text, p_series text, p_first date)
    RETURNS TABLE (deleted bigint, cut bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_deleted bigint;
    v_cut bigint;
BEGIN
    EXECUTE format('DELETE FROM %s o WHERE o.%I = $1 AND ($2 IS NULL OR upper(o.valid) <= $2)', p_runs, p_series_column)
    USING p_series, p_first;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    EXECUTE format('UPDATE %s o SET valid = daterange($2, upper(o.valid)) WHERE o.%I = $1 AND lower(o.valid) < $2',
                   p_runs, p_series_column)
    USING p_series, p_first;
    GET DIAGNOSTICS v_cut = ROW_COUNT;
    RETURN QUERY SELECT v_deleted, v_cut;
END;
$$;
COMMENT ON FUNCTION ipintel.trim_dated_runs(regclass, text, text, date) IS
    'Drops the snapshots of series p_series taken before p_first (its earliest snapshot kept; NULL: all) from the runs of p_runs (merge_dated_runs), leaving the table as if only the later ones had been merged. Returns the runs deleted and cut. Called by forget_geo_builds.';

-- Merges one staged file as the snapshot of p_dataset taken on p_taken_on (merge_dated_runs),
-- with its rejected lines, and records where it came from (p_file, its sha256).
CREATE FUNCTION ipintel.load_routing_snapshot(p_dataset text, p_taken_on date, p_file text, p_batch_id bigint,
                                              p_sha256 text DEFAULT NULL)
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

    INSERT INTO ipintel.routing_snapshots (dataset, taken_on, file, sha256)
    VALUES (p_dataset, p_taken_on, p_file, p_sha256)
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

    SELECT m.opened, m.closed, m.entries INTO v_opened, v_closed, v_prefixes
    FROM ipintel.merge_dated_runs('ipintel.prefix_origins', 'ipintel_staging.routing_prefixes', 'dataset', p_dataset,
                                  '{prefix,asn}', p_batch_id, p_taken_on, v_prev, v_next) m;

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
COMMENT ON FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint, text) IS
    'Merges the staged (prefix, origin) pairs of one routing-table file (ipintel_staging.routing_prefixes, batch p_batch_id) as the snapshot of p_dataset taken on p_taken_on into prefix_origins (run-length, merge_dated_runs; any load order gives the same table), with its rejected lines and the file''s sha256. Loaded before: nothing changes (loaded = false).';

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
-- snapshot wins, then by rank. One index probe per pair and dataset (prefix_origins_prefix_idx,
-- SP-GiST, revision 0082; a GiST on prefix_range before): the probe is a LATERAL
-- subquery the planner cannot flatten, because it estimates an unnest of parameters at 10 rows
-- and then joined every pair to every run of the snapshot (ip_timeline of a busy IP: 2.8 s
-- against 47 ms, measured on 1,828 sessions).
CREATE FUNCTION ipintel.routing_asns(p_ips inet[], p_days date[])
    RETURNS TABLE (ip inet, day date, asn bigint, dataset text, taken_on date, prefix cidr)
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    WITH pairs AS (
        SELECT DISTINCT q.ip, q.day FROM unnest(p_ips, p_days) AS q(ip, day)
        -- a one-time filter: with no snapshot loaded at all the pairs are not even gathered
        WHERE EXISTS (SELECT 1 FROM ipintel.routing_snapshots)
    ), snapshots AS MATERIALIZED (  -- once per day and dataset, not once per pair
        SELECT x.day, d.dataset, d.rank, ipintel.routing_snapshot_on(d.dataset, x.day) AS taken_on
        FROM (SELECT DISTINCT pairs.day FROM pairs) x
        CROSS JOIN ipintel.routing_datasets d
    )
    SELECT DISTINCT ON (q.ip, q.day) q.ip, q.day, o.asn, w.dataset, w.taken_on, o.prefix
    FROM pairs q
    JOIN snapshots w ON w.day = q.day AND w.taken_on IS NOT NULL
    CROSS JOIN LATERAL (
        SELECT p.asn, p.prefix
        FROM ipintel.prefix_origins p
        WHERE p.dataset = w.dataset
          AND p.prefix OPERATOR(pg_catalog.>>=) q.ip
          AND p.valid @> w.taken_on
        OFFSET 0  -- a fence: probe per pair, never flattened into a join of everything
    ) o
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
