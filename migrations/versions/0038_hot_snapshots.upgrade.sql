-- From migrations/versions/0038_hot_snapshots.upgrade.sql (sql/030_tiers.sql, sql/075_snapshots.sql,
-- sql/095_analyst_views.sql)
-- Snapshots written in place (HOT): take_snapshots' updates of session_summaries stay on their
-- page and touch no index when no index covers a column they write and the page has room.
--   - The three indexes on snapshot columns go: session_summaries_snapshot_asn_idx,
--     session_summaries_snapshot_country_idx (both from 0001) and session_summaries_window_idx
--     (0025: first_event_at with the snapshot ASN and country). Window questions read the
--     rollups (attribution_daily, attribution_asn_daily; top_asns since 0037), time windows of
--     sessions the BRIN index; asn_sessions, the one reader of snapshot_asn_idx, now finds an
--     ASN's days in attribution_asn_daily.
--   - Monthly partitions are filled to 40% (fillfactor): existing ones from their next new page
--     on (no rewrite), new ones from ensure_session_partitions.
--   - The guard trigger session_summaries_snapshot_is_immutable fires only where a snapshot field
--     is known (WHEN): a first fill calls no function.
--   - take_snapshots writes the routing day as YYYY-MM-DD whatever the session's DateStyle.
-- Locks: dropping an index of a partitioned table takes ACCESS EXCLUSIVE on session_summaries
-- and its partitions for a moment (no rewrite, no scan); ALTER ... SET (fillfactor) takes
-- SHARE UPDATE EXCLUSIVE on each partition. Nothing is copied: the revision takes well under a
-- second on a database of any size, once its locks are granted (lock_timeout 5 s, then it fails
-- and can be run again).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- An index of a partitioned table cannot be dropped CONCURRENTLY; dropping one reads nothing.
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX ipintel.session_summaries_snapshot_asn_idx;
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX ipintel.session_summaries_snapshot_country_idx;
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX ipintel.session_summaries_window_idx;

DO $$
DECLARE
    v_partition regclass;
BEGIN
    FOR v_partition IN
        SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'ipintel.session_summaries'::regclass AND c.relname ~ '^session_summaries_[0-9]{4}_[0-9]{2}$'
    LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 40)', v_partition);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION ipintel.ensure_session_partitions(p_times timestamptz[])
    RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = ''
    -- Months are UTC months, whatever the caller's time zone.
    SET timezone = 'UTC'
    -- Creating a partition takes ACCESS EXCLUSIVE on session_summaries and its default partition,
    -- and SHARE ROW EXCLUSIVE on ip_inventory (the foreign key), until the caller commits. It never
    -- queues long behind a reader or a merge: after a second it gives up on that month (its sessions
    -- wait in the default partition) and a later call makes it.
    SET lock_timeout = '1s'
AS $$
DECLARE
    v_month timestamptz;
    v_name text;
    v_created integer := 0;
    v_moved ipintel.session_summaries[];
    v_grant record;
BEGIN
    FOR v_month IN
        SELECT DISTINCT date_trunc('month', t) FROM unnest(p_times) AS t WHERE t IS NOT NULL ORDER BY 1
    LOOP
        v_name := 'session_summaries_' || to_char(v_month, 'YYYY_MM');
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                              JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                              WHERE i.inhparent = 'ipintel.session_summaries'::regclass AND c.relname = v_name);
        BEGIN
            -- The month's sessions that wait in the default partition move into the new one (the
            -- default partition may not hold a row of a range that has a partition). Normally none.
            WITH moved AS (
                DELETE FROM ipintel.session_summaries_default d
                WHERE d.first_event_at >= v_month AND d.first_event_at < v_month + interval '1 month'
                RETURNING d.*)
            SELECT array_agg(ROW(m.*)::ipintel.session_summaries) INTO v_moved FROM moved m;
            -- fillfactor 40: room on each page for the versions take_snapshots writes (revision 0038).
            EXECUTE format('CREATE TABLE ipintel.%I PARTITION OF ipintel.session_summaries FOR VALUES FROM (%L) TO (%L) '
                           'WITH (fillfactor = 40)', v_name, v_month, v_month + interval '1 month');
            EXECUTE format('COMMENT ON TABLE ipintel.%I IS %L', v_name,
                           format('Sessions that started in %s (UTC): a partition of session_summaries, made by ensure_session_partitions.',
                                  to_char(v_month, 'YYYY-MM')));
            -- Read as the table is: whoever may read session_summaries may read its partitions.
            FOR v_grant IN
                SELECT a.privilege_type, r.rolname
                FROM pg_catalog.pg_class c
                CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
                JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
                WHERE c.oid = 'ipintel.session_summaries'::regclass AND a.grantee <> c.relowner
            LOOP
                EXECUTE format('GRANT %s ON ipintel.%I TO %I', v_grant.privilege_type, v_name, v_grant.rolname);
            END LOOP;
            INSERT INTO ipintel.session_summaries SELECT * FROM unnest(v_moved);
            v_created := v_created + 1;
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            RAISE WARNING 'partition % of ipintel.session_summaries not made now (%): its sessions wait in session_summaries_default until a later call',
                v_name, SQLERRM;
        END;
    END LOOP;
    RETURN v_created;
END;
$$;
COMMENT ON FUNCTION ipintel.ensure_session_partitions(timestamptz[]) IS
    'Makes the monthly partition of session_summaries (session_summaries_YYYY_MM, UTC months) for the month of each of p_times that has none, moving that month''s sessions out of session_summaries_default; comments it and grants it as session_summaries is; fillfactor 40 (room for take_snapshots'' HOT updates). A month whose locks it cannot take within a second is left for a later call (its sessions wait in the default partition). Returns the partitions made. Called by merge_cowrie_events for every chunk.';

COMMENT ON TABLE ipintel.session_summaries IS
    'Tier 3: one row per Cowrie session, with point-in-time snapshot_* columns: what ipintel knew about the source IP for the session''s time. A snapshot field is known once its *_source is set and is then never rewritten; an unknown field is filled when its source first answers, within that source''s snapshot_window (enrichment_policy) from the session''s created_at. Partitioned by month of first_event_at (UTC): session_summaries_YYYY_MM, made by ensure_session_partitions, and session_summaries_default for a session whose month has no partition yet. The partitions are filled to 40% (fillfactor) and no index covers a snapshot column, so that take_snapshots'' fills stay on their page (HOT); the fill that completes a snapshot is not HOT, as it leaves session_summaries_incomplete_snapshot_idx (its predicate is on snapshot_complete_at).';

DROP TRIGGER session_summaries_snapshot_is_immutable ON ipintel.session_summaries;
CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_document, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at, snapshot_is_known_attacker, snapshot_threatfeeds,
                     snapshot_is_known_attacker_source, snapshot_ip_provider
    ON ipintel.session_summaries
    FOR EACH ROW
    -- Only where a field is known (revision 0038): a first fill, most of take_snapshots' rows,
    -- calls no function. protect_snapshot refuses nothing when all of these are NULL.
    WHEN (num_nonnulls(OLD.snapshot_at, OLD.snapshot_complete_at, OLD.snapshot_asn_source, OLD.snapshot_country_source,
                       OLD.snapshot_ip_type_source, OLD.snapshot_is_scanner_source,
                       OLD.snapshot_is_known_attacker_source) > 0)
    EXECUTE FUNCTION ipintel.protect_snapshot();

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
    -- Routing history and the dated geolocation builds are asked only about sessions whose ASN
    -- or country is still unknown, once per IP and day.
    SELECT array_agg(x.ip), array_agg(x.day) INTO v_ips, v_days
    FROM (SELECT DISTINCT s.source_ip AS ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day
          FROM ipintel.session_summaries s
          WHERE s.snapshot_complete_at IS NULL
            AND (s.snapshot_asn_source IS NULL OR s.snapshot_country_source IS NULL)) x;

    WITH todo AS (
        SELECT s.session_id, s.source_ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day,
               s.snapshot_ip_type_source IS NULL AS ip_type_unknown, r.*,
               -- the ASN: routing history at the session's day, else ip_asn_history at its time,
               -- else a dated geolocation build (g), else the current ASN; its source says which
               -- (routing:<dataset>:<snapshot day>, <source>:history, <source>:build:<day>,
               -- <source>:current)
               CASE WHEN rt.asn IS NOT NULL THEN rt.asn WHEN h.ip IS NOT NULL THEN h.asn
                    WHEN g.asn_from_build THEN gb.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || to_char(rt.taken_on, 'YYYY-MM-DD')
                    WHEN h.ip IS NOT NULL THEN h.source || ':history'
                    WHEN g.asn_from_build THEN gb.asn_build
                    ELSE coalesce(i.current_asn_source || ':current', 'none') END AS asn_source,
               -- the country: a dated geolocation build (g), else the current one
               CASE WHEN g.country_from_build THEN gb.country ELSE i.geo_country END AS country,
               CASE WHEN i.is_bogon THEN 'bogon' WHEN g.country_from_build THEN gb.country_build
                    ELSE coalesce(i.geo_country_source, 'none') END AS country_source,
               i.is_scanner,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_scanner_source, 'none') END AS is_scanner_source,
               -- the registered source of that ASN (for the classes resting on it), or its routing
               -- snapshot or geolocation build
               CASE WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || to_char(rt.taken_on, 'YYYY-MM-DD')
                    WHEN h.ip IS NOT NULL THEN h.source WHEN g.asn_from_build THEN gb.asn_build
                    ELSE i.current_asn_source END AS class_asn_source,
               -- known attacker and threat feeds: one field, filled together from one source (0028)
               i.is_known_attacker, i.threatfeeds,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_known_attacker_source, 'none') END
                   AS known_attacker_source
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
        LEFT JOIN ipintel.geo_build_facts(v_ips, v_days) gb
               ON gb.ip = s.source_ip AND gb.day = (s.first_event_at AT TIME ZONE 'UTC')::date
        CROSS JOIN LATERAL (
            -- A dated build gives a field only for a session before ipintel's own observation of
            -- the IP's current value (observed_since: the enrichment_state row is read only where
            -- a build has a value), or when no source gives one.
            SELECT CASE WHEN i.is_bogon OR gb.country IS NULL THEN false
                        WHEN i.geo_country_source IS NULL THEN true
                        ELSE gb.day < coalesce(ipintel.observed_since(i.ip, i.geo_country_source), 'infinity') END
                       AS country_from_build,
                   CASE WHEN i.is_bogon OR gb.asn_build IS NULL THEN false
                        WHEN i.current_asn_source IS NULL THEN true
                        ELSE gb.day < coalesce(ipintel.observed_since(i.ip, i.current_asn_source), 'infinity') END
                       AS asn_from_build) g
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
    ), class_keys AS MATERIALIZED (
        -- Each (IP, day, ASN, source) of the sessions whose ip_type is filled now, once: the four
        -- arrays built by one aggregate, so they stay aligned without sorting.
        SELECT array_agg(k.source_ip) AS ips, array_agg(k.day) AS days, array_agg(k.asn) AS asns,
               array_agg(k.class_asn_source) AS asn_sources
        FROM (SELECT DISTINCT t.source_ip, t.day, t.asn, t.class_asn_source
              FROM todo t WHERE t.ip_type_ready AND t.ip_type_unknown) k
    ), classes AS MATERIALIZED (
        -- ip_type and ip_provider as of the session's day (issue 12): the range lists of that day
        -- and the snapshot's ASN, weighed with what the sources said (ip_classes). One call for
        -- them all.
        SELECT c.*
        FROM ipintel.ip_classes((SELECT k.ips FROM class_keys k), (SELECT k.days FROM class_keys k),
                                (SELECT k.asns FROM class_keys k), (SELECT k.asn_sources FROM class_keys k)) c
    ), document_ids AS MATERIALIZED (
        -- Each IP's document as it is now, stored once (snapshot_documents: joined by hash).
        SELECT x.ip, x.document_id
        FROM ipintel.snapshot_documents(ARRAY(SELECT DISTINCT t.source_ip FROM todo t)) x
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
            snapshot_ip_type = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN c.ip_type
                                    ELSE s.snapshot_ip_type END,
            -- list:<list>:<day> for a class from a range or ASN list; else the source that said it
            -- (for routed and residential: the ASN's), bogon, none
            snapshot_ip_type_source = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready
                                           THEN CASE WHEN c.ip_class_basis ? 'list'
                                                     THEN 'list:' || (c.ip_class_basis ->> 'list') || ':'
                                                          || (c.ip_class_basis ->> 'snapshot')
                                                     WHEN c.ip_type = 'bogon' THEN 'bogon'
                                                     ELSE coalesce(c.ip_type_source, 'none') END
                                           ELSE s.snapshot_ip_type_source END,
            snapshot_is_known_attacker = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                              THEN t.is_known_attacker ELSE s.snapshot_is_known_attacker END,
            snapshot_threatfeeds = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                        THEN t.threatfeeds ELSE s.snapshot_threatfeeds END,
            snapshot_is_known_attacker_source = CASE WHEN s.snapshot_is_known_attacker_source IS NULL
                                                          AND t.known_attacker_ready
                                                     THEN t.known_attacker_source
                                                     ELSE s.snapshot_is_known_attacker_source END,
            snapshot_ip_provider = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN c.ip_provider
                                        ELSE s.snapshot_ip_provider END,
            snapshot_document = x.document_id,
            snapshot_at = coalesce(s.snapshot_at, now()),
            snapshot_complete_at = CASE WHEN t.all_ready THEN now() END,
            updated_at = now()
        FROM todo t
        JOIN document_ids x ON x.ip = t.source_ip
        LEFT JOIN classes c ON c.ip = t.source_ip AND c.day = t.day AND coalesce(c.asn, -1) = coalesce(t.asn, -1)
        WHERE s.session_id = t.session_id
        RETURNING 1)
    SELECT count(*) INTO v_changed FROM filled;
    RETURN v_changed;
END;
$$;
-- CREATE OR REPLACE resets a function's attributes: the loader's entry points stay SECURITY DEFINER.
ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;

CREATE OR REPLACE FUNCTION ipintel.asn_sessions(p_asn bigint)
    RETURNS SETOF ipintel.session_attribution
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.*
    FROM ipintel.session_attribution a
    WHERE a.session_id IN (
        SELECT s.session_id
        FROM (SELECT d.day FROM ipintel.attribution_asn_daily d WHERE coalesce(d.asn, -1) = p_asn
              UNION
              SELECT q.day FROM ipintel.attribution_dirty_days q) days
        JOIN ipintel.session_summaries s
          ON s.first_event_at >= days.day::timestamp AT TIME ZONE 'UTC'
         AND s.first_event_at < (days.day + 1)::timestamp AT TIME ZONE 'UTC'
        WHERE s.snapshot_asn = p_asn AND s.snapshot_asn_source IS NOT NULL
        UNION ALL
        SELECT s.session_id FROM ipintel.ip_inventory i
        JOIN ipintel.session_summaries s ON s.source_ip = i.ip
        WHERE i.current_asn = p_asn AND s.snapshot_asn_source IS NULL);
END;
COMMENT ON FUNCTION ipintel.asn_sessions(bigint) IS
    'The sessions attributed to ASN p_asn (session_attribution rows): by the snapshot once it knows the ASN (read from the days attribution_asn_daily and the roll-up queue, attribution_dirty_days, name for it), else by the IP''s current ASN.';
