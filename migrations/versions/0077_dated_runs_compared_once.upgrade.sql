-- From migrations/versions/0077_dated_runs_compared_once.upgrade.sql (sql/072_routing.sql, sql/073_geo_builds.sql, sql/073_range_lists.sql)
-- squawk-ignore-file ban-drop-function
-- merge_dated_runs in one statement (a snapshot's keys and the runs holding its day compared once,
-- in one full join), returning the snapshot's entries too; load_routing_snapshot, load_geo_build
-- and load_range_snapshot take their count of entries from it.
-- Locks: none on a table that holds rows (catalog rows of four functions).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

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
-- A third column (entries) changes the result type: dropped and made again; its callers are PL/pgSQL,
-- which resolve it when they run.
DROP FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date);
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
-- as sql/099_roles.sql leaves every function: no EXECUTE for PUBLIC
REVOKE EXECUTE ON FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date) FROM PUBLIC;

-- Merges one staged file as the snapshot of p_dataset taken on p_taken_on (merge_dated_runs),
-- with its rejected lines, and records where it came from (p_file, its sha256).
CREATE OR REPLACE FUNCTION ipintel.load_routing_snapshot(p_dataset text, p_taken_on date, p_file text, p_batch_id bigint,
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

-- Merges one staged build of p_edition (a file of p_source's) made at p_build_epoch into
-- geo_countries and geo_asns (merge_dated_runs, as routing history), and records it.
CREATE OR REPLACE FUNCTION ipintel.load_geo_build(p_edition text, p_source text, p_build_epoch bigint, p_database_type text,
                                       p_file text, p_sha256 text, p_batch_id bigint)
    RETURNS TABLE (build_id bigint, loaded boolean, countries bigint, asns bigint, runs_opened bigint,
                   runs_closed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_built_on date := (to_timestamp(p_build_epoch) AT TIME ZONE 'UTC')::date;
    v_build bigint;
    v_prev date;
    v_next date;
    v_countries bigint;
    v_asns bigint;
    v_country_runs record;
    v_asn_runs record;
BEGIN
    INSERT INTO ipintel.geo_editions (edition, source) VALUES (p_edition, p_source) ON CONFLICT (edition) DO NOTHING;
    -- One load of an edition at a time (its runs are read, then written).
    PERFORM 1 FROM ipintel.geo_editions e WHERE e.edition = p_edition AND e.source = p_source FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'edition % belongs to source %, not %', p_edition,
            (SELECT e.source FROM ipintel.geo_editions e WHERE e.edition = p_edition), p_source
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;

    INSERT INTO ipintel.geo_builds (edition, built_on, build_epoch, database_type, file, sha256)
    VALUES (p_edition, v_built_on, p_build_epoch, p_database_type, p_file, p_sha256)
    ON CONFLICT (edition, built_on) DO NOTHING
    RETURNING geo_builds.build_id INTO v_build;
    IF v_build IS NULL THEN
        -- Loaded before: nothing changes.
        DELETE FROM ipintel_staging.geo_ranges r WHERE r.batch_id = p_batch_id;
        RETURN QUERY SELECT b.build_id, false, b.countries, b.asns, 0::bigint, 0::bigint
                     FROM ipintel.geo_builds b WHERE b.edition = p_edition AND b.built_on = v_built_on;
        RETURN;
    END IF;

    SELECT max(b.built_on) FILTER (WHERE b.built_on < v_built_on), min(b.built_on) FILTER (WHERE b.built_on > v_built_on)
    INTO v_prev, v_next
    FROM ipintel.geo_builds b WHERE b.edition = p_edition;
    SELECT * INTO v_country_runs
    FROM ipintel.merge_dated_runs('ipintel.geo_countries', 'ipintel_staging.geo_ranges', 'edition', p_edition,
                                  '{first_ip,last_ip,country}', p_batch_id, v_built_on, v_prev, v_next);
    SELECT * INTO v_asn_runs
    FROM ipintel.merge_dated_runs('ipintel.geo_asns', 'ipintel_staging.geo_ranges', 'edition', p_edition,
                                  '{first_ip,last_ip,asn}', p_batch_id, v_built_on, v_prev, v_next);
    -- the build's distinct ranges of each kind, as merge_dated_runs counts them (revision 0077)
    v_countries := v_country_runs.entries;
    v_asns := v_asn_runs.entries;
    UPDATE ipintel.geo_builds b SET countries = v_countries, asns = v_asns WHERE b.build_id = v_build;

    DELETE FROM ipintel_staging.geo_ranges r WHERE r.batch_id = p_batch_id;
    -- As for prefix_origins: the planner must know their size right after a load.
    ANALYZE ipintel.geo_countries;
    ANALYZE ipintel.geo_asns;
    RETURN QUERY SELECT v_build, true, v_countries, v_asns, v_country_runs.opened + v_asn_runs.opened,
                        v_country_runs.closed + v_asn_runs.closed;
END;
$$;

-- Merges one staged file as the snapshot of p_list taken on p_taken_on: its entries into the
-- runs (merge_dated_runs), its count. A snapshot loaded before changes nothing.
CREATE OR REPLACE FUNCTION ipintel.load_range_snapshot(p_list text, p_taken_on date, p_file text, p_batch_id bigint)
    RETURNS TABLE (snapshot_id bigint, loaded boolean, entries bigint, opened bigint, closed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_holds text;
    v_snapshot bigint;
    v_prev date;
    v_next date;
    v_entries bigint;
    v_opened bigint;
    v_closed bigint;
BEGIN
    -- One load of a list at a time (its runs are read, then written).
    SELECT l.holds INTO v_holds FROM ipintel.range_lists l WHERE l.list = p_list FOR UPDATE;
    IF v_holds IS NULL THEN
        RAISE EXCEPTION 'unknown range list %', p_list USING ERRCODE = 'invalid_parameter_value',
            HINT = 'the lists are the rows of ipintel.range_lists';
    END IF;

    INSERT INTO ipintel.range_snapshots (list, taken_on, file)
    VALUES (p_list, p_taken_on, p_file)
    ON CONFLICT (list, taken_on) DO NOTHING
    RETURNING range_snapshots.snapshot_id INTO v_snapshot;
    IF v_snapshot IS NOT NULL THEN
        SELECT max(s.taken_on) FILTER (WHERE s.taken_on < p_taken_on), min(s.taken_on) FILTER (WHERE s.taken_on > p_taken_on)
        INTO v_prev, v_next
        FROM ipintel.range_snapshots s WHERE s.list = p_list;
        IF v_holds = 'asns' THEN
            SELECT m.opened, m.closed, m.entries INTO v_opened, v_closed, v_entries
            FROM ipintel.merge_dated_runs('ipintel.listed_asns', 'ipintel_staging.listed_asns', 'list', p_list,
                                          ARRAY['asn', 'name', 'source'], p_batch_id, p_taken_on, v_prev, v_next) m;
        ELSE
            SELECT m.opened, m.closed, m.entries INTO v_opened, v_closed, v_entries
            FROM ipintel.merge_dated_runs('ipintel.listed_ranges', 'ipintel_staging.listed_ranges', 'list', p_list,
                                          ARRAY['prefix', 'service', 'region'], p_batch_id, p_taken_on, v_prev,
                                          v_next) m;
        END IF;
        UPDATE ipintel.range_snapshots s SET entries = v_entries WHERE s.snapshot_id = v_snapshot;
    END IF;

    DELETE FROM ipintel_staging.listed_ranges r WHERE r.batch_id = p_batch_id;
    DELETE FROM ipintel_staging.listed_asns a WHERE a.batch_id = p_batch_id;
    IF v_snapshot IS NULL THEN
        -- Loaded before: nothing changes.
        RETURN QUERY SELECT s.snapshot_id, false, s.entries, 0::bigint, 0::bigint
                     FROM ipintel.range_snapshots s WHERE s.list = p_list AND s.taken_on = p_taken_on;
        RETURN;
    END IF;
    -- Every IP is classified by joining against these tables: the planner must know their size
    -- right after a load.
    ANALYZE ipintel.listed_ranges;
    ANALYZE ipintel.listed_asns;
    RETURN QUERY SELECT v_snapshot, true, v_entries, v_opened, v_closed;
END;
$$;

-- CREATE OR REPLACE resets SECURITY DEFINER (sql/099_roles.sql sets it)
ALTER FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint, text) SECURITY DEFINER;
ALTER FUNCTION ipintel.load_geo_build(text, text, bigint, text, text, text, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.load_range_snapshot(text, date, text, bigint) SECURITY DEFINER;
