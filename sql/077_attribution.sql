-- From sql/077_attribution.sql
-- Attribution in milliseconds (issue 15): ipintel.attribution_daily, one row per UTC day and
-- (sensor, snapshot ASN, snapshot country, snapshot ip_type) with the session counts and the
-- distinct source IPs as an HLL sketch (extension hll), so that the distinct IPs of any run of
-- days is the union of its days' sketches. Window questions read a few thousand rows of it
-- instead of every session of the window.
--
-- Maintained per day: an HLL sketch cannot subtract an IP, so a day is recomputed whole from
-- session_summaries. The days a write touched are queued in attribution_dirty_days:
--   - inserts and deletes by statement triggers (transition tables, which the triggers of
--     session_keys and snapshot_queue capture anyway);
--   - updates by the functions that make them (take_snapshots, redo_snapshots,
--     merge_cowrie_events), in the statement that updates (revision 0065). A transition table of
--     an update copies every updated row twice, old and new (2M-session snapshot pass: 3 to 6 s
--     on clones; a plain UPDATE of the same rows in `make bench` 15 s faster without them).
--     An update by anything else queues "every day" (a NULL day) from a statement trigger that
--     copies nothing.
-- roll_up_attribution recomputes the queued days and empties the queue (enrich calls it after
-- take_snapshots, ingest after its last chunk). The queue has no key, so concurrent writers
-- never wait on each other there.

CREATE EXTENSION IF NOT EXISTS hll WITH SCHEMA public;

CREATE TABLE ipintel.attribution_daily (
    day             date   NOT NULL,
    sensor          text,
    asn             bigint,
    country         text,
    ip_type         text,
    sessions        bigint NOT NULL,
    login_attempts  bigint NOT NULL,
    login_successes bigint NOT NULL,
    commands        bigint NOT NULL,
    downloads       bigint NOT NULL,
    distinct_ips    public.hll(12, 5) NOT NULL,
    CONSTRAINT attribution_daily_one_row_per_group UNIQUE NULLS NOT DISTINCT (day, sensor, asn, country, ip_type),
    CONSTRAINT attribution_daily_counts_are_positive CHECK (
        sessions > 0 AND login_attempts >= 0 AND login_successes >= 0 AND commands >= 0 AND downloads >= 0)
);
COMMENT ON TABLE ipintel.attribution_daily IS
    'Sessions per UTC day of first_event_at and per sensor, snapshot ASN, snapshot country and snapshot ip_type, with their counts and distinct source IPs as an HLL sketch: the rollup the window questions (top_asns, top_countries) read. Only sessions with a snapshot (snapshot_at set) are counted, each under its snapshot columns as they are now (NULL: not known yet, or known to be none); a session without a snapshot yet is not counted until its first snapshot field is filled. Kept up to date by roll_up_attribution (the days queued in attribution_dirty_days are stale until it runs); ipintel.verify_attribution checks it against a recount. Exact distinct counts: count(DISTINCT source_ip) on session_summaries.';
COMMENT ON COLUMN ipintel.attribution_daily.day IS 'UTC day of the sessions'' first_event_at.';
COMMENT ON COLUMN ipintel.attribution_daily.sensor IS 'session_summaries.sensor (NULL: not logged).';
COMMENT ON COLUMN ipintel.attribution_daily.asn IS 'session_summaries.snapshot_asn (NULL: not known yet, or not routed / known to no source: see snapshot_asn_source on the sessions).';
COMMENT ON COLUMN ipintel.attribution_daily.country IS 'session_summaries.snapshot_country (NULL: not known yet).';
COMMENT ON COLUMN ipintel.attribution_daily.ip_type IS 'session_summaries.snapshot_ip_type (NULL: not known yet).';
COMMENT ON COLUMN ipintel.attribution_daily.sessions IS 'Sessions of the group (exact).';
COMMENT ON COLUMN ipintel.attribution_daily.login_attempts IS 'Sum of login_attempts (exact).';
COMMENT ON COLUMN ipintel.attribution_daily.login_successes IS 'Sum of login_successes (exact).';
COMMENT ON COLUMN ipintel.attribution_daily.commands IS 'Sum of command_count (exact).';
COMMENT ON COLUMN ipintel.attribution_daily.downloads IS 'Sum of download_count (exact).';
COMMENT ON COLUMN ipintel.attribution_daily.distinct_ips IS
    'The group''s distinct source IPs as an HLL sketch (log2m 12, regwidth 5: 4,096 registers, 2.5 kB at most; exact up to a few hundred IPs, then a standard error of 1.04/sqrt(4096) = 1.6%: within 3.3% for 95% of estimates). Distinct IPs over several days or groups: public.hll_cardinality(public.hll_union_agg(distinct_ips)). Exact counts: count(DISTINCT source_ip) on session_summaries.';

-- The ASN question reads a narrower rollup: one row per day and ASN (the groups of
-- attribution_daily merged over sensor, country and ip_type), ranked by an index-only scan of
-- (day, asn) INCLUDE (sessions); the sums and sketches are then read for the p_top ASNs only.
CREATE TABLE ipintel.attribution_asn_daily (
    day             date   NOT NULL,
    asn             bigint,
    sessions        bigint NOT NULL,
    login_attempts  bigint NOT NULL,
    login_successes bigint NOT NULL,
    commands        bigint NOT NULL,
    downloads       bigint NOT NULL,
    distinct_ips    public.hll(12, 5) NOT NULL,
    CONSTRAINT attribution_asn_daily_one_row_per_asn UNIQUE NULLS NOT DISTINCT (day, asn) INCLUDE (sessions),
    CONSTRAINT attribution_asn_daily_counts_are_positive CHECK (
        sessions > 0 AND login_attempts >= 0 AND login_successes >= 0 AND commands >= 0 AND downloads >= 0)
);
-- The rows of given ASNs in a window (NULL, the unknown ASN, as -1): asn_ranking's sums of its
-- candidates, and top_asns' other sums and sketches of the ASNs it keeps.
CREATE INDEX attribution_asn_daily_asn_idx ON ipintel.attribution_asn_daily ((coalesce(asn, -1)), day);
-- asn_ranking's first and second steps: a day's ASNs, most sessions first (index only).
CREATE INDEX attribution_asn_daily_day_sessions_idx ON ipintel.attribution_asn_daily (day, sessions DESC) INCLUDE (asn);
COMMENT ON INDEX ipintel.attribution_asn_daily_day_sessions_idx IS
    'A day''s ASNs, most sessions first: asn_ranking reads each day''s leaders and the ASNs above its bar from it, without the heap.';
COMMENT ON TABLE ipintel.attribution_asn_daily IS
    'Sessions per UTC day and snapshot ASN: attribution_daily''s groups of one day and ASN merged (sums added, distinct_ips sketches united), one row per day and ASN, so that "top ASNs over a window" reads one row per ASN and day instead of one per sensor, country and ip_type too. Written by roll_up_attribution with attribution_daily, for the same days; verify_attribution checks that it equals attribution_daily merged.';
COMMENT ON COLUMN ipintel.attribution_asn_daily.day IS 'UTC day of the sessions'' first_event_at.';
COMMENT ON COLUMN ipintel.attribution_asn_daily.asn IS 'session_summaries.snapshot_asn (NULL: not known yet, or not routed / known to no source).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.sessions IS 'Sessions of the day and ASN (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.login_attempts IS 'Sum of login_attempts (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.login_successes IS 'Sum of login_successes (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.commands IS 'Sum of command_count (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.downloads IS 'Sum of download_count (exact).';
COMMENT ON COLUMN ipintel.attribution_asn_daily.distinct_ips IS
    'The day''s distinct source IPs of the ASN as an HLL sketch (log2m 12, regwidth 5; the union of attribution_daily''s sketches of that day and ASN): exact up to a few hundred IPs, then a standard error of 1.6%.';

CREATE TABLE ipintel.attribution_dirty_days (
    day       date,
    queued_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ipintel.attribution_dirty_days IS
    'The days whose attribution_daily rows are stale: queued by the statement triggers of session_summaries (inserts, deletes) and by take_snapshots, redo_snapshots and merge_cowrie_events (their updates); a NULL day (every day) by any other update of session_summaries. One row per day a statement wrote, duplicates allowed: no key, so concurrent writers never wait on each other here. Emptied by roll_up_attribution.';
COMMENT ON COLUMN ipintel.attribution_dirty_days.day IS 'A UTC day of first_event_at that a statement on session_summaries wrote sessions of; NULL: every day (an update made outside take_snapshots, redo_snapshots and merge_cowrie_events, whose days are not known): roll_up_attribution then recounts every day of the rollup and of the sessions.';
COMMENT ON COLUMN ipintel.attribution_dirty_days.queued_at IS 'When (the writing transaction''s start).';

-- The trigger function of the insert and delete triggers below: `changed` is the statement's
-- new rows (INSERT) or its old rows (DELETE). A session without a snapshot is in no group.
CREATE FUNCTION ipintel.queue_attribution_days()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    INSERT INTO ipintel.attribution_dirty_days (day)
    SELECT DISTINCT (c.first_event_at AT TIME ZONE 'UTC')::date
    FROM changed c
    WHERE c.snapshot_at IS NOT NULL;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.queue_attribution_days() IS
    'Statement trigger function of session_summaries: queues in attribution_dirty_days the UTC days of the rows a statement inserted or deleted that have a snapshot.';

-- Transition tables: a trigger has one event, and names no columns (PostgreSQL refuses both
-- with transition tables); on the partitioned table they hold the rows of every partition.
CREATE TRIGGER session_summaries_attribution_insert
    AFTER INSERT ON ipintel.session_summaries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.queue_attribution_days();
COMMENT ON TRIGGER session_summaries_attribution_insert ON ipintel.session_summaries IS
    'Queues the days of inserted sessions that have a snapshot for roll_up_attribution.';
CREATE TRIGGER session_summaries_attribution_delete
    AFTER DELETE ON ipintel.session_summaries
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.queue_attribution_days();
COMMENT ON TRIGGER session_summaries_attribution_delete ON ipintel.session_summaries IS
    'Queues the days of deleted sessions that had a snapshot for roll_up_attribution.';

-- Updates queue their own days (revision 0065): take_snapshots, redo_snapshots and
-- merge_cowrie_events set ipintel.attribution_days_queued = on for their updating statement
-- (set_config, put back after it; an error undoes it with the transaction) and insert the days
-- of the rows they update in that statement. Any other
-- update (a DBA's fix, a future backfill) queues every day: the rollup is never left stale
-- silently, and no row is copied for it.
CREATE FUNCTION ipintel.queue_every_attribution_day()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF current_setting('ipintel.attribution_days_queued', true) IS DISTINCT FROM 'on' THEN
        INSERT INTO ipintel.attribution_dirty_days (day) VALUES (NULL);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.queue_every_attribution_day() IS
    'Statement trigger function of session_summaries'' updates: queues every day (a NULL day in attribution_dirty_days) unless the update comes from a function that queues its own days (ipintel.attribution_days_queued = on: take_snapshots, redo_snapshots, merge_cowrie_events).';
CREATE TRIGGER session_summaries_attribution_update
    AFTER UPDATE ON ipintel.session_summaries
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.queue_every_attribution_day();
COMMENT ON TRIGGER session_summaries_attribution_update ON ipintel.session_summaries IS
    'An update made outside take_snapshots, redo_snapshots and merge_cowrie_events (which queue the days they update) queues every day for roll_up_attribution. No transition table: nothing is copied per row.';

-- The recount of some days, shared by roll_up_attribution and verify_attribution. The sessions
-- are read once, between the first and the last day asked (the months outside are never read),
-- and each is matched to its day by equality, a hash of the days. Until revision 0078 each session
-- was matched to the days by its time range: a nested loop that compared every session of every
-- month with every day asked (the 31 days of 2M sessions: 62M comparisons, 7 of the 10.9 s; an
-- ingest's one or two days in a month of 2M sessions: 2.0 s, against 0.12 s now). No index scan:
-- the bounds are unknown when the statement is planned, and a range of first_event_at guessed
-- small was read by the primary key (session_id, first_event_at), a random heap read per session
-- (2M sessions: 6.9 s); the BRIN index or a sequential scan reads the heap in order.
CREATE FUNCTION ipintel.attribution_of_days(p_days date[])
    RETURNS SETOF ipintel.attribution_daily
    LANGUAGE sql
    STABLE
    SET search_path = ''
    SET jit = off
    SET enable_indexscan = off
    SET work_mem = '64MB'
    SET hash_mem_multiplier = 4
BEGIN ATOMIC
    WITH days AS MATERIALIZED (
        SELECT DISTINCT u.day FROM unnest(p_days) AS u(day) WHERE u.day IS NOT NULL
    )
    SELECT d.day, s.sensor, s.snapshot_asn, s.snapshot_country, s.snapshot_ip_type, count(*),
           sum(s.login_attempts)::bigint, sum(s.login_successes)::bigint, sum(s.command_count)::bigint,
           sum(s.download_count)::bigint, public.hll_add_agg(public.hll_hash_any(s.source_ip), 12, 5)
    FROM ipintel.session_summaries s
    JOIN days d ON d.day = (s.first_event_at AT TIME ZONE 'UTC')::date
    WHERE s.first_event_at >= (SELECT min(f.day) FROM days f)::timestamp AT TIME ZONE 'UTC'
      AND s.first_event_at < (SELECT max(l.day) + 1 FROM days l)::timestamp AT TIME ZONE 'UTC'
      AND s.snapshot_at IS NOT NULL
    GROUP BY d.day, s.sensor, s.snapshot_asn, s.snapshot_country, s.snapshot_ip_type;
END;
COMMENT ON FUNCTION ipintel.attribution_of_days(date[]) IS
    'attribution_daily''s rows for the UTC days p_days, recounted from session_summaries (sessions with a snapshot): what roll_up_attribution writes and verify_attribution compares with. Reads the sessions between the first and the last day asked once (partitions outside are skipped), each matched to its day by a hash.';

-- attribution_asn_daily's rows of some days, merged from attribution_daily's: shared by
-- roll_up_attribution and verify_attribution.
CREATE FUNCTION ipintel.attribution_asn_of_days(p_days date[])
    RETURNS SETOF ipintel.attribution_asn_daily
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.day, a.asn, sum(a.sessions)::bigint, sum(a.login_attempts)::bigint, sum(a.login_successes)::bigint,
           sum(a.commands)::bigint, sum(a.downloads)::bigint, public.hll_union_agg(a.distinct_ips)
    FROM ipintel.attribution_daily a
    WHERE a.day = ANY (p_days)
    GROUP BY a.day, a.asn;
END;
COMMENT ON FUNCTION ipintel.attribution_asn_of_days(date[]) IS
    'attribution_asn_daily''s rows for the UTC days p_days, merged from attribution_daily (sums added, sketches united per day and ASN): what roll_up_attribution writes and verify_attribution compares with.';

CREATE FUNCTION ipintel.roll_up_attribution()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_days date[];
    v_every_day boolean;
BEGIN
    -- One roll-up at a time (two would both insert a day's rows); readers are not blocked.
    LOCK TABLE ipintel.attribution_daily IN EXCLUSIVE MODE;
    -- A day queued by a transaction still running stays queued (its row is not visible yet) and
    -- is rolled up by a later call, after that transaction's sessions are.
    WITH taken AS (DELETE FROM ipintel.attribution_dirty_days q RETURNING q.day)
    SELECT array_agg(DISTINCT t.day), bool_or(t.day IS NULL) INTO v_days, v_every_day FROM taken t;
    IF v_days IS NULL THEN
        RETURN 0;
    END IF;
    IF v_every_day THEN
        -- every day: those of the rollup (a day may have lost all its sessions) and those of
        -- the sessions with a snapshot (one pass over session_summaries)
        v_days := ARRAY(SELECT a.day FROM ipintel.attribution_daily a
                        UNION
                        SELECT DISTINCT (s.first_event_at AT TIME ZONE 'UTC')::date
                        FROM ipintel.session_summaries s WHERE s.snapshot_at IS NOT NULL);
    END IF;
    DELETE FROM ipintel.attribution_daily a WHERE a.day = ANY (v_days);
    INSERT INTO ipintel.attribution_daily
    SELECT * FROM ipintel.attribution_of_days(v_days);
    DELETE FROM ipintel.attribution_asn_daily a WHERE a.day = ANY (v_days);
    INSERT INTO ipintel.attribution_asn_daily
    SELECT * FROM ipintel.attribution_asn_of_days(v_days);
    RETURN cardinality(v_days);
END;
$$;
COMMENT ON FUNCTION ipintel.roll_up_attribution() IS
    'Recomputes attribution_daily, then attribution_asn_daily from it, for the days queued in attribution_dirty_days (whole days: an HLL sketch cannot subtract; a NULL day queued: every day of the rollup and of the sessions) and empties the queue; returns how many days. Called by enrich after take_snapshots and by ingest after its last chunk; one call at a time (EXCLUSIVE lock on attribution_daily, readers go on).';

------------------------------------------------------------------------------------------
-- Window questions on the rollup: whole UTC days
------------------------------------------------------------------------------------------
-- Ranking ASNs by sessions over a window without summing every ASN of it (Fagin's threshold
-- algorithm): an ASN with S sessions over a window of D days has at least ceil(S / D) on one of
-- its days. So:
--   1. the p_top busiest ASNs of each day (index only) are candidates; their exact sums give a
--      bar B, the p_top-th largest of them: the true p_top-th ASN has at least B sessions;
--   2. every ASN that may reach B has at least ceil(B / D) sessions on some day: those rows are
--      read from the same index, and their ASNs added to the candidates;
--   3. the candidates' exact sums, ranked. Every ASN ranked at or above the true p_top-th is a
--      candidate, so the first p_top rows are those of the full ranking, ties and order included.
-- On a honeypot's skewed traffic (a few networks hold most sessions) that reads a few thousand
-- rows where the full ranking sums ~110K (30 days of the bench's 2M sessions). When the steps
-- would read more than 100,000 rows (long windows, a large p_top, flat traffic), the full
-- ranking runs instead.
CREATE FUNCTION ipintel.asn_ranking(p_since date, p_until date, p_top bigint)
    RETURNS TABLE (asn bigint, sessions bigint)
    LANGUAGE plpgsql
    STABLE
    SET search_path = ''
    SET jit = off
    -- The full ranking's hash table holds one entry per ASN of the window (~19K in the bench:
    -- 5 MB); with the default 4 MB it spills to disk.
    SET work_mem = '32MB'
    -- Each statement planned for its own arrays and bar (a generic plan would guess them).
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    -- The index rows the three steps may read before the full ranking is cheaper.
    c_budget constant bigint := 100000;
    v_days bigint := p_until - p_since;
    v_firsts bigint[];
    v_bar bigint;
    v_candidates bigint[];
BEGIN
    IF p_top >= 1 AND v_days >= 1 AND v_days * p_top <= c_budget THEN
        -- 1. Each day's p_top busiest ASNs (NULL, the unknown ASN, keyed as -1).
        SELECT array_agg(DISTINCT coalesce(t.asn, -1)) INTO v_firsts
        FROM generate_series(0, v_days - 1) AS d(n)
        CROSS JOIN LATERAL (
            SELECT a.asn FROM ipintel.attribution_asn_daily a
            WHERE a.day = p_since + d.n::integer
            ORDER BY a.sessions DESC
            LIMIT p_top) t;
        IF v_firsts IS NULL THEN
            RETURN;  -- no session in the window
        END IF;
        IF cardinality(v_firsts) * v_days <= c_budget THEN
            SELECT f.total INTO v_bar
            FROM (SELECT sum(a.sessions::double precision)::bigint AS total
                  FROM ipintel.attribution_asn_daily a
                  WHERE coalesce(a.asn, -1) = ANY (v_firsts) AND a.day >= p_since AND a.day < p_until
                  GROUP BY coalesce(a.asn, -1)) f
            ORDER BY f.total DESC
            OFFSET p_top - 1
            LIMIT 1;
            IF v_bar IS NULL THEN
                -- Fewer than p_top candidates: then every day had fewer than p_top ASNs, all of
                -- them candidates already.
                v_candidates := v_firsts;
            ELSE
                -- 2. The ASNs with a day of at least ceil(B / D) sessions. Cut at c_budget + 1 rows:
                -- those are (day, ASN) pairs, so a cut list names more than c_budget / D ASNs
                -- and fails the test below.
                SELECT array_agg(DISTINCT c.asn_key) || v_firsts INTO v_candidates
                FROM (SELECT coalesce(t.asn, -1) AS asn_key
                      FROM generate_series(0, v_days - 1) AS d(n)
                      CROSS JOIN LATERAL (
                          SELECT a.asn FROM ipintel.attribution_asn_daily a
                          WHERE a.day = p_since + d.n::integer AND a.sessions >= (v_bar + v_days - 1) / v_days) t
                      LIMIT c_budget + 1) c;
            END IF;
            IF cardinality(v_candidates) * v_days <= c_budget THEN
                -- 3. The candidates' exact sums, ranked as the full ranking ranks.
                RAISE DEBUG 'asn_ranking: threshold, % candidate ASNs (bar % sessions)', cardinality(v_candidates), v_bar;
                RETURN QUERY
                SELECT nullif(k.asn_key, -1), sum(a.sessions::double precision)::bigint
                FROM (SELECT DISTINCT u.asn_key FROM unnest(v_candidates) AS u(asn_key)) k
                JOIN ipintel.attribution_asn_daily a
                  ON coalesce(a.asn, -1) = k.asn_key AND a.day >= p_since AND a.day < p_until
                GROUP BY k.asn_key
                ORDER BY 2 DESC, 1 NULLS LAST
                LIMIT p_top;
                RETURN;
            END IF;
        END IF;
    END IF;
    -- The full ranking: an index-only scan of (day, asn) INCLUDE (sessions), every ASN summed.
    -- The sum in float8: its running total is a plain value per group, where a bigint sum keeps
    -- a numeric state (a quarter of the ranking's time at 110K rows). Exact: whole numbers stay
    -- exact in float8 up to 2^53 sessions.
    RAISE DEBUG 'asn_ranking: full ranking';
    RETURN QUERY
    SELECT a.asn, sum(a.sessions::double precision)::bigint
    FROM ipintel.attribution_asn_daily a
    WHERE a.day >= p_since AND a.day < p_until
    GROUP BY a.asn
    ORDER BY 2 DESC, 1 NULLS LAST
    LIMIT p_top;
END;
$$;
COMMENT ON FUNCTION ipintel.asn_ranking(date, date, bigint) IS
    'The p_top ASNs (all when NULL) with the most sessions on the UTC days [p_since, p_until) in attribution_asn_daily, ranked (sessions descending, then ASN, NULL: unknown last): top_asns'' first step. Exactly the full ranking''s first p_top rows, found from each day''s busiest ASNs and a bar (threshold algorithm) when that reads at most 100,000 index rows, by summing every ASN of the window otherwise.';

CREATE FUNCTION ipintel.top_asns(p_since date, p_until date, p_top bigint)
    RETURNS TABLE (asn bigint, as_name text, sessions bigint, ips bigint, logins bigint, commands bigint,
                   downloads bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
    -- A few tens of ms of work: JIT compilation would cost ten times that (measured: 270 ms of 415).
    SET jit = off
    -- With p_top NULL the detail joins every ASN of the window (~19K in the bench): with the
    -- default 4 MB its hash spills to disk.
    SET work_mem = '32MB'
BEGIN ATOMIC
    -- The ranking needs only the sessions (asn_ranking). The other sums and the sketches are
    -- read for the p_top ASNs kept, through the (coalesce(asn, -1), day) index (NULL, the
    -- unknown ASN, keyed as -1).
    WITH ranked AS (
        SELECT r.asn, r.sessions FROM ipintel.asn_ranking(p_since, p_until, p_top) r
    ), detail AS (
        SELECT coalesce(a.asn, -1) AS asn_key, sum(a.login_successes)::bigint AS logins,
               sum(a.commands)::bigint AS commands, sum(a.downloads)::bigint AS downloads,
               round(public.hll_cardinality(public.hll_union_agg(a.distinct_ips)))::bigint AS ips
        FROM ranked r
        JOIN ipintel.attribution_asn_daily a
          ON coalesce(a.asn, -1) = coalesce(r.asn, -1) AND a.day >= p_since AND a.day < p_until
        GROUP BY 1)
    -- The AS name by one probe per ASN kept (a join would hash all of asn_inventory).
    SELECT r.asn, (SELECT n.as_name FROM ipintel.asn_inventory n WHERE n.asn = r.asn), r.sessions, d.ips, d.logins,
           d.commands, d.downloads
    FROM ranked r
    JOIN detail d ON d.asn_key = coalesce(r.asn, -1)
    ORDER BY r.sessions DESC, r.asn NULLS LAST;
END;
COMMENT ON FUNCTION ipintel.top_asns(date, date, bigint) IS
    'The p_top ASNs (all when NULL) with the most sessions on the UTC days [p_since, p_until), ranked by asn_ranking from attribution_asn_daily (sessions with a snapshot, by their snapshot ASN; NULL: unknown): asn, as_name, sessions, ips (distinct source IPs, HLL estimate: standard error 1.6%, exact below a few hundred), logins (successful), commands, downloads. For exact distinct IPs or a window not in whole days, use activity_by_asn.';

CREATE FUNCTION ipintel.top_countries(p_since date, p_until date, p_top bigint)
    RETURNS TABLE (country text, sessions bigint, ips bigint, logins bigint, commands bigint, downloads bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
    SET jit = off
BEGIN ATOMIC
    SELECT a.country, sum(a.sessions)::bigint, round(public.hll_cardinality(public.hll_union_agg(a.distinct_ips)))::bigint,
           sum(a.login_successes)::bigint, sum(a.commands)::bigint, sum(a.downloads)::bigint
    FROM ipintel.attribution_daily a
    WHERE a.day >= p_since AND a.day < p_until
    GROUP BY a.country
    ORDER BY 2 DESC, 1 NULLS LAST
    LIMIT p_top;
END;
COMMENT ON FUNCTION ipintel.top_countries(date, date, bigint) IS
    'The p_top countries (all when NULL) with the most sessions on the UTC days [p_since, p_until), from attribution_daily (by snapshot country; NULL: not known yet): country, sessions, ips (distinct source IPs, HLL estimate: standard error 1.6%), logins (successful), commands, downloads. Exact: activity_by_country.';

------------------------------------------------------------------------------------------
-- ipintel verify: the rollup against a recount
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.verify_attribution()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH queued AS (
        SELECT DISTINCT q.day FROM ipintel.attribution_dirty_days q
    ), stored AS (
        SELECT a.day, a.sensor, a.asn, a.country, a.ip_type, a.sessions, a.login_attempts, a.login_successes,
               a.commands, a.downloads, a.distinct_ips::text AS sketch
        FROM ipintel.attribution_daily a
        WHERE a.day NOT IN (SELECT q.day FROM queued q)
    ), recounted AS (
        SELECT r.day, r.sensor, r.asn, r.country, r.ip_type, r.sessions, r.login_attempts, r.login_successes,
               r.commands, r.downloads, r.distinct_ips::text AS sketch
        FROM (SELECT (min(s.first_event_at) AT TIME ZONE 'UTC')::date AS first_day,
                     (max(s.first_event_at) AT TIME ZONE 'UTC')::date AS last_day
              FROM ipintel.session_summaries s) b
        CROSS JOIN LATERAL ipintel.attribution_of_days(ARRAY(
            SELECT g.day::date FROM generate_series(b.first_day, b.last_day, interval '1 day') AS g(day))) r
        WHERE r.day NOT IN (SELECT q.day FROM queued q)
    ), counts_differ AS (
        (SELECT x.day, x.sensor, x.asn, x.country, x.ip_type, x.sessions, x.login_attempts, x.login_successes,
                x.commands, x.downloads FROM stored x
         EXCEPT
         SELECT y.day, y.sensor, y.asn, y.country, y.ip_type, y.sessions, y.login_attempts, y.login_successes,
                y.commands, y.downloads FROM recounted y)
        UNION
        (SELECT y.day, y.sensor, y.asn, y.country, y.ip_type, y.sessions, y.login_attempts, y.login_successes,
                y.commands, y.downloads FROM recounted y
         EXCEPT
         SELECT x.day, x.sensor, x.asn, x.country, x.ip_type, x.sessions, x.login_attempts, x.login_successes,
                x.commands, x.downloads FROM stored x)
    ), sketches_differ AS (
        (SELECT x.day, x.sensor, x.asn, x.country, x.ip_type, x.sketch FROM stored x
         EXCEPT
         SELECT y.day, y.sensor, y.asn, y.country, y.ip_type, y.sketch FROM recounted y)
        UNION
        (SELECT y.day, y.sensor, y.asn, y.country, y.ip_type, y.sketch FROM recounted y
         EXCEPT
         SELECT x.day, x.sensor, x.asn, x.country, x.ip_type, x.sketch FROM stored x)
    ), asn_stored AS (
        SELECT a.day, a.asn, a.sessions, a.login_attempts, a.login_successes, a.commands, a.downloads,
               a.distinct_ips::text AS sketch
        FROM ipintel.attribution_asn_daily a
        WHERE a.day NOT IN (SELECT q.day FROM queued q)
    ), asn_merged AS (
        SELECT m.day, m.asn, m.sessions, m.login_attempts, m.login_successes, m.commands, m.downloads,
               m.distinct_ips::text AS sketch
        FROM ipintel.attribution_asn_of_days(ARRAY(SELECT DISTINCT a.day FROM ipintel.attribution_daily a)) m
        WHERE m.day NOT IN (SELECT q.day FROM queued q)
    ), asn_differ AS (
        (SELECT * FROM asn_stored EXCEPT SELECT * FROM asn_merged)
        UNION
        (SELECT * FROM asn_merged EXCEPT SELECT * FROM asn_stored)
    ), found AS (
        SELECT 1 AS n, c.day, c.sensor, c.asn, c.country, c.ip_type FROM counts_differ c
        UNION
        SELECT 2, k.day, k.sensor, k.asn, k.country, k.ip_type FROM sketches_differ k
        UNION
        SELECT DISTINCT 3, x.day, NULL, x.asn, NULL, NULL FROM asn_differ x
    )
    SELECT r.rule, count(f.n),
           coalesce((array_agg(concat_ws(' ', f.day, f.sensor, 'AS' || f.asn, f.country, f.ip_type)
                               ORDER BY f.day, f.sensor, f.asn, f.country, f.ip_type)
                     FILTER (WHERE f.n IS NOT NULL))[1:3], '{}')
    FROM (VALUES (1, 'attribution_daily''s counts equal a recount from session_summaries (days queued for roll_up_attribution excepted)'),
                 (2, 'attribution_daily''s distinct_ips sketches equal sketches rebuilt from session_summaries (days queued excepted)'),
                 (3, 'attribution_asn_daily equals attribution_daily merged per day and ASN, sums and sketches (days queued excepted)'))
         AS r(n, rule)
    LEFT JOIN found f ON f.n = r.n
    GROUP BY r.n, r.rule
    ORDER BY r.n;
END;
COMMENT ON FUNCTION ipintel.verify_attribution() IS
    'attribution_daily against a recount from session_summaries, for every day not queued in attribution_dirty_days: the groups whose counts differ (or that one side lacks), and those whose HLL sketch differs from one rebuilt from the same sessions (an HLL of the same IPs is the same sketch, so this is exact); and attribution_asn_daily against attribution_daily merged per day and ASN (rule 3). violations: the groups concerned (day, sensor, ASN, country, ip_type), with up to three examples; 0: sound.';
