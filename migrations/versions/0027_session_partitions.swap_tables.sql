-- From migrations/versions/0027_session_partitions.swap_tables.sql (sql/095_analyst_views.sql's
-- ip_timeline, verify_counts and verify_snapshots, as of this revision)
-- The step both directions of 0027 end with, in the transaction of 0027_session_partitions.swap.sql
-- (upgrade) or .downgrade.sql, which hold EXCLUSIVE on session_summaries: the incoming table
-- (session_summaries_partitioned up, session_summaries_unpartitioned down) takes the place of
-- session_summaries, which is dropped. Views and SQL-standard function bodies are bound to a table,
-- not to its name: their definitions are read while they still name the outgoing table and run
-- again (CREATE OR REPLACE: comments and grants stay) once the incoming one has the name, which
-- carries over whatever reads session_summaries, a later revision's objects included. The renames
-- and the drop take ACCESS EXCLUSIVE on both tables until the commit. Up, the outgoing table has
-- no foreign key left (the copy's first statement dropped it); down, the outgoing partitioned
-- table's key goes with it, which takes ACCESS EXCLUSIVE on ip_inventory to the commit.
-- The dropped table is the outgoing copy of the sessions, which the incoming one holds.
-- squawk-ignore-file ban-drop-table
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DO $$
DECLARE
    v_incoming text := CASE WHEN pg_catalog.to_regclass('ipintel.session_summaries_partitioned') IS NOT NULL
                            THEN 'session_summaries_partitioned' ELSE 'session_summaries_unpartitioned' END;
    v_dependents text[];
    v_ddl text;
BEGIN
    SELECT array_agg(x.ddl ORDER BY x.ddl) INTO v_dependents
    FROM (SELECT DISTINCT CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::regclass
                               THEN format('CREATE OR REPLACE VIEW %s AS %s', r.ev_class::regclass,
                                           pg_catalog.pg_get_viewdef(r.ev_class))
                               ELSE pg_catalog.pg_get_functiondef(d.objid) END AS ddl
          FROM pg_catalog.pg_depend d
          LEFT JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid
          WHERE d.refclassid = 'pg_catalog.pg_class'::regclass
            AND d.refobjid = 'ipintel.session_summaries'::regclass
            AND d.deptype = 'n'
            AND (d.classid = 'pg_catalog.pg_proc'::regclass OR r.ev_class IS NOT NULL)) x;

    ALTER TABLE ipintel.session_summaries RENAME TO session_summaries_outgoing;
    EXECUTE format('ALTER TABLE ipintel.%I RENAME TO session_summaries', v_incoming);
    FOREACH v_ddl IN ARRAY coalesce(v_dependents, '{}') LOOP
        EXECUTE v_ddl;
    END LOOP;
END;
$$;

-- Three of those functions have output columns without names, which their text read back from
-- the catalog names (SELECT 'session'::text AS text): they are made again from their own text, so
-- the schema stays the one sql/ describes.
CREATE OR REPLACE FUNCTION ipintel.ip_timeline(p_ip inet)
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

CREATE OR REPLACE FUNCTION ipintel.verify_counts()
    RETURNS TABLE (table_name text, key text, column_name text, stored text, recounted text)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH per_ip AS (
        SELECT i.ip, i.current_asn, i.session_count, i.first_seen, i.last_seen,
               coalesce(s.sessions, 0) AS sessions_recounted, s.first_seen AS first_recounted,
               s.last_seen AS last_recounted
        FROM ipintel.ip_inventory i
        LEFT JOIN (SELECT x.source_ip, count(*) AS sessions, min(x.first_event_at) AS first_seen,
                          max(x.last_event_at) AS last_seen
                   FROM ipintel.session_summaries x GROUP BY x.source_ip) s ON s.source_ip = i.ip
    ), per_asn AS (
        SELECT a.asn, a.ip_count, a.session_count, a.first_seen, a.last_seen,
               coalesce(r.ips, 0) AS ips_recounted, coalesce(r.sessions, 0) AS sessions_recounted,
               r.first_seen AS first_recounted, r.last_seen AS last_recounted
        FROM ipintel.asn_inventory a
        LEFT JOIN (SELECT p.current_asn, count(*) AS ips, sum(p.sessions_recounted)::bigint AS sessions,
                          min(p.first_recounted) AS first_seen, max(p.last_recounted) AS last_seen
                   FROM per_ip p WHERE p.current_asn IS NOT NULL GROUP BY p.current_asn) r ON r.current_asn = a.asn
    )
    SELECT 'ip_inventory', host(p.ip), c.column_name, c.stored, c.recounted
    FROM per_ip p
    CROSS JOIN LATERAL (VALUES ('session_count', p.session_count::text, p.sessions_recounted::text),
                               ('first_seen', p.first_seen::text, p.first_recounted::text),
                               ('last_seen', p.last_seen::text, p.last_recounted::text))
        AS c(column_name, stored, recounted)
    WHERE c.stored IS DISTINCT FROM c.recounted
    UNION ALL
    SELECT 'asn_inventory', p.asn::text, c.column_name, c.stored, c.recounted
    FROM per_asn p
    CROSS JOIN LATERAL (VALUES ('ip_count', p.ip_count::text, p.ips_recounted::text),
                               ('session_count', p.session_count::text, p.sessions_recounted::text),
                               ('first_seen', p.first_seen::text, p.first_recounted::text),
                               ('last_seen', p.last_seen::text, p.last_recounted::text))
        AS c(column_name, stored, recounted)
    WHERE c.stored IS DISTINCT FROM c.recounted
    ORDER BY 1, 3, 2;
END;

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

-- No CASCADE: anything still bound to the outgoing table stops the revision here.
DROP TABLE ipintel.session_summaries_outgoing;

-- The incoming table's indexes take the names the outgoing table's had.
DO $$
DECLARE
    v_index text;
BEGIN
    FOR v_index IN
        SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'ipintel.session_summaries'::regclass
          AND c.relname ~ '^session_summaries_(un)?partitioned_'
    LOOP
        EXECUTE format('ALTER INDEX ipintel.%I RENAME TO %I', v_index,
                       regexp_replace(v_index, '^session_summaries_(un)?partitioned_', 'session_summaries_'));
    END LOOP;
END;
$$;

-- Up only (the downgrade has dropped ensure_session_partitions by now): sessions the trigger put
-- into the default partition during the copy, of a month that had no partition yet at the first
-- part (a chunk of an old log ingested meanwhile), move into their months' partitions.
DO $$
BEGIN
    IF pg_catalog.to_regprocedure('ipintel.ensure_session_partitions(timestamptz[])') IS NOT NULL THEN
        PERFORM ipintel.ensure_session_partitions(
            ARRAY(SELECT DISTINCT date_trunc('month', d.first_event_at, 'UTC') FROM ipintel.session_summaries_default d));
    END IF;
END;
$$;
