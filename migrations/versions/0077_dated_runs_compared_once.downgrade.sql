-- From migrations/versions/0077_dated_runs_compared_once.downgrade.sql (sql/072_routing.sql, sql/073_geo_builds.sql, sql/073_range_lists.sql)
-- squawk-ignore-file ban-drop-function
-- merge_dated_runs, load_routing_snapshot, load_geo_build and load_range_snapshot as at revision
-- 0076 (five statements, two result columns; the entries counted by a DISTINCT of the staged
-- rows). The tables they write are the same either way.
-- Locks: none on a table that holds rows.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- Two result columns again: dropped and made again.
DROP FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date);
CREATE FUNCTION ipintel.merge_dated_runs(p_runs regclass, p_staged regclass, p_series_column text, p_series text,
                                         p_key_columns text[], p_batch_id bigint, p_day date, p_prev date,
                                         p_next date)
    RETURNS TABLE (opened bigint, closed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    -- In every statement: $1 p_series, $2 p_batch_id, $3 p_day, $4 p_prev, $5 p_next.
    v_keys text := (SELECT string_agg(format('%I', k), ', ') FROM unnest(p_key_columns) k);
    -- The staged rows of the snapshot, as r.
    v_staged text := format('%s r WHERE r.batch_id = $2 AND %s', p_staged,
                            (SELECT string_agg(format('r.%I IS NOT NULL', k), ' AND ') FROM unnest(p_key_columns) k));
    -- A format: the runs of the series (alias %2$s) with the key of the row aliased %3$s.
    v_run_of text := '%2$s.%1$I = $1 AND ' || (SELECT string_agg(format('%%2$s.%1$I = %%3$s.%1$I', k), ' AND ')
                                               FROM unnest(p_key_columns) k);
    -- The keys of the snapshot not inside a run yet (a key inside one was shown by the snapshots
    -- on both sides of p_day).
    v_fresh text := format('WITH fresh AS (SELECT DISTINCT %s FROM %s AND NOT EXISTS '
                           '(SELECT 1 FROM %s o WHERE %s AND o.valid @> $3))',
                           (SELECT string_agg(format('r.%I', k), ', ') FROM unnest(p_key_columns) k), v_staged, p_runs,
                           format(v_run_of, p_series_column, 'o', 'r'));
    v_opened bigint;
    v_closed bigint;
    v_split bigint;
BEGIN
    -- 1. Keys absent from this snapshot whose run spans its day: split around it (a run
    --    reaching past the newest snapshot is open; it now ends after p_prev).
    EXECUTE format($q$
        WITH spanning AS (
            SELECT o.ctid AS row_id, o.*
            FROM %1$s o
            WHERE o.%2$I = $1 AND o.valid @> $3 AND lower(o.valid) < $3
              AND NOT EXISTS (SELECT 1 FROM %3$s AND %4$s)
        ), cut AS (
            UPDATE %1$s o SET valid = daterange(lower(s.valid), $4 + 1)
            FROM spanning s WHERE o.ctid = s.row_id
            RETURNING s.*)
        INSERT INTO %1$s (%2$I, %5$s, valid)
        SELECT $1, %5$s, daterange($5, upper(cut.valid))
        FROM cut WHERE $5 IS NOT NULL$q$,
        p_runs, p_series_column, v_staged, format(v_run_of, p_series_column, 'o', 'r'), v_keys)
    USING p_series, p_batch_id, p_day, p_prev, p_next;
    GET DIAGNOSTICS v_split = ROW_COUNT;
    EXECUTE format('SELECT count(*) FROM %s o WHERE o.%I = $1 AND upper(o.valid) = $2 + 1 AND $3 IS NULL',
                   p_runs, p_series_column)
    INTO v_closed USING p_series, p_prev, p_next;

    -- 2. Fresh keys: join the run ending at p_prev and the one starting at p_next, else extend
    --    one of them, else open a run. Each statement leaves the keys it handled inside a run,
    --    so the next one no longer sees them as fresh.
    EXECUTE v_fresh || format($q$, joined AS (
            DELETE FROM %1$s a
            USING fresh f, %1$s b
            WHERE %2$s AND lower(a.valid) = $5
              AND %3$s AND upper(b.valid) = $4 + 1
            RETURNING b.ctid AS before_row, a.valid)
        UPDATE %1$s o SET valid = daterange(lower(o.valid), upper(j.valid))
        FROM joined j WHERE o.ctid = j.before_row$q$,
        p_runs, format(v_run_of, p_series_column, 'a', 'f'), format(v_run_of, p_series_column, 'b', 'f'))
    USING p_series, p_batch_id, p_day, p_prev, p_next;

    EXECUTE v_fresh || format($q$
        UPDATE %1$s o SET valid = daterange(lower(o.valid), CASE WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END)
        FROM fresh f
        WHERE %2$s AND upper(o.valid) = $4 + 1$q$,
        p_runs, format(v_run_of, p_series_column, 'o', 'f'))
    USING p_series, p_batch_id, p_day, p_prev, p_next;

    EXECUTE v_fresh || format($q$
        UPDATE %1$s o SET valid = daterange($3, upper(o.valid))
        FROM fresh f
        WHERE %2$s AND lower(o.valid) = $5$q$,
        p_runs, format(v_run_of, p_series_column, 'o', 'f'))
    USING p_series, p_batch_id, p_day, p_prev, p_next;

    EXECUTE v_fresh || format($q$
        INSERT INTO %1$s (%2$I, %3$s, valid)
        SELECT $1, %3$s, daterange($3, CASE WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END)
        FROM fresh
        ORDER BY %3$s$q$,
        p_runs, p_series_column, v_keys)
    USING p_series, p_batch_id, p_day, p_prev, p_next;
    GET DIAGNOSTICS v_opened = ROW_COUNT;
    RETURN QUERY SELECT v_opened, v_closed + v_split;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date) IS
    'The run-length merge of one dated snapshot (routing history, geolocation builds): the keys (p_key_columns) staged in p_staged under p_batch_id, as the snapshot of series p_series (p_runs.p_series_column) taken on p_day, between its snapshots p_prev and p_next, into the runs of p_runs (valid daterange). Any merge order of the same snapshots gives the same table. Returns the runs opened and closed. Called by load_routing_snapshot, load_geo_build and load_range_snapshot.';
-- as sql/099_roles.sql leaves every function: no EXECUTE for PUBLIC
REVOKE EXECUTE ON FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date) FROM PUBLIC;

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

    SELECT count(*) INTO v_prefixes
    FROM (SELECT DISTINCT r.prefix, r.asn FROM ipintel_staging.routing_prefixes r WHERE r.batch_id = p_batch_id) p;

    SELECT m.opened, m.closed INTO v_opened, v_closed
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
    SELECT count(DISTINCT (r.first_ip, r.last_ip, r.country)) FILTER (WHERE r.country IS NOT NULL),
           count(DISTINCT (r.first_ip, r.last_ip, r.asn)) FILTER (WHERE r.asn IS NOT NULL)
    INTO v_countries, v_asns
    FROM ipintel_staging.geo_ranges r WHERE r.batch_id = p_batch_id;

    SELECT * INTO v_country_runs
    FROM ipintel.merge_dated_runs('ipintel.geo_countries', 'ipintel_staging.geo_ranges', 'edition', p_edition,
                                  '{first_ip,last_ip,country}', p_batch_id, v_built_on, v_prev, v_next);
    SELECT * INTO v_asn_runs
    FROM ipintel.merge_dated_runs('ipintel.geo_asns', 'ipintel_staging.geo_ranges', 'edition', p_edition,
                                  '{first_ip,last_ip,asn}', p_batch_id, v_built_on, v_prev, v_next);
    UPDATE ipintel.geo_builds b SET countries = v_countries, asns = v_asns WHERE b.build_id = v_build;

    DELETE FROM ipintel_staging.geo_ranges r WHERE r.batch_id = p_batch_id;
    -- As for prefix_origins: the planner must know their size right after a load.
    ANALYZE ipintel.geo_countries;
    ANALYZE ipintel.geo_asns;
    RETURN QUERY SELECT v_build, true, v_countries, v_asns, v_country_runs.opened + v_asn_runs.opened,
                        v_country_runs.closed + v_asn_runs.closed;
END;
$$;

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
            SELECT count(*) INTO v_entries
            FROM (SELECT DISTINCT a.asn, a.name, a.source FROM ipintel_staging.listed_asns a WHERE a.batch_id = p_batch_id) e;
            SELECT m.opened, m.closed INTO v_opened, v_closed
            FROM ipintel.merge_dated_runs('ipintel.listed_asns', 'ipintel_staging.listed_asns', 'list', p_list,
                                          ARRAY['asn', 'name', 'source'], p_batch_id, p_taken_on, v_prev, v_next) m;
        ELSE
            SELECT count(*) INTO v_entries
            FROM (SELECT DISTINCT r.prefix, r.service, r.region FROM ipintel_staging.listed_ranges r
                  WHERE r.batch_id = p_batch_id) e;
            SELECT m.opened, m.closed INTO v_opened, v_closed
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
