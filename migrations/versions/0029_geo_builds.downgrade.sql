-- From migrations/versions/0029_geo_builds.downgrade.sql: back to its parent. The geolocation builds go
-- (load the files again after upgrading again); snapshots already taken from a build keep their
-- values and sources (<source>:build:<day>), which the older verify_snapshots reports as not
-- well-formed: redo those sessions after the downgrade if that matters. Routing snapshots lose
-- their files' sha256, and prefix_origins gets back its GiST of 0022 on (prefix_range, valid),
-- built inside the transaction (a downgrade is one transaction: no CONCURRENTLY), under SHARE:
-- reads go on, routing loads wait for the build.
-- squawk-ignore-file ban-drop-function, ban-drop-table, ban-drop-column, require-concurrent-index-creation, require-concurrent-index-deletion
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

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
               -- known attacker and threat feeds: one field, filled together from one source (0028)
               i.is_known_attacker, i.threatfeeds,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_known_attacker_source, 'none') END
                   AS known_attacker_source,
               i.enrichment
        FROM ipintel.session_summaries s
        JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
        LEFT JOIN ipintel.snapshot_waits w ON w.session_id = s.session_id
        LEFT JOIN ipintel.enrichment_policy ka ON ka.source = i.current_asn_source
        LEFT JOIN ipintel.enrichment_policy kc ON kc.source = i.geo_country_source
        LEFT JOIN ipintel.enrichment_policy ks ON ks.source = i.is_scanner_source
        LEFT JOIN ipintel.enrichment_policy kt ON kt.source = i.ip_type_source
        LEFT JOIN ipintel.enrichment_policy kk ON kk.source = i.is_known_attacker_source
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
                       AS ip_type_ready,
                   w.is_known_attacker_wait_rank IS NULL
                   OR coalesce(kk.is_known_attacker_rank < w.is_known_attacker_wait_rank, false)
                       AS known_attacker_ready) r
        WHERE s.snapshot_complete_at IS NULL
          AND (r.all_ready
               OR (r.asn_ready AND s.snapshot_asn_source IS NULL)
               OR (r.country_ready AND s.snapshot_country_source IS NULL)
               OR (r.scanner_ready AND s.snapshot_is_scanner_source IS NULL)
               OR (r.ip_type_ready AND s.snapshot_ip_type_source IS NULL)
               OR (r.known_attacker_ready AND s.snapshot_is_known_attacker_source IS NULL))
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
            snapshot_is_known_attacker = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                              THEN t.is_known_attacker ELSE s.snapshot_is_known_attacker END,
            snapshot_threatfeeds = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                        THEN t.threatfeeds ELSE s.snapshot_threatfeeds END,
            snapshot_is_known_attacker_source = CASE WHEN s.snapshot_is_known_attacker_source IS NULL
                                                          AND t.known_attacker_ready
                                                     THEN t.known_attacker_source
                                                     ELSE s.snapshot_is_known_attacker_source END,
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

CREATE OR REPLACE FUNCTION ipintel.verify_snapshots()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH allowed_asn_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source || k.suffix FROM ipintel.enrichment_policy p
        CROSS JOIN (VALUES (':history'), (':current')) AS k(suffix)
        UNION
        SELECT 'routing:' || r.dataset || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.routing_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || r.taken_on::text FROM ipintel.routing_snapshots r
    ), allowed_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source FROM ipintel.enrichment_policy p
    ), combos AS (
        -- the sessions grouped by what the rules read: a few groups, checked once each
        SELECT s.snapshot_asn_source AS asn_source, s.snapshot_country_source AS country_source,
               s.snapshot_ip_type_source AS ip_type_source, s.snapshot_is_scanner_source AS is_scanner_source,
               s.snapshot_complete_at IS NOT NULL AS complete, s.snapshot_at IS NOT NULL AS taken,
               -- revision 0022 made the ASN's source say how it was found (routing:, :history,
               -- :current); a bare source name is right only for snapshots taken before the first such
               s.snapshot_at < coalesce((SELECT min(x.snapshot_at) FROM ipintel.session_summaries x
                                         WHERE x.snapshot_asn_source LIKE '%:%'), 'infinity') AS before_0022_form,
               count(*) AS sessions, min(s.session_id) AS example
        FROM ipintel.session_summaries s
        WHERE s.snapshot_at IS NOT NULL OR s.snapshot_asn_source IS NOT NULL OR s.snapshot_country_source IS NOT NULL
           OR s.snapshot_ip_type_source IS NOT NULL OR s.snapshot_is_scanner_source IS NOT NULL
           OR s.snapshot_complete_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ), checked AS (
        SELECT r.n, r.rule, c.sessions, c.example
        FROM combos c
        CROSS JOIN LATERAL (VALUES
            (1, 'a complete snapshot names the source of every field',
             c.complete AND (c.asn_source IS NULL OR c.country_source IS NULL OR c.ip_type_source IS NULL
                             OR c.is_scanner_source IS NULL)),
            (2, 'a snapshot with a known field has snapshot_at',
             NOT c.taken),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:current, bogon or none (a bare source: before revision 0022)',
             c.asn_source IS NOT NULL
             AND c.asn_source NOT IN (SELECT a.source FROM allowed_asn_source a)
             AND NOT (c.before_0022_form AND c.asn_source IN (SELECT p.source FROM ipintel.enrichment_policy p))),
            (4, 'snapshot_country_source is a registered source, bogon or none',
             c.country_source IS NOT NULL AND c.country_source NOT IN (SELECT a.source FROM allowed_source a)),
            (5, 'snapshot_ip_type_source is a registered source, bogon or none',
             c.ip_type_source IS NOT NULL AND c.ip_type_source NOT IN (SELECT a.source FROM allowed_source a)),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none',
             c.is_scanner_source IS NOT NULL AND c.is_scanner_source NOT IN (SELECT a.source FROM allowed_source a))
        ) AS r(n, rule, violated)
        WHERE r.violated
    ), rules AS (
        SELECT r.n, r.rule FROM (VALUES
            (1, 'a complete snapshot names the source of every field'),
            (2, 'a snapshot with a known field has snapshot_at'),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:current, bogon or none (a bare source: before revision 0022)'),
            (4, 'snapshot_country_source is a registered source, bogon or none'),
            (5, 'snapshot_ip_type_source is a registered source, bogon or none'),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none')) AS r(n, rule)
    )
    SELECT x.rule, x.violations, x.examples
    FROM (
        SELECT r.n, r.rule, coalesce(sum(k.sessions), 0)::bigint AS violations,
               coalesce((array_agg(k.example ORDER BY k.example) FILTER (WHERE k.example IS NOT NULL))[1:3], '{}')
                   AS examples
        FROM rules r LEFT JOIN checked k ON k.n = r.n
        GROUP BY r.n, r.rule
        UNION ALL
        -- the guard: snapshot_redos is the only record of a rewrite only while the trigger refuses the others
        SELECT 7, 'the trigger that refuses unaudited rewrites (session_summaries_snapshot_is_immutable) is enabled',
               CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                 WHERE t.tgrelid = 'ipintel.session_summaries'::regclass
                                   AND t.tgname = 'session_summaries_snapshot_is_immutable' AND t.tgenabled <> 'D')
                    THEN 0 ELSE 1 END,
               '{}'::text[]
        UNION ALL
        -- an unfinished redo row would let anyone who names it rewrite snapshots unaudited
        SELECT 8, 'every redo in snapshot_redos is finished (an open one would allow rewrites)',
               count(*), coalesce((array_agg('redo ' || d.redo_id ORDER BY d.redo_id))[1:3], '{}')
        FROM ipintel.snapshot_redos d WHERE d.finished_at IS NULL
    ) x
    ORDER BY x.n;
END;
COMMENT ON FUNCTION ipintel.verify_snapshots() IS
    'The rules snapshots obey, each with its violations (sessions, or 1 for a rule about the schema) and up to three example session ids: complete snapshots name every field''s source, snapshot_at is set, every *_source is well-formed (the ASN''s: routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:current, bogon, none, or a bare registered source for snapshots taken before revision 0022), the rewrite guard is enabled and no redo is left open (snapshot_redos is the only record of a rewrite). violations = 0 everywhere: the snapshots are sound.';

COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn IS 'Snapshot: origin AS of the source IP at the session''s time: from routing history (prefix_origins) at its day, else ip_asn_history at its time, else its current_asn when the field was filled. Known once snapshot_asn_source is set (NULL then means not routed / not known by any source).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_country IS 'Snapshot: ip_inventory.geo_country when the field was filled. Known once snapshot_country_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn_source IS
    'Where snapshot_asn came from: routing:<dataset>:<snapshot day> (routing history), <source>:history (the ip_asn_history range at the session''s time), <source>:current (current_asn when filled), bogon (never asked), none (every source answered or declined, none knew). Before revision 0022: the bare source name. NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_country_source IS
    'Where snapshot_country came from: maxmind (geolocation), cymru (registration country), bogon, none (XX: no source knew). NULL: not known yet, still fillable.';

ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;

DROP FUNCTION ipintel.observed_since(inet, text);
DROP FUNCTION ipintel.geo_build_facts(inet[], date[]);
DROP FUNCTION ipintel.forget_geo_builds(text, date);
DROP FUNCTION ipintel.load_geo_build(text, text, bigint, text, text, text, bigint);
DROP TABLE ipintel_staging.geo_ranges;
DROP TABLE ipintel.geo_asns;
DROP TABLE ipintel.geo_countries;
DROP TABLE ipintel.geo_builds;
DROP TABLE ipintel.geo_editions;

DROP FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint, text);
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
ALTER FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) TO ipintel_loader;
DROP FUNCTION ipintel.trim_dated_runs(regclass, text, text, date);
DROP FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date);
ALTER TABLE ipintel.routing_snapshots DROP COLUMN sha256;
-- The GiST of revision 0022, built again inside this transaction: SHARE on prefix_origins (its
-- reads go on, routing loads wait) for the build, ~30 s per million rows; then the one of 0029 goes.
SET LOCAL statement_timeout = 0;
CREATE INDEX prefix_origins_lookup_idx ON ipintel.prefix_origins USING gist (prefix_range, valid);
COMMENT ON INDEX ipintel.prefix_origins_lookup_idx IS
    'Which prefixes contain an address on a day: ip4r''s own GiST operator class (not btree_gist''s inet one, which lost rows: issue 9).';
DROP INDEX ipintel.prefix_origins_prefix_range_idx;
