-- From migrations/versions/0029_range_lists.downgrade.sql: back to 0025. The range lists leave with
-- everything loaded into them (reload the files after upgrading again); load_routing_snapshot merges
-- its runs by itself again.
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-column, ban-drop-constraint
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

-- The classes 0025 does not know go back to what the sources say (as 0025's merges decide it).
UPDATE ipintel.ip_inventory i
SET ip_type = CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(f.ip_type, 'unknown') END,
    ip_type_source = CASE WHEN NOT i.is_bogon THEN f.ip_type_source END
FROM ipintel.ip_inventory x
CROSS JOIN LATERAL ipintel.resolved_facts(x.ip) f
WHERE x.ip = i.ip AND i.ip_type IN ('tor', 'cloud', 'cdn', 'hosting', 'residential');
ALTER TABLE ipintel.ip_inventory DROP CONSTRAINT ip_inventory_ip_type_fkey;
ALTER TABLE ipintel.ip_inventory DROP CONSTRAINT ip_inventory_ip_class_basis_is_object;
ALTER TABLE ipintel.ip_inventory DROP COLUMN ip_provider, DROP COLUMN ip_class_basis;
-- ip_timeline reads the sessions with s.*, expanded to every column when it was created: it goes
-- with the column, and comes back as 0025 made it.
DROP FUNCTION ipintel.ip_timeline(inet);
ALTER TABLE ipintel.session_summaries DROP COLUMN snapshot_ip_provider;
CREATE FUNCTION ipintel.ip_timeline(p_ip inet)
    RETURNS TABLE (at timestamptz, until timestamptz, kind text, source text, asn bigint, country text, detail jsonb)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH target AS (
        SELECT ipintel.normalize_ip(p_ip) AS ip
    ), sessions AS (
        SELECT s.* FROM ipintel.session_summaries s WHERE s.source_ip = (SELECT t.ip FROM target t)
    ), routing AS (
        -- the routing history's origin AS at each session's day (one GiST probe per day)
        SELECT r.day, r.asn, r.dataset, r.taken_on, r.prefix
        FROM ipintel.routing_asns(ARRAY(SELECT s.source_ip FROM sessions s),
                                  ARRAY(SELECT (s.first_event_at AT TIME ZONE 'UTC')::date FROM sessions s)) r
    )
    SELECT s.first_event_at, s.last_event_at, 'session', s.snapshot_asn_source, s.snapshot_asn, s.snapshot_country,
           jsonb_build_object('session_id', s.session_id, 'sensor', s.sensor, 'protocol', s.protocol,
                              'dst_port', s.dst_port, 'login_attempts', s.login_attempts,
                              'login_successes', s.login_successes, 'commands', s.command_count,
                              'downloads', s.download_count, 'client_version', s.client_version, 'hassh', s.hassh,
                              'ip_type', s.snapshot_ip_type, 'is_scanner', s.snapshot_is_scanner,
                              'snapshot_complete_at', s.snapshot_complete_at,
                              'routing_asn', r.asn, 'routing_prefix', r.prefix,
                              'routing_snapshot', r.dataset || ':' || r.taken_on::text)
    FROM sessions s
    LEFT JOIN routing r ON r.day = (s.first_event_at AT TIME ZONE 'UTC')::date
    UNION ALL
    -- the ranges of ip_asn_history: each ASN the sources observed, from when until the next change
    SELECT lower(h.valid), upper(h.valid), 'asn', h.source, h.asn, NULL,
           jsonb_build_object('as_name', n.as_name, 'recorded_at', h.recorded_at)
    FROM ipintel.ip_asn_history h
    LEFT JOIN ipintel.asn_inventory n ON n.asn = h.asn
    WHERE h.ip = (SELECT t.ip FROM target t)
    UNION ALL
    -- what each source says: since when (changed_at), last confirmed (fetched_at), its facts and document
    SELECT e.changed_at, NULL, 'answer', e.source, e.asn, e.country,
           jsonb_build_object('fetched_at', e.fetched_at, 'build', e.build, 'asn_observed', e.asn_observed,
                              'is_scanner', e.is_scanner, 'is_riot', e.is_riot, 'ip_type', e.ip_type,
                              'document', i.enrichment -> e.source)
    FROM ipintel.enrichment_state e
    JOIN ipintel.ip_inventory i ON i.ip = e.ip
    WHERE e.ip = (SELECT t.ip FROM target t)
    UNION ALL
    -- what a source could not say
    SELECT f.recorded_at, f.resolved_at, 'failure', f.source, NULL, NULL,
           jsonb_build_object('error', f.error, 'retryable', f.retryable, 'attempts', f.attempts,
                              'retry_after', f.retry_after)
    FROM ipintel.enrichment_failures f
    WHERE f.ip = (SELECT t.ip FROM target t)
    UNION ALL
    -- routing history: every run of a prefix containing the IP and its origin (days, UTC)
    SELECT lower(o.valid)::timestamp AT TIME ZONE 'UTC', upper(o.valid)::timestamp AT TIME ZONE 'UTC', 'routing',
           'routing:' || o.dataset, o.asn, NULL, jsonb_build_object('prefix', o.prefix)
    FROM ipintel.prefix_origins o
    WHERE o.prefix_range OPERATOR(public.>>=) public.iprange((SELECT t.ip FROM target t)::cidr)
    ORDER BY 1, 3, 4;
END;
COMMENT ON FUNCTION ipintel.ip_timeline(inet) IS
    'Everything known about one IP, in time order. kind: session (at/until: its first and last event; source, asn, country: its snapshot; detail: counts, client, snapshot class, and the routing history''s ASN at its day), asn (an ip_asn_history range: the ASN a source observed from at until until, NULL while current), answer (what a source says since at = changed_at, last confirmed detail.fetched_at, its facts and document), failure (a source could not answer: recorded at, resolved until), routing (a prefix_origins run of a prefix containing the IP: its origin AS over those days).';
REVOKE EXECUTE ON FUNCTION ipintel.ip_timeline(inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.ip_timeline(inet) TO ipintel_reader, ipintel_loader;
COMMENT ON COLUMN ipintel.ip_inventory.ip_type IS
    'First classification: bogon; else the classification of the first-ranked source that gives one (ip_type_rank: riot, scanner, anonymizer, unrouted = allocated but not announced); else routed when an ASN is known; else unknown.';

COMMENT ON COLUMN ipintel.ip_inventory.ip_type_source IS 'The source ip_type came from (for routed: the ASN''s source); NULL for bogon and unknown.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type IS 'Snapshot: ip_inventory.ip_type when the field was filled (only once no source is still awaited). Known once snapshot_ip_type_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type_source IS
    'Which source decided snapshot_ip_type: greynoise (riot, scanner), maxmind (anonymizer, routed), cymru (unrouted, routed), bogon, none (unknown). NULL: not known yet (filled only once no source is awaited).';


CREATE OR REPLACE FUNCTION ipintel.apply_answers(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_asns bigint[];
    v_changed bigint;
BEGIN
    -- A new ASN observation becomes current: its history first (see record_asn_history), as of
    -- this answer (when a better-ranked source stops observing, the fallback becomes current
    -- now, not when it was observed). No observation at all ("not in the file") keeps the last.
    SELECT ipintel.record_asn_history(array_agg(f.asn_source), array_agg(r.ip), array_agg(f.asn),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.enrichment_results r
    JOIN ipintel.ip_inventory i ON i.ip = r.ip
    CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
    WHERE r.batch_id = p_batch_id AND f.asn_source IS NOT NULL
      AND (i.current_asn, i.current_asn_source) IS DISTINCT FROM (f.asn, f.asn_source);

    UPDATE ipintel.ip_inventory i
    SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
        geo_country = n.geo_country, geo_country_source = n.geo_country_source,
        is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
        ip_type = n.ip_type, ip_type_source = n.ip_type_source, updated_at = now()
    FROM (
        SELECT r.ip,
               CASE WHEN cur.enrichment -> p_source IS DISTINCT FROM r.result
                    THEN cur.enrichment || jsonb_build_object(p_source, r.result) ELSE cur.enrichment END AS enrichment,
               CASE WHEN f.asn_source IS NOT NULL THEN f.asn ELSE cur.current_asn END AS current_asn,
               coalesce(f.asn_source, cur.current_asn_source) AS current_asn_source,
               coalesce(f.country, 'XX') AS geo_country, f.country_source AS geo_country_source,
               f.is_scanner, f.is_scanner_source, f.is_riot,
               CASE WHEN cur.is_bogon THEN 'bogon' ELSE coalesce(f.ip_type, 'unknown') END AS ip_type,
               CASE WHEN NOT cur.is_bogon THEN f.ip_type_source END AS ip_type_source
        FROM ipintel_staging.enrichment_results r
        JOIN ipintel.ip_inventory cur ON cur.ip = r.ip
        CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
        WHERE r.batch_id = p_batch_id) n
    WHERE i.ip = n.ip
      AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
           i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source)
          IS DISTINCT FROM
          (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
           n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source);
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.apply_answers(text, bigint) IS
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot and ip_type with their *_source from enrichment_state by the registry''s ranks (resolved_facts), and refreshes the ASN counts. Writes only rows that change; returns how many.';

COMMENT ON FUNCTION ipintel.resolved_facts(inet) IS
    'The facts of one IP resolved across sources: for each fact the value of the first-ranked source (enrichment_policy *_rank) whose last answer gives it, with that source (and, for the ASN, when it was observed). ip_type falls back to routed when an ASN is known. One row, NULLs when no source answered.';

DROP FUNCTION ipintel.classify_inventory(inet, bigint);
DROP FUNCTION ipintel.ip_classes(inet[], date[], bigint[], text[]);
DROP FUNCTION ipintel.as_name_looks_residential(text);
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
