-- From loader/ipintel/sql/queries.sql
-- Every statement the loader sends, by name: the data logic itself lives in the functions of
-- sql/ (installed by the migrations); these are the calls into it, the COPYs into staging and
-- the few bookkeeping reads and writes of the loader. Python looks a statement up with
-- `ipintel.db.query("name")` and passes its parameters by name; parameters are cast here.
--
-- Format (procrastinate's queries.sql): a block starts with a line `-- name --` (lower case,
-- digits, underscores; unique), then at least one `-- ` line saying what it is for, then the
-- statement, one per block. The loader sends the statement after a `-- From ...: name` line,
-- so server logs and pg_stat_activity point back here. tests/test_queries.py checks the format
-- and that every name is used.

------------------------------------------------------------------------------------------
-- CLI: status and report (the functions are in sql/097_reports.sql)
------------------------------------------------------------------------------------------

-- tier_counts --
-- Rows in each tier, for the CLI's summary table.
SELECT (SELECT count(*) FROM ipintel.asn_inventory)     AS asn_inventory,
       (SELECT count(*) FROM ipintel.ip_inventory)      AS ip_inventory,
       (SELECT count(*) FROM ipintel.session_summaries) AS session_summaries,
       (SELECT count(*) FROM ipintel.ip_asn_history)    AS ip_asn_history;

-- status_coverage --
-- `ipintel status`: coverage per source, in pass order; when an answer is due again, as text:
-- the TTL, or for an offline database (MaxMind) a newer build, never its age.
SELECT c.*, CASE WHEN p.kind = 'offline_database' THEN 'new build' ELSE c.ttl::text END AS ttl
FROM ipintel.enrichment_coverage c
JOIN ipintel.enrichment_policy p USING (source)
ORDER BY p.pass_order;

-- status_last_runs --
-- `ipintel status`: the last %(n)s enrichment runs.
SELECT * FROM ipintel.status_last_runs(%(n)s::bigint);

-- status_open_failures --
-- `ipintel status`: failures waiting for a retry, per source.
SELECT * FROM ipintel.status_open_failures();

-- report_top_asns --
-- `ipintel report`: the ASNs with the most sessions from %(since)s (inclusive) to %(until)s (exclusive).
SELECT * FROM ipintel.report_top_asns(%(since)s::timestamptz, %(until)s::timestamptz, %(top)s::bigint);

-- report_top_countries --
-- `ipintel report`: the countries with the most sessions in the window.
SELECT * FROM ipintel.report_top_countries(%(since)s::timestamptz, %(until)s::timestamptz, %(top)s::bigint);

-- report_ip_types --
-- `ipintel report`: sessions by IP type and GreyNoise verdict in the window.
SELECT * FROM ipintel.report_ip_types(%(since)s::timestamptz, %(until)s::timestamptz, %(top)s::bigint);

-- report_asn_moves --
-- `ipintel report`: IPs whose ASN changed in the window.
SELECT * FROM ipintel.report_asn_moves(%(since)s::timestamptz, %(until)s::timestamptz, %(top)s::bigint);

-- report_attributions --
-- `ipintel report`: the credit line each source whose data is in the database asks for (its
-- licence's attribution, kept in the provenance of its runs that merged answers).
SELECT DISTINCT ON (r.source) r.source, r.provenance ->> 'attribution' AS attribution
FROM ipintel.enrichment_runs r
WHERE r.merged > 0 AND r.provenance ? 'attribution'
ORDER BY r.source, r.run_id DESC;

-- report_totals --
-- `ipintel report --format json|html`: the window's totals, and the database's (to tell an empty
-- database from an empty window).
SELECT count(*) AS sessions, count(DISTINCT a.source_ip) AS ips, count(DISTINCT a.asn) AS asns,
       count(DISTINCT a.country) AS countries, sum(a.login_successes)::bigint AS logins,
       sum(a.command_count)::bigint AS commands, sum(a.download_count)::bigint AS downloads,
       min(a.first_event_at) AS first_session, max(a.first_event_at) AS last_session,
       (SELECT count(*) FROM ipintel.session_summaries) AS sessions_in_database,
       (SELECT min(s.first_event_at) FROM ipintel.session_summaries s) AS first_in_database,
       (SELECT max(s.first_event_at) FROM ipintel.session_summaries s) AS last_in_database
FROM ipintel.session_attribution a
WHERE a.first_event_at >= %(since)s::timestamptz AND a.first_event_at < %(until)s::timestamptz;

-- report_activity_by_day --
-- `ipintel report --format json|html`: sessions, IPs, logins... per UTC day of the window.
SELECT * FROM ipintel.activity_by_day(%(since)s::timestamptz, %(until)s::timestamptz);

-- report_activity_by_asn --
-- `ipintel report --format json|html`: the %(top)s ASNs with the most sessions in the window.
SELECT * FROM ipintel.activity_by_asn(%(since)s::timestamptz, %(until)s::timestamptz) LIMIT %(top)s::bigint;

-- report_activity_by_country --
-- `ipintel report --format json|html`: the %(top)s countries with the most sessions in the window.
SELECT * FROM ipintel.activity_by_country(%(since)s::timestamptz, %(until)s::timestamptz) LIMIT %(top)s::bigint;

-- report_activity_by_class --
-- `ipintel report --format json|html`: sessions per infrastructure class and scanner verdict.
SELECT * FROM ipintel.activity_by_class(%(since)s::timestamptz, %(until)s::timestamptz);

-- report_new_asns --
-- `ipintel report --format json|html`: ASNs with sessions in the last week of the window and none
-- in the four weeks before, at most %(top)s.
SELECT * FROM ipintel.asn_trends(%(until)s::timestamptz) WHERE is_new LIMIT %(top)s::bigint;

-- report_sources --
-- `ipintel report --format json|html`: provenance per source (answers, builds, fetch times, last run).
SELECT * FROM ipintel.report_sources();

-- report_routing_snapshots --
-- `ipintel report --format json|html`: the routing history loaded, per dataset.
SELECT * FROM ipintel.report_routing_snapshots();

------------------------------------------------------------------------------------------
-- CLI: verify (the functions are in sql/095_analyst_views.sql)
------------------------------------------------------------------------------------------

-- verify_counts_summary --
-- `ipintel verify`: the maintained counts that differ from a recount, per table and column, with
-- how many rows and the first three.
SELECT v.table_name, v.column_name, count(*) AS rows,
       (array_agg(v.key || ': stored ' || coalesce(v.stored, 'NULL') || ', recounted ' || coalesce(v.recounted, 'NULL')
                  ORDER BY v.key))[1:3] AS examples
FROM ipintel.verify_counts() v
GROUP BY v.table_name, v.column_name
ORDER BY v.table_name, v.column_name;

-- verify_snapshots --
-- `ipintel verify`: every snapshot rule with its violations (0: obeyed) and examples.
SELECT * FROM ipintel.verify_snapshots();

-- verify_integrity --
-- `ipintel verify`: the rules kept without per-row checks (ASN history, sources) with their
-- violations (0: obeyed) and examples.
SELECT * FROM ipintel.verify_integrity();

-- verify_sessions --
-- `ipintel verify`: the rules of session_summaries its partitioning leaves to ipintel, with their
-- violations (0: obeyed) and examples.
SELECT * FROM ipintel.verify_sessions();

-- verify_attribution --
-- `ipintel verify`: attribution_daily against a recount from session_summaries (counts and HLL
-- sketches), and attribution_asn_daily against attribution_daily merged per day and ASN (days
-- still queued for roll_up_attribution excepted), with violations and examples.
SELECT * FROM ipintel.verify_attribution();

-- verify_scope --
-- `ipintel verify`: how much was checked.
SELECT (SELECT count(*) FROM ipintel.asn_inventory) AS asns, (SELECT count(*) FROM ipintel.ip_inventory) AS ips,
       (SELECT count(*) FROM ipintel.session_summaries) AS sessions;

------------------------------------------------------------------------------------------
-- Advisory locks: one ingest and one enrichment at a time per database (ipintel.locks)
------------------------------------------------------------------------------------------

-- try_advisory_lock --
-- Take the session advisory lock named %(name)s without waiting; ok is false when another
-- session holds it. The key is derived from the name in SQL, so psql users can take it too:
-- SELECT pg_try_advisory_lock(hashtextextended('ipintel.enrich', 0));
SELECT pg_try_advisory_lock(hashtextextended(%(name)s::text, 0)) AS ok;

-- try_advisory_xact_lock --
-- Take the transaction advisory lock named %(name)s without waiting (held until the transaction
-- ends); ok is false when another transaction holds it.
SELECT pg_try_advisory_xact_lock(hashtextextended(%(name)s::text, 0)) AS ok;

-- advisory_lock_holder --
-- The backend holding the advisory lock named %(name)s in this database, and since when it is
-- connected. Advisory locks are per database: a run against another database of the same server
-- holds a lock of the same key without being in our way, and is not named (l.database). The
-- lock is taken with one bigint key (objsubid 1), as ipintel.ingest_is_running() reads it.
SELECT a.pid, a.backend_start::text AS since
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
  AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(%(name)s::text, 0)
LIMIT 1;

------------------------------------------------------------------------------------------
-- Staging batches, shared by ingest and enrich
------------------------------------------------------------------------------------------

-- next_batch_id --
-- A new batch id for the rows one transaction stages.
SELECT nextval('ipintel_staging.batch_id_seq') AS id;

------------------------------------------------------------------------------------------
-- Ingest (the functions are in sql/060_ingest.sql)
------------------------------------------------------------------------------------------

-- interrupt_abandoned_ingest_runs --
-- Run by an ingest holding the ingest lock: a run still marked running was killed.
SELECT ipintel.interrupt_abandoned_ingest_runs() AS n;

-- start_ingest_run --
-- A new ingest run; returns its run_id.
SELECT ipintel.start_ingest_run() AS run_id;

-- finish_ingest_run --
-- An ingest run ends: its status, and the files read or skipped (counted also after the last
-- chunk, or in a run with none).
SELECT ipintel.finish_ingest_run(%(run_id)s::bigint, %(status)s::text, %(files_read)s::bigint,
                                 %(files_skipped)s::bigint);

-- small_fingerprint_lengths --
-- The fingerprint lengths recorded for files shorter than %(length)s bytes (a small live log is
-- hashed whole: its head is tried again at those lengths).
SELECT DISTINCT fingerprint_bytes FROM ipintel.ingest_files
WHERE fingerprint_bytes < %(length)s::integer;

-- find_ingest_file --
-- What was ingested of the file known by one of %(candidates)s (fingerprints), the longest first.
SELECT file_id, bytes_ingested, lines_ingested, finished FROM ipintel.ingest_files
WHERE fingerprint = ANY(%(candidates)s::text[])
ORDER BY fingerprint_bytes DESC LIMIT 1;

-- copy_cowrie_sessions --
-- Stream a chunk's events aggregated per session into staging (the columns in the order
-- chunks.ChunkSessions.copy_text writes them).
COPY ipintel_staging.cowrie_sessions (batch_id, session_id, source_ip, sensor, first_event_at, last_event_at,
                                     protocol, src_port, dst_ip, dst_port, duration_seconds, client_version,
                                     hassh, login_attempts, login_successes, command_count, download_count,
                                     event_count)
FROM STDIN;

-- copy_cowrie_event_counts --
-- Stream a chunk's events per eventid into staging (chunks.ChunkSessions.counts_text).
COPY ipintel_staging.cowrie_event_counts (batch_id, eventid, events) FROM STDIN;

-- copy_cowrie_rejects --
-- Stream a chunk's rejected lines into staging.
COPY ipintel_staging.cowrie_rejects (batch_id, line_no, reason, detail, excerpt) FROM STDIN;

-- ingest_chunk --
-- One call per chunk: merge the staged batch, keep its rejects, move the file's offset and the
-- run's counters.
SELECT * FROM ipintel.ingest_chunk(%(run)s::bigint, %(batch)s::bigint, %(file_id)s::bigint, %(fp)s::text,
                                   %(fp_bytes)s::integer, %(path)s::text, %(offset)s::bigint, %(lines)s::bigint,
                                   %(finished)s::boolean, %(files_read)s::bigint, %(files_skipped)s::bigint);

------------------------------------------------------------------------------------------
-- Enrich (the functions are in sql/070_enrichment.sql and sql/080_cymru_greynoise.sql)
------------------------------------------------------------------------------------------

-- registered_sources --
-- The source registry, in pass order.
SELECT source FROM ipintel.enrichment_policy ORDER BY pass_order;

-- offline_sources --
-- The registered offline databases (kind offline_database), in pass order: what `ipintel demo`
-- runs without the network.
SELECT source FROM ipintel.enrichment_policy WHERE kind = 'offline_database' ORDER BY pass_order;

-- running_enrichment_run --
-- The newest enrichment run still marked running: named when the enrich lock is held.
SELECT run_id, source, started_at FROM ipintel.enrichment_runs
WHERE status = 'running' ORDER BY run_id DESC LIMIT 1;

-- interrupt_abandoned_runs --
-- Run by an enrich holding the enrich lock: a run still marked running was killed.
SELECT ipintel.interrupt_abandoned_runs();

-- source_enabled --
-- Whether the source %(source)s is enabled (no row: not registered).
SELECT enabled FROM ipintel.enrichment_policy WHERE source = %(source)s::text;

-- start_run --
-- A run row for one pass, with its provenance; returns its id.
SELECT ipintel.start_run(%(source)s::text, %(provenance)s::jsonb, %(status)s::text, %(message)s::text) AS id;

-- ips_in --
-- `ipintel enrich --asn N --country CC`: the IPs whose current ASN is one of %(asns)s or whose
-- country is one of %(countries)s, re-fetched like --ip.
SELECT coalesce(array_agg(host(ip)), '{}') AS ips
FROM ipintel.ips_in(%(asns)s::bigint[], %(countries)s::text[]) AS ip;

-- run_due_ips --
-- The IPs due for the run's source (or %(ips)s, forced), at most %(limit)s (NULL: all).
SELECT host(ip) AS ip
FROM ipintel.run_due_ips(%(run)s::bigint, %(limit)s::bigint, %(force)s::boolean, %(ips)s::inet[],
                         %(build)s::bigint) AS ip;

-- spend_budget --
-- Lookups granted from today's shared budget of the source (counted in ipintel.api_budget).
SELECT ipintel.spend_budget(%(source)s::text, %(want)s::bigint, %(limit)s::bigint) AS n;

-- copy_enrichment_results --
-- Stream a batch's answers into staging: COPY text made by ipintel.enrich.copy_results, the
-- batch id put in front of each line.
COPY ipintel_staging.enrichment_results (batch_id, run_id, source, ip, fetched_at, build, result) FROM STDIN;

-- copy_enrichment_failures --
-- Stream a batch's failures into staging.
COPY ipintel_staging.enrichment_failures (run_id, batch_id, source, ip, error, retryable, retry_after) FROM STDIN;

-- merge_batch --
-- One call per batch: the source's merge, the failures, the run's counters.
SELECT * FROM ipintel.merge_batch(%(run)s::bigint, %(batch)s::bigint);

-- finish_run --
-- A pass ends: its run's status and why.
SELECT ipintel.finish_run(%(run)s::bigint, %(status)s::text, %(message)s::text);

-- redo_snapshots --
-- The audited re-take of the snapshots of sessions that started in [since, until).
SELECT * FROM ipintel.redo_snapshots(%(since)s::timestamptz, %(until)s::timestamptz, %(reason)s::text);

-- analyze_sessions_without_statistics --
-- Before take_snapshots, in a statement of its own: the sessions' partitions that have rows but
-- no statistics yet are analyzed (ANALYZE's lock ends with this statement).
SELECT ipintel.analyze_sessions_without_statistics() AS analyzed;

-- take_snapshots --
-- After the passes: SQL decides, per session and field, which sources are still awaited.
SELECT ipintel.take_snapshots() AS n;

-- roll_up_attribution --
-- After take_snapshots (enrich) and after the last chunk (ingest): recompute the attribution_daily
-- and attribution_asn_daily days their writes queued; returns how many days.
SELECT ipintel.roll_up_attribution() AS days;

------------------------------------------------------------------------------------------
-- Routing history: `ipintel routing load` (ipintel.routing; the function is in revision 0022)
------------------------------------------------------------------------------------------

-- copy_routing_prefixes --
-- Stream one routing table file's (prefix, origin ASN) rows into staging: one row per origin.
COPY ipintel_staging.routing_prefixes (batch_id, prefix, asn) FROM STDIN;

-- copy_routing_rejects --
-- Stream the lines of that file that could not be read into staging.
COPY ipintel_staging.routing_rejects (batch_id, line_no, reason, excerpt) FROM STDIN;

-- routing_snapshot_loaded --
-- Before a file is read: the snapshot of %(dataset)s taken on %(taken_on)s, if one is loaded,
-- with the file it came from and that file's sha256 (NULL: loaded before revision 0029).
SELECT s.snapshot_id AS number, s.file, s.sha256
FROM ipintel.routing_snapshots s
WHERE s.dataset = %(dataset)s::text AND s.taken_on = %(taken_on)s::date;

-- load_routing_snapshot --
-- One call per file: merge the staged batch into ipintel.prefix_origins as the snapshot of
-- %(dataset)s taken on %(taken_on)s, keep its rejects and the file's %(sha256)s, empty the batch
-- (loaded is false, and nothing changes, when that dataset's snapshot of that date was loaded
-- meanwhile).
SELECT * FROM ipintel.load_routing_snapshot(%(dataset)s::text, %(taken_on)s::date, %(file)s::text,
                                            %(batch)s::bigint, %(sha256)s::text);

------------------------------------------------------------------------------------------
-- Dated geolocation builds: `ipintel geo load`, `ipintel geo builds` (ipintel.geo; the
-- functions are in sql/073_geo_builds.sql)
------------------------------------------------------------------------------------------

-- geo_build_loaded --
-- Before a file is read: the build of edition %(edition)s made on %(built_on)s, if one is
-- loaded, with the file it came from and that file's sha256.
SELECT b.build_id AS number, b.file, b.sha256
FROM ipintel.geo_builds b
WHERE b.edition = %(edition)s::text AND b.built_on = %(built_on)s::date;

-- copy_geo_ranges --
-- Stream one build's country ranges (asn empty) and ASN ranges (country empty) into staging.
COPY ipintel_staging.geo_ranges (batch_id, first_ip, last_ip, country, asn) FROM STDIN;

-- load_geo_build --
-- One call per file: merge the staged batch into ipintel.geo_countries and geo_asns as the build
-- of %(edition)s (of %(source)s) made at %(build_epoch)s, recorded with its file and sha256; empty
-- the batch (loaded is false, and nothing changes, when that build was loaded meanwhile).
SELECT * FROM ipintel.load_geo_build(%(edition)s::text, %(source)s::text, %(build_epoch)s::bigint,
                                     %(database_type)s::text, %(file)s::text, %(sha256)s::text, %(batch)s::bigint);

-- forget_geo_builds --
-- `ipintel geo forget`: remove the builds of %(edition)s made before %(before)s (NULL: every build
-- but the latest), as if they had never been loaded.
SELECT * FROM ipintel.forget_geo_builds(%(edition)s::text, %(before)s::date);

-- geo_builds --
-- `ipintel geo builds`: every build loaded, per edition, oldest first, with its edition's max_age.
SELECT e.source, b.edition, b.built_on, b.countries, b.asns, b.file, b.loaded_at, e.max_age
FROM ipintel.geo_builds b
JOIN ipintel.geo_editions e ON e.edition = b.edition
ORDER BY e.source, b.edition, b.built_on;


------------------------------------------------------------------------------------------
-- Range lists: `ipintel ranges load` / `fetch` (ipintel.ranges; the functions are in
-- sql/073_range_lists.sql and sql/074_ip_classes.sql)
------------------------------------------------------------------------------------------

-- copy_listed_ranges --
-- Stream one range-list file's (prefix, service, region) entries into staging.
COPY ipintel_staging.listed_ranges (batch_id, prefix, service, region) FROM STDIN;

-- copy_listed_asns --
-- Stream one ASN-list file's (asn, name, source) entries into staging.
COPY ipintel_staging.listed_asns (batch_id, asn, name, source) FROM STDIN;

-- load_range_snapshot --
-- One call per file: merge the staged batch as the snapshot of the list %(list)s taken on
-- %(taken_on)s, empty the batch (loaded is false, and nothing changes, when that snapshot was
-- already loaded).
SELECT * FROM ipintel.load_range_snapshot(%(list)s::text, %(taken_on)s::date, %(file)s::text, %(batch)s::bigint);

-- classify_inventory --
-- After the loads: the next %(limit)s ip_inventory rows after %(after)s (NULL: from the first)
-- classified as of today; one committed batch per call, until last_ip is NULL.
SELECT * FROM ipintel.classify_inventory(%(after)s::inet, %(limit)s::bigint);

------------------------------------------------------------------------------------------
-- Metrics (`--metrics-file`, ipintel.metrics): read once when a run ends, on a connection of
-- their own
------------------------------------------------------------------------------------------

-- metrics_statement_timeout --
-- Bound every metrics query to %(ms)s milliseconds: they also run after Ctrl-C or SIGTERM.
SELECT set_config('statement_timeout', %(ms)s::text, false);

-- metrics_ingest_run --
-- What the ingest run %(run_id)s read, loaded and rejected.
SELECT r.lines_read AS lines, r.events_loaded AS events, r.rejects, r.sessions_new, r.ips_new, r.files_read
FROM ipintel.ingest_runs r
WHERE r.run_id = %(run_id)s::bigint;

-- metrics_ingest_runs --
-- Ingest runs that ended, per status, and a row for all of them (every_status) with the lines,
-- events and rejects they counted.
SELECT r.status, GROUPING(r.status) = 1 AS every_status, count(*) AS runs,
       coalesce(sum(r.lines_read), 0) AS lines, coalesce(sum(r.events_loaded), 0) AS events,
       coalesce(sum(r.rejects), 0) AS rejects
FROM ipintel.ingest_runs r
WHERE r.status <> 'running'
GROUP BY GROUPING SETS ((r.status), ())
ORDER BY every_status, r.status;

-- metrics_last_passes --
-- The last pass of each source that ended: its status, counts, duration and end (Unix time).
SELECT DISTINCT ON (r.source) r.source, r.status, r.requested AS due, r.fetched, r.merged, r.failed,
       extract(epoch FROM r.finished_at - r.started_at)::float8 AS seconds,
       extract(epoch FROM r.finished_at)::float8 AS finished_at
FROM ipintel.enrichment_runs r
WHERE r.status <> 'running'
ORDER BY r.source, r.run_id DESC;

-- metrics_enrichment_runs --
-- Passes that ended, per source and status, and a row per source for all of them (every_status)
-- with the IPs they were due, fetched, merged and failed.
SELECT r.source, r.status, GROUPING(r.status) = 1 AS every_status, count(*) AS runs,
       sum(r.requested) AS due, sum(r.fetched) AS fetched, sum(r.merged) AS merged, sum(r.failed) AS failed
FROM ipintel.enrichment_runs r
WHERE r.status <> 'running'
GROUP BY GROUPING SETS ((r.source, r.status), (r.source))
ORDER BY r.source, every_status, r.status;

-- metrics_enrichment_freshness --
-- Per source: IPs with a fresh, stale or no answer and open failures (enrichment_coverage), and
-- the age in seconds of its oldest answer still fresh (NULL: none; fresh by the IP's class's TTL
-- when it has one), in one scan of enrichment_state.
SELECT c.source, c.fresh, c.stale, c.never_fetched, c.failed, o.oldest_fresh_age_seconds
FROM ipintel.enrichment_coverage c
JOIN ipintel.enrichment_policy p USING (source)
LEFT JOIN (
    SELECT e.source,
           extract(epoch FROM now() - min(e.fetched_at) FILTER (WHERE NOT ipintel.answer_is_stale(p2, e.fetched_at, t.ttl)))::float8
               AS oldest_fresh_age_seconds
    FROM ipintel.enrichment_state e
    JOIN ipintel.enrichment_policy p2 ON p2.source = e.source
    JOIN ipintel.ip_inventory i ON i.ip = e.ip
    LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
    GROUP BY e.source
) o USING (source)
ORDER BY p.pass_order;

-- metrics_snapshot_backlog --
-- Sessions whose snapshot is incomplete (the row whose source is NULL), and per registered source
-- how many of them still wait for it (snapshot_backlog read once).
WITH backlog AS MATERIALIZED (SELECT b.waiting_for FROM ipintel.snapshot_backlog b)
SELECT NULL::text AS source, count(*) AS sessions FROM backlog
UNION ALL
SELECT p.source, (SELECT count(*) FROM backlog WHERE p.source = ANY (backlog.waiting_for))
FROM ipintel.enrichment_policy p;

------------------------------------------------------------------------------------------
-- Schema version (ipintel.schema); the table is named in migrations/env.py
------------------------------------------------------------------------------------------

-- version_table_exists --
-- Whether the alembic version table %(table)s is found through the search_path.
SELECT to_regclass(%(table)s::text) IS NOT NULL AS found;

-- schema_versions --
-- The revisions the database is at (one row, or none).
SELECT version_num FROM ipintel_alembic_version;
