-- From bench/sizing.sql
-- The statements of bench/sizing.py, by name (the format of loader/ipintel/sql/queries.sql, read
-- with ipintel.db.parse_queries). {sessions} is filled in as a literal (psycopg.sql template).

-- add_sessions --
-- {sessions} sessions spread over the IPs of the inventory (a few IPs many, most a handful, as
-- honeypot traffic is), ingested now: every snapshot window is open. Session counts follow.
-- The months' partitions first, as ingest makes them.
SELECT ipintel.ensure_session_partitions(ARRAY[now() - interval '30 days', now()]);
WITH ips AS MATERIALIZED (
    SELECT row_number() OVER (ORDER BY ip) AS n, ip FROM ipintel.ip_inventory),
total AS (SELECT count(*) AS n FROM ips)
INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, protocol, source_ip,
                                       src_port, dst_ip, dst_port, duration_seconds, client_version, hassh,
                                       login_attempts, login_successes, command_count, download_count, event_count)
SELECT md5('sizing' || g), 'sensor-' || g % 3, now() - (g % 43200) * interval '1 minute',
       now() - (g % 43200) * interval '1 minute' + interval '20 seconds',
       CASE WHEN g % 5 = 0 THEN 'telnet' ELSE 'ssh' END, ips.ip,
       1024 + g % 60000, '10.0.0.1', 22, 20.5, 'SSH-2.0-Go', md5((g % 50)::text), 3, g % 2, g % 4, g % 7 / 6, 9
FROM generate_series(1, {sessions}) AS g
CROSS JOIN total
-- every IP has at least one session; the others go mostly to the first IPs
JOIN ips ON ips.n = CASE WHEN g <= total.n THEN g
                         ELSE 1 + floor(power(((g * 2654435761::bigint) % 1000003) / 1000003.0, 3) * total.n)::bigint END;

UPDATE ipintel.ip_inventory i SET session_count = s.n
FROM (SELECT source_ip, count(*) AS n FROM ipintel.session_summaries GROUP BY source_ip) s
WHERE s.source_ip = i.ip;

-- table_sizes --
-- Rows and bytes (table, indexes and TOAST) of every table of the ipintel schemas.
SELECT n.nspname || '.' || c.relname AS "table", c.reltuples::bigint AS rows,
       pg_total_relation_size(c.oid) AS total_bytes, pg_relation_size(c.oid) AS heap_bytes,
       pg_indexes_size(c.oid) AS index_bytes
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('ipintel', 'ipintel_staging') AND c.relkind IN ('r', 'p')
ORDER BY pg_total_relation_size(c.oid) DESC;

-- vacuum_analyze --
-- Statistics and visibility as autovacuum would have left them, before sizes are read.
VACUUM (ANALYZE);

-- update_counters --
-- Updates and HOT updates of a table since the statistics were last reset.
SELECT n_tup_upd AS updates, n_tup_hot_upd AS hot_updates
FROM pg_catalog.pg_stat_user_tables WHERE schemaname = 'ipintel' AND relname = %(table)s::name;

-- counts --
-- IPs, sessions and enrichment_state rows.
SELECT (SELECT count(*) FROM ipintel.ip_inventory) AS ips,
       (SELECT count(*) FROM ipintel.session_summaries) AS sessions,
       (SELECT count(*) FROM ipintel.enrichment_state) AS state_rows;

-- routable_ips --
-- The IPs a remote source is asked about (bogons never are): the fakes answer each of them.
SELECT host(ip) FROM ipintel.ip_inventory WHERE NOT is_bogon;
