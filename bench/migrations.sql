-- From bench/migrations.sql
-- The statements of bench/migrations.py, by name (the format of loader/ipintel/sql/queries.sql,
-- read with ipintel.db.parse_queries). The populate_* blocks are psycopg.sql templates: {sessions},
-- {ips} and {asns} are filled in as literals (several statements run in one call only without
-- parameters).

-- load_without_triggers --
-- Generated rows satisfy every foreign key and trigger by construction: load them without
-- firing either (session_replication_role; needs a superuser, as the bench cluster's role is).
SET session_replication_role = replica;

-- populate_tiers --
-- The tiers as any revision from 0001 on has them: only the columns every revision has, the
-- answers as the merges wrote them before 0016 (fetch time and build inside the documents), a
-- quarter of the IPs also answered by Team Cymru, and half the sessions with a snapshot taken the
-- way it was before 0009 (no per-field sources). The fields document_column, document_open and
-- document_close: the snapshot's document copied (snapshot_enrichment, before 0036) or its id
-- in enrichment_documents (snapshot_document, from 0036 on: populate_documents stores them first).
INSERT INTO ipintel.asn_inventory (asn, as_name, as_country, rir, allocated)
SELECT 64500 + g, 'BENCH-AS-' || g, (ARRAY['US','DE','CN','RU','BR','NL'])[1 + g % 6], 'ripencc', date '2005-01-01' + g
FROM generate_series(1, {asns}) AS g;

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, enrichment, current_asn)
SELECT '11.0.0.0'::inet + g * 7, x.seen, x.seen + interval '2 days',
       jsonb_build_object('maxmind', jsonb_build_object(
           'found', true, 'country', x.country, 'registered_country', x.country, 'continent', 'EU',
           'city', 'City ' || g % 997, 'latitude', 50.1, 'longitude', 8.6, 'accuracy_radius', 100,
           'asn', x.asn, 'as_org', 'BENCH-AS-' || (x.asn - 64500), 'is_anonymous_proxy', false,
           'fetched_at', x.seen + interval '1 day', 'build_epoch', 1760000000,
           'location_db', jsonb_build_object('type', 'GeoLite2-City', 'build_epoch', 1760000000),
           'asn_db', jsonb_build_object('type', 'GeoLite2-ASN', 'build_epoch', 1760000000)))
       || CASE WHEN g % 4 = 0 THEN jsonb_build_object('cymru', jsonb_build_object(
           'found', true, 'asn', x.asn, 'prefix', '11.0.0.0/8', 'registered_country', x.country,
           'registry', 'ripencc', 'allocated', '2005-01-01', 'as_name', 'BENCH-AS-' || (x.asn - 64500),
           'fetched_at', x.seen + interval '1 day')) ELSE '{{}}'::jsonb END,
       x.asn
FROM generate_series(1, {ips}) AS g
CROSS JOIN LATERAL (SELECT timestamptz '2026-06-01' + g * interval '1 minute' AS seen,
                           (ARRAY['US','DE','CN','RU','BR','NL'])[1 + g % 6] AS country,
                           64500 + 1 + g % {asns} AS asn) AS x;

INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, protocol, source_ip,
                                       src_port, dst_ip, dst_port, duration_seconds, client_version, hassh,
                                       login_attempts, login_successes, command_count, event_count,
                                       snapshot_asn, snapshot_country, snapshot_ip_type, {document_column}, snapshot_at)
SELECT md5(g::text), 'sensor-' || g % 3, t, t + interval '20 seconds',
       CASE WHEN g % 5 = 0 THEN 'telnet' ELSE 'ssh' END, '11.0.0.0'::inet + (1 + g % {ips}) * 7,
       1024 + g % 60000, '10.0.0.1', 22, 20.5, 'SSH-2.0-Go', md5((g % 50)::text), 3, g % 2, g % 4, 8,
       CASE WHEN g % 2 = 0 THEN 64500 + 1 + (1 + g % {ips}) % {asns} END,
       CASE WHEN g % 2 = 0 THEN (ARRAY['US','DE','CN','RU','BR','NL'])[1 + (1 + g % {ips}) % 6] END,
       CASE WHEN g % 2 = 0 THEN 'routed' END,
       CASE WHEN g % 2 = 0 THEN {document_open}jsonb_build_object('maxmind', jsonb_build_object(
           'found', true, 'country', (ARRAY['US','DE','CN','RU','BR','NL'])[1 + (1 + g % {ips}) % 6])){document_close} END,
       CASE WHEN g % 2 = 0 THEN t + interval '1 hour' END
FROM generate_series(1, {sessions}) AS g
CROSS JOIN LATERAL (SELECT timestamptz '2026-06-01' + g * interval '5 seconds' AS t) AS x;

UPDATE ipintel.ip_inventory i SET session_count = s.n
FROM (SELECT source_ip, count(*) AS n FROM ipintel.session_summaries GROUP BY source_ip) s
WHERE s.source_ip = i.ip;

INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
SELECT ip, current_asn, tstzrange(first_seen, NULL), 'maxmind'
FROM ipintel.ip_inventory;

-- populate_documents --
-- From 0036 on a snapshot's document is stored once in enrichment_documents and sessions refer to
-- it (snapshot_document): populate_tiers then writes the id of the same document it copied before.
INSERT INTO ipintel.enrichment_documents (document)
SELECT jsonb_build_object('maxmind', jsonb_build_object('found', true, 'country', c))
FROM unnest(ARRAY['US','DE','CN','RU','BR','NL']) AS c;

-- populate_state --
-- From 0017 on, what each source answered and when lives in enrichment_state and the documents
-- hold the facts only (as 0017 left them).
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at)
SELECT i.ip, d.source, (d.answer ->> 'fetched_at')::timestamptz, (d.answer ->> 'build_epoch')::bigint,
       (d.answer ->> 'fetched_at')::timestamptz
FROM ipintel.ip_inventory i
CROSS JOIN LATERAL jsonb_each(i.enrichment) AS d(source, answer);

UPDATE ipintel.ip_inventory i
SET enrichment = (SELECT jsonb_object_agg(d.source, ((d.answer - 'fetched_at' - 'build_epoch')
                                                      #- '{{location_db,build_epoch}}') #- '{{asn_db,build_epoch}}')
                  FROM jsonb_each(i.enrichment) AS d(source, answer));

-- vacuum_analyze --
-- Statistics and a visibility map for the generated rows, as autovacuum would have left them.
VACUUM (ANALYZE);

-- row_counts --
-- Rows of every table of the ipintel schema (the data a revision runs on).
SELECT c.relname AS "table", c.reltuples::bigint AS row_estimate,
       pg_total_relation_size(c.oid) AS total_bytes
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'ipintel' AND c.relkind IN ('r', 'p') AND c.reltuples > 0
ORDER BY c.reltuples DESC;

-- held_locks --
-- The relation locks the migrating session (application_name %(app)s) holds or waits for on the
-- tables and views of ipintel's schemas that existed before its transaction began.
SELECT n.nspname || '.' || c.relname AS relation, c.relkind::text AS kind, l.mode, l.granted
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
JOIN pg_catalog.pg_class c ON c.oid = l.relation
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE a.application_name = %(app)s::text AND l.locktype = 'relation'
  AND n.nspname IN ('ipintel', 'ipintel_staging') AND c.relkind IN ('r', 'p', 'v', 'm');

-- own_locks --
-- The relation locks this session holds, run inside a revision's transaction after its SQL: a
-- lock is kept to the commit, so this is every table and view the revision locked, and how.
SELECT n.nspname || '.' || c.relname AS relation, c.relkind::text AS kind, l.mode
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_class c ON c.oid = l.relation
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation' AND l.granted
  AND n.nspname IN ('ipintel', 'ipintel_staging') AND c.relkind IN ('r', 'p', 'v', 'm');

-- existing_relations --
-- The tables and views of ipintel's schemas before a revision runs (those it creates are left out
-- of its locks: nothing else can see them before its commit).
SELECT n.nspname || '.' || c.relname AS relation
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('ipintel', 'ipintel_staging') AND c.relkind IN ('r', 'p', 'v', 'm');
