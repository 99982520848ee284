-- From migrations/versions/0029_range_lists.downgrade.sql: back to 0025. The range lists leave with
-- everything loaded into them (reload the files after upgrading again); load_routing_snapshot merges
-- its runs by itself again.
-- squawk-ignore-file ban-drop-table, ban-drop-function
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.load_routing_snapshot(p_dataset text, p_taken_on date, p_file text, p_batch_id bigint)
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

ALTER FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) SECURITY DEFINER;

DROP FUNCTION ipintel.range_snapshot_on(text, date);
DROP FUNCTION ipintel.load_range_snapshot(text, date, text, bigint);
DROP FUNCTION ipintel.merge_dated_runs(regclass, text, text, regclass, text[], bigint, date, date, date);
DROP TABLE ipintel_staging.listed_asns;
DROP TABLE ipintel_staging.listed_ranges;
DROP TABLE ipintel.listed_asns;
DROP TABLE ipintel.listed_ranges;
DROP TABLE ipintel.range_snapshots;
DROP TABLE ipintel.range_lists;
DROP TABLE ipintel.ip_types;
