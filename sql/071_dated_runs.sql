-- From sql/071_dated_runs.sql
-- Dated snapshots stored run-length, shared by routing history (sql/072_routing.sql) and the
-- range lists (sql/073_range_lists.sql): an entry seen in consecutive snapshots of a dataset is
-- one row whose `valid` daterange spans their days, so an entry that stays the same over 1,000
-- daily snapshots is one row and a snapshot that changes nothing writes nothing. Snapshots may be
-- loaded in any order (an older one splits or joins runs) and loading one twice changes nothing:
-- the table depends only on the set of snapshots loaded.

-- Merges the staged entries of one snapshot (rows of p_staging with batch_id p_batch_id) as the
-- snapshot of p_dataset taken on p_taken_on into the run table p_runs. p_prev and p_next are the
-- days of the dataset's snapshots just before and just after it (NULL: none). An entry is the
-- tuple of columns p_key, which both tables have and which are NOT NULL (so that = matches and
-- the unique index on the runs serves every lookup); p_dataset_column names the dataset in p_runs.
-- With P = p_prev and N = p_next, an entry of the snapshot extends or joins the runs ending at P
-- and starting at N, or opens a run; an entry absent from it whose run spans its day is split
-- around it (or, for the newest snapshot, closed after P). Every step is one set-based
-- statement; the caller records the snapshot, holds the dataset's lock and empties the batch.
CREATE FUNCTION ipintel.merge_dated_runs(p_runs regclass, p_dataset_column text, p_dataset text, p_staging regclass,
                                         p_key text[], p_batch_id bigint, p_taken_on date, p_prev date,
                                         p_next date)
    RETURNS TABLE (opened bigint, closed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    -- The key columns, quoted once: as a list for the run (o.), the staged row (r.), a cut run
    -- (c.) and a target column list, and as the match of a run with a staged row.
    v_o text := (SELECT string_agg(format('o.%I', k), ', ') FROM unnest(p_key) k);
    v_r text := (SELECT string_agg(format('r.%I', k), ', ') FROM unnest(p_key) k);
    v_c text := (SELECT string_agg(format('c.%I', k), ', ') FROM unnest(p_key) k);
    v_cols text := (SELECT string_agg(format('%I', k), ', ') FROM unnest(p_key) k);
    v_match text := (SELECT string_agg(format('o.%1$I = r.%1$I', k), ' AND ') FROM unnest(p_key) k);
    v_fresh text;
    v_opened bigint := 0;
    v_closed bigint := 0;
    v_split bigint := 0;
BEGIN
    -- Entries of this snapshot not inside a run yet ("fresh"; an entry inside one was shown by
    -- the snapshots on both sides). $1 dataset, $2 batch, $3 day, $4 P, $5 N.
    v_fresh := format('SELECT DISTINCT %2$s FROM %3$s r WHERE r.batch_id = $2 AND NOT EXISTS ('
                      'SELECT 1 FROM %4$s o WHERE o.%5$I = $1 AND %1$s AND o.valid @> $3)',
                      v_match, v_r, p_staging, p_runs, p_dataset_column);

    -- 1. Entries absent from this snapshot whose run spans its day: split around it (a run
    --    reaching past the newest snapshot is open; it now ends after P).
    EXECUTE format('WITH spanning AS ('
                   '  SELECT o.ctid AS row_id, %1$s, o.valid FROM %3$s o'
                   '  WHERE o.%5$I = $1 AND o.valid @> $3 AND lower(o.valid) < $3'
                   '    AND NOT EXISTS (SELECT 1 FROM %4$s r WHERE r.batch_id = $2 AND %6$s)'
                   '), cut AS ('
                   '  UPDATE %3$s o SET valid = daterange(lower(s.valid), $4 + 1)'
                   '  FROM spanning s WHERE o.ctid = s.row_id'
                   '  RETURNING %7$s, s.valid) '
                   'INSERT INTO %3$s (%5$I, %2$s, valid) '
                   'SELECT $1, %8$s, daterange($5, upper(c.valid)) FROM cut c WHERE $5 IS NOT NULL',
                   v_o, v_cols, p_runs, p_staging, p_dataset_column, v_match,
                   (SELECT string_agg(format('s.%I', k), ', ') FROM unnest(p_key) k), v_c)
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;
    GET DIAGNOSTICS v_split = ROW_COUNT;
    EXECUTE format('SELECT count(*) FROM %1$s o WHERE o.%2$I = $1 AND upper(o.valid) = $2 + 1 AND $3 IS NULL',
                   p_runs, p_dataset_column)
    INTO v_closed USING p_dataset, p_prev, p_next;

    -- 2. Fresh entries: join the run ending at P and the one starting at N, else extend one of
    --    them, else open a run. Each statement leaves the entries it handled inside a run, so the
    --    next one no longer sees them as fresh.
    EXECUTE format('WITH fresh AS (%1$s), joined AS ('
                   '  DELETE FROM %2$s a USING fresh f, %2$s b'
                   '  WHERE a.%3$I = $1 AND %4$s AND lower(a.valid) = $5'
                   '    AND b.%3$I = $1 AND %5$s AND upper(b.valid) = $4 + 1'
                   '  RETURNING b.ctid AS before_row, a.valid) '
                   'UPDATE %2$s o SET valid = daterange(lower(o.valid), upper(j.valid)) '
                   'FROM joined j WHERE o.ctid = j.before_row',
                   v_fresh, p_runs, p_dataset_column,
                   (SELECT string_agg(format('a.%1$I = f.%1$I', k), ' AND ') FROM unnest(p_key) k),
                   (SELECT string_agg(format('b.%1$I = f.%1$I', k), ' AND ') FROM unnest(p_key) k))
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;

    EXECUTE format('WITH fresh AS (%1$s) '
                   'UPDATE %2$s o SET valid = daterange(lower(o.valid), CASE WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END) '
                   'FROM fresh f WHERE o.%3$I = $1 AND %4$s AND upper(o.valid) = $4 + 1',
                   v_fresh, p_runs, p_dataset_column,
                   (SELECT string_agg(format('o.%1$I = f.%1$I', k), ' AND ') FROM unnest(p_key) k))
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;

    EXECUTE format('WITH fresh AS (%1$s) '
                   'UPDATE %2$s o SET valid = daterange($3, upper(o.valid)) '
                   'FROM fresh f WHERE o.%3$I = $1 AND %4$s AND lower(o.valid) = $5',
                   v_fresh, p_runs, p_dataset_column,
                   (SELECT string_agg(format('o.%1$I = f.%1$I', k), ' AND ') FROM unnest(p_key) k))
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;

    EXECUTE format('INSERT INTO %1$s (%2$I, %3$s, valid) '
                   'SELECT DISTINCT $1, %4$s, daterange($3, CASE WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END) '
                   'FROM %5$s r WHERE r.batch_id = $2 AND NOT EXISTS ('
                   'SELECT 1 FROM %1$s o WHERE o.%2$I = $1 AND %6$s AND o.valid @> $3) '
                   'ORDER BY %4$s',
                   p_runs, p_dataset_column, v_cols, v_r, p_staging, v_match)
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;
    GET DIAGNOSTICS v_opened = ROW_COUNT;

    RETURN QUERY SELECT v_opened, v_closed + v_split;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_dated_runs(regclass, text, text, regclass, text[], bigint, date, date, date) IS
    'The run-length merge shared by dated snapshots (load_routing_snapshot, load_range_snapshot): the entries (columns p_key, NOT NULL) staged in p_staging batch p_batch_id, as p_dataset''s snapshot of p_taken_on between its snapshots of p_prev and p_next, into p_runs (valid daterange per run; p_dataset_column names the dataset). Any load order gives the same table. Returns the runs opened and closed (split included).';
