-- From bench/partitioning.sql
-- The statements of bench/partitioning.py, by name (the format of loader/ipintel/sql/queries.sql).

-- sessions_checksum --
-- Every session, every column: how many, and the sum of a 64-bit hash of each row's text (a row's
-- text is its columns in order; the sum does not depend on the order rows are read in).
SELECT count(*) AS sessions, sum(hashtextextended(s::text, 0)::numeric)::text AS checksum
FROM ipintel.session_summaries s;

-- attribution_answers --
-- What analysts read, digested: the attribution of every session, the top ASNs and countries of a
-- month, the sessions per day of a week.
SELECT (SELECT sum(hashtextextended(a::text, 0)::numeric)::text FROM ipintel.session_attribution a) AS session_attribution,
       (SELECT md5(string_agg(x::text, '|')) FROM ipintel.activity_by_asn('2026-07-01', '2026-08-01') x) AS activity_by_asn,
       (SELECT md5(string_agg(x::text, '|')) FROM ipintel.activity_by_country('2026-07-01', '2026-08-01') x) AS activity_by_country,
       (SELECT md5(string_agg(x::text, '|')) FROM ipintel.activity_by_day('2026-07-01', '2026-07-08') x) AS activity_by_day;

-- partitions --
-- session_summaries' partitions and their rows (estimates, after ANALYZE), oldest first.
SELECT c.relname AS partition, pg_get_expr(c.relpartbound, c.oid) AS bounds, c.reltuples::bigint AS rows
FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'ipintel.session_summaries'::regclass
ORDER BY c.relname;

-- next_month_partition --
-- The partition of next month (UTC), if it exists.
SELECT c.relname AS partition
FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'ipintel.session_summaries'::regclass
  AND c.relname = 'session_summaries_' || to_char((now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM');

-- migrating_locks --
-- The relation locks the migrating session (application_name %(app)s) holds, on ipintel's tables.
SELECT n.nspname || '.' || c.relname AS relation, l.mode
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
JOIN pg_catalog.pg_class c ON c.oid = l.relation
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE a.application_name = %(app)s::text AND l.locktype = 'relation' AND l.granted
  AND n.nspname = 'ipintel' AND c.relkind IN ('r', 'p');

-- copy_progress --
-- How far the batched copy is (None before the first part and after the swap).
SELECT c.batches, c.rows_copied FROM ipintel.session_summaries_copy c;

-- canary_write --
-- A writer of sessions, as ingest is: one session's row updated (its own short transaction), to
-- the values it has, so the checksums compare what the migration did.
UPDATE ipintel.session_summaries SET updated_at = updated_at WHERE session_id = %(session_id)s::text;

-- canary_read --
-- A reader of sessions, as an analyst is: one session by its id.
SELECT s.session_id FROM ipintel.session_summaries s WHERE s.session_id = %(session_id)s::text;

-- canary_sessions --
-- The sessions the canaries touch, spread over the table.
SELECT s.session_id FROM ipintel.session_summaries s WHERE s.session_id LIKE '00%%' ORDER BY s.session_id LIMIT 200;

-- existing_relations --
-- ipintel's tables before the revision runs.
SELECT n.nspname || '.' || c.relname AS relation
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'ipintel' AND c.relkind IN ('r', 'p');
