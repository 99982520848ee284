-- From migrations/versions/0050_asn_counts_added.downgrade.sql
-- squawk-ignore-file ban-drop-function
-- Back to recounting: 0047's merge_cowrie_events and 0041's apply_answers call
-- refresh_asn_counts for every ASN they touch; add_to_asn_counts is dropped (nothing else calls
-- it, and no client may: EXECUTE is the owner's). Locks: none on any table (two functions replaced, one dropped).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.merge_cowrie_events(p_batch_id bigint)
    RETURNS TABLE (events bigint, sessions_new bigint, sessions_updated bigint, ips_new bigint, event_counts jsonb)
    LANGUAGE plpgsql
    SET search_path = ''
    -- A chunk of 50,000 events sorts in ~8 MB: in memory, not in temporary files.
    SET work_mem = '64MB'
AS $$
DECLARE
    v_events bigint;
    v_event_counts jsonb;
    v_sessions_new bigint;
    v_sessions_updated bigint;
    v_ips_new bigint;
    v_asns bigint[];
    v_chunk_ips inet[];
    v_enriched_ips inet[];
BEGIN
    -- Before any row lock, so it adds no lock order: only merges of Cowrie events take it.
    PERFORM pg_advisory_xact_lock(hashtextextended('ipintel.session_summaries', 0));

    SELECT coalesce(sum(e.n), 0), coalesce(jsonb_object_agg(e.eventid, e.n), '{}'::jsonb)
    INTO v_events, v_event_counts
    FROM (SELECT c.eventid, count(*) AS n FROM ipintel_staging.cowrie_events c
          WHERE c.batch_id = p_batch_id GROUP BY c.eventid) e;

    -- Every "first" below is the first of the session's events by (event_ts, line_no): the events
    -- come sorted so from the subquery, and each aggregate takes them in that order (a GROUP BY
    -- on a prefix of the subquery's sort keeps it; an INSERT plan is never parallel). One sort for
    -- the batch instead of one per ordered aggregate and session: the aggregation in half the
    -- time (issue 15). normalize_ip is applied once per session, to the address picked.
    INSERT INTO ipintel_staging.cowrie_sessions
    SELECT p_batch_id, c.session_id,
           -- The peer is the address of the connect event. Without one in this batch (a session
           -- continued from an earlier file), the earliest event's, but never a direct-tcpip
           -- event's: Cowrie logs the client-claimed forwarding origin (e.g. 127.0.0.1) there.
           ipintel.normalize_ip(coalesce((array_agg(c.src_ip) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
                                         (array_agg(c.src_ip) FILTER (WHERE c.eventid NOT LIKE 'cowrie.direct-tcpip.%'))[1],
                                         (array_agg(c.src_ip))[1])),
           (array_agg(c.sensor) FILTER (WHERE c.sensor IS NOT NULL))[1],
           min(c.event_ts), max(c.event_ts),
           (array_agg(c.protocol) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           (array_agg(c.src_port) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           ipintel.normalize_ip((array_agg(c.dst_ip) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1]),
           (array_agg(c.dst_port) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           max(c.duration) FILTER (WHERE c.eventid = 'cowrie.session.closed'),
           (array_agg(c.client_version) FILTER (WHERE c.eventid = 'cowrie.client.version'))[1],
           (array_agg(c.hassh) FILTER (WHERE c.eventid = 'cowrie.client.kex'))[1],
           count(*) FILTER (WHERE c.eventid IN ('cowrie.login.failed', 'cowrie.login.success')),
           count(*) FILTER (WHERE c.eventid = 'cowrie.login.success'),
           count(*) FILTER (WHERE c.eventid = 'cowrie.command.input'),
           count(*) FILTER (WHERE c.eventid = 'cowrie.session.file_download'),
           count(*)
    FROM (SELECT e.* FROM ipintel_staging.cowrie_events e
          WHERE e.batch_id = p_batch_id
          ORDER BY e.session_id, e.event_ts, e.line_no) c
    GROUP BY c.session_id;

    -- The partitions of this chunk's months, and of this month and the next (before anything here
    -- reads session_summaries: making a partition locks it, and no lock is taken weaker first).
    PERFORM ipintel.ensure_session_partitions(
        ARRAY(SELECT DISTINCT date_trunc('month', m.first_event_at, 'UTC') FROM ipintel_staging.cowrie_sessions m
              WHERE m.batch_id = p_batch_id)
        || ARRAY[now(), now() + interval '1 month']);

    -- A session already merged keeps the peer it was first seen with.
    UPDATE ipintel_staging.cowrie_sessions m SET source_ip = s.source_ip
    FROM ipintel.session_summaries s
    WHERE m.batch_id = p_batch_id AND s.session_id = m.session_id AND s.source_ip IS DISTINCT FROM m.source_ip;

    -- New source IPs first: session_summaries.source_ip references ip_inventory.
    WITH new_ips AS (
        INSERT INTO ipintel.ip_inventory AS i (ip, first_seen, last_seen)
        SELECT m.source_ip, min(m.first_event_at), max(m.last_event_at)
        FROM ipintel_staging.cowrie_sessions m
        WHERE m.batch_id = p_batch_id
        GROUP BY m.source_ip
        ORDER BY m.source_ip  -- a stable lock order: concurrent merges cannot deadlock
        ON CONFLICT (ip) DO NOTHING
        RETURNING 1)
    SELECT count(*) INTO v_ips_new FROM new_ips;

    -- The one lock order of every writer of the tiers (see lock_for_merge): this chunk's IPs in
    -- ip order, then their ASNs, before any session row; so a concurrent enrich cannot deadlock it.
    v_chunk_ips := ARRAY(SELECT DISTINCT m.source_ip FROM ipintel_staging.cowrie_sessions m
                         WHERE m.batch_id = p_batch_id);
    PERFORM ipintel.lock_for_merge(v_chunk_ips, '{}');

    -- The foreign key of the sessions inserted below is checked when this merge ends (SET
    -- CONSTRAINTS ... IMMEDIATE after take_snapshots), not row by row now: take_snapshots updates
    -- most of them again, and PostgreSQL checks an updated row's key again when the row was
    -- inserted by the same transaction, equal or not. Deferred, a session inserted and then
    -- updated is checked once (its inserted version is dead by then and skipped), not twice
    -- (issue 15: ~130 ms of a 1 s chunk of 50,000 events). Every IP was inserted above and is
    -- locked by lock_for_merge, so the checks cannot fail later than they would have now.
    SET CONSTRAINTS ipintel.session_summaries_source_ip_fkey DEFERRED;

    -- Both parts read the table as it was before this statement: a session updated here is not
    -- inserted again.
    WITH updated AS (
        UPDATE ipintel.session_summaries s SET
            sensor           = coalesce(s.sensor, m.sensor),
            first_event_at   = least(s.first_event_at, m.first_event_at),
            last_event_at    = greatest(s.last_event_at, m.last_event_at),
            protocol         = coalesce(s.protocol, m.protocol),
            src_port         = coalesce(s.src_port, m.src_port),
            dst_ip           = coalesce(s.dst_ip, m.dst_ip),
            dst_port         = coalesce(s.dst_port, m.dst_port),
            duration_seconds = coalesce(m.duration_seconds, s.duration_seconds),
            client_version   = coalesce(s.client_version, m.client_version),
            hassh            = coalesce(s.hassh, m.hassh),
            login_attempts   = s.login_attempts + m.login_attempts,
            login_successes  = s.login_successes + m.login_successes,
            command_count    = s.command_count + m.command_count,
            download_count   = s.download_count + m.download_count,
            event_count      = s.event_count + m.event_count,
            updated_at       = now()
        FROM ipintel_staging.cowrie_sessions m
        WHERE m.batch_id = p_batch_id AND s.session_id = m.session_id
        RETURNING s.source_ip)
    , inserted AS (
        INSERT INTO ipintel.session_summaries (
            session_id, source_ip, sensor, first_event_at, last_event_at, protocol, src_port, dst_ip,
            dst_port, duration_seconds, client_version, hassh, login_attempts, login_successes,
            command_count, download_count, event_count)
        SELECT m.session_id, m.source_ip, m.sensor, m.first_event_at, m.last_event_at, m.protocol,
               m.src_port, m.dst_ip, m.dst_port, m.duration_seconds, m.client_version, m.hassh,
               m.login_attempts, m.login_successes, m.command_count, m.download_count, m.event_count
        FROM ipintel_staging.cowrie_sessions m
        WHERE m.batch_id = p_batch_id
          AND NOT EXISTS (SELECT 1 FROM ipintel.session_summaries x WHERE x.session_id = m.session_id)
        ORDER BY m.session_id
        RETURNING source_ip)
    , merged AS (
        SELECT u.source_ip, false AS inserted FROM updated u
        UNION ALL
        SELECT i.source_ip, true FROM inserted i)
    , per_ip AS (
        SELECT g.source_ip, count(*) FILTER (WHERE g.inserted) AS new_sessions, count(*) AS touched
        FROM merged g GROUP BY g.source_ip)
    , ip_update AS (
        UPDATE ipintel.ip_inventory i
        SET session_count = i.session_count + p.new_sessions,
            first_seen = least(i.first_seen, t.first_seen),
            last_seen = greatest(i.last_seen, t.last_seen),
            updated_at = now()
        FROM per_ip p
        JOIN (SELECT m.source_ip, min(m.first_event_at) AS first_seen, max(m.last_event_at) AS last_seen
              FROM ipintel_staging.cowrie_sessions m WHERE m.batch_id = p_batch_id
              GROUP BY m.source_ip) t ON t.source_ip = p.source_ip
        WHERE i.ip = p.source_ip
        RETURNING i.current_asn)
    SELECT (SELECT sum(p.new_sessions) FROM per_ip p),
           (SELECT sum(p.touched - p.new_sessions) FROM per_ip p),
           (SELECT array_agg(DISTINCT u.current_asn) FILTER (WHERE u.current_asn IS NOT NULL) FROM ip_update u)
    INTO v_sessions_new, v_sessions_updated, v_asns;

    IF v_asns IS NOT NULL THEN
        PERFORM ipintel.refresh_asn_counts(v_asns);
    END IF;

    -- The snapshots of this chunk's sessions whose IP is already enriched, taken here rather than
    -- by the next enrichment (issue 15): what no awaited source can improve is filled now, by the
    -- same rule as after an enrichment (take_snapshots). IPs no source has answered yet (this
    -- chunk's new IPs among them, and bogons, which are never asked) are left to the next
    -- take_snapshots(): at most a field no enabled source gives could be filled for them now. A
    -- chunk with no answered IP (a first load) does not call it at all.
    v_enriched_ips := ARRAY(
        SELECT c.ip FROM unnest(v_chunk_ips) c(ip)
        WHERE EXISTS (SELECT 1 FROM ipintel.enrichment_state e WHERE e.ip = c.ip));
    IF cardinality(v_enriched_ips) > 0 THEN
        PERFORM ipintel.take_snapshots(v_enriched_ips);
    END IF;
    -- The deferred checks run here, inside the merge: a violation is this merge's error.
    SET CONSTRAINTS ipintel.session_summaries_source_ip_fkey IMMEDIATE;

    DELETE FROM ipintel_staging.cowrie_events c WHERE c.batch_id = p_batch_id;
    DELETE FROM ipintel_staging.cowrie_sessions m WHERE m.batch_id = p_batch_id;

    RETURN QUERY SELECT v_events, coalesce(v_sessions_new, 0), coalesce(v_sessions_updated, 0),
                        v_ips_new, v_event_counts;
END;
$$;

CREATE OR REPLACE FUNCTION ipintel.apply_answers(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
    v_moved_sources text[];
    v_moved_ips inet[];
    v_moved_asns bigint[];
    v_moved_at timestamptz[];
    v_asns bigint[];
BEGIN
    WITH n AS MATERIALIZED (
        -- The IP's new values (v), and whether they change any fact but the class: only then
        -- is the IP classified again (c).
        SELECT v.*,
               ((v.old_enrichment, v.old_asn, v.old_asn_source, v.old_geo_country, v.old_geo_country_source,
                 v.old_is_scanner, v.old_is_scanner_source, v.old_is_riot, v.old_is_known_attacker,
                 v.old_is_known_attacker_source, v.old_threatfeeds)
                IS DISTINCT FROM
                (v.enrichment, v.current_asn, v.current_asn_source, v.geo_country, v.geo_country_source,
                 v.is_scanner, v.is_scanner_source, v.is_riot, v.is_known_attacker, v.is_known_attacker_source,
                 v.threatfeeds)
                OR v.kept_ip_class_basis IS NULL) AS facts_change
        FROM (
            SELECT r.ip, r.fetched_at, cur.current_asn AS old_asn, cur.current_asn_source AS old_asn_source,
                   f.asn AS observed_asn, f.asn_source AS observed_asn_source,
                   CASE WHEN cur.enrichment -> p_source IS DISTINCT FROM r.result
                        THEN cur.enrichment || jsonb_build_object(p_source, r.result) ELSE cur.enrichment END AS enrichment,
                   -- No ASN observation at all ("not in the file") keeps the last one.
                   CASE WHEN f.asn_source IS NOT NULL THEN f.asn ELSE cur.current_asn END AS current_asn,
                   coalesce(f.asn_source, cur.current_asn_source) AS current_asn_source,
                   coalesce(f.country, 'XX') AS geo_country, f.country_source AS geo_country_source,
                   f.is_scanner, f.is_scanner_source, f.is_riot,
                   f.is_known_attacker, f.is_known_attacker_source, f.threatfeeds,
                   cur.enrichment AS old_enrichment, cur.geo_country AS old_geo_country,
                   cur.geo_country_source AS old_geo_country_source, cur.is_scanner AS old_is_scanner,
                   cur.is_scanner_source AS old_is_scanner_source, cur.is_riot AS old_is_riot,
                   cur.is_known_attacker AS old_is_known_attacker,
                   cur.is_known_attacker_source AS old_is_known_attacker_source, cur.threatfeeds AS old_threatfeeds,
                   cur.ip_type AS kept_ip_type, cur.ip_type_source AS kept_ip_type_source,
                   cur.ip_provider AS kept_ip_provider, cur.ip_class_basis AS kept_ip_class_basis
            FROM ipintel_staging.enrichment_results r
            JOIN ipintel.ip_inventory cur ON cur.ip = r.ip
            CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
            WHERE r.batch_id = p_batch_id
              -- An answer that repeats the stored document changes no fact (its facts are the
              -- same, and no other source's answer changed meanwhile): only its fetch time, which
              -- record_enrichment_state has written. So a refresh of unchanged answers resolves
              -- nothing (half of a re-merge's time went here); an IP never classified still is.
              AND (cur.enrichment -> p_source IS DISTINCT FROM r.result OR cur.ip_class_basis IS NULL)
        ) v
    ), c AS MATERIALIZED (
        -- The class as of today, once for the whole batch (ip_classes is never inlined: its
        -- arrays come from scalar subqueries, so no join re-runs it per row), and only for the IPs
        -- whose facts or ASN change here: the class of the others cannot change by this merge (a
        -- re-fetch of unchanged answers classified every IP again: about 9% of a re-merge's time).
        -- A new range list or AS name reaches them through classify_inventory (ranges load/fetch).
        SELECT x.*
        FROM ipintel.ip_classes(ARRAY(SELECT n.ip FROM n WHERE n.facts_change ORDER BY n.ip),
                                ARRAY(SELECT (now() AT TIME ZONE 'UTC')::date FROM n WHERE n.facts_change),
                                ARRAY(SELECT n.current_asn FROM n WHERE n.facts_change ORDER BY n.ip),
                                ARRAY(SELECT n.current_asn_source FROM n WHERE n.facts_change ORDER BY n.ip)) x
    ), written AS (
        UPDATE ipintel.ip_inventory i
        SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
            geo_country = n.geo_country, geo_country_source = n.geo_country_source,
            is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
            ip_type = n.ip_type, ip_type_source = n.ip_type_source, ip_provider = n.ip_provider,
            ip_class_basis = n.ip_class_basis, is_known_attacker = n.is_known_attacker,
            is_known_attacker_source = n.is_known_attacker_source, threatfeeds = n.threatfeeds, updated_at = now()
        FROM (SELECT n.*,
                     -- classified now, or the class it has (its facts do not change)
                     CASE WHEN n.facts_change THEN c.ip_type ELSE n.kept_ip_type END AS ip_type,
                     CASE WHEN n.facts_change THEN c.ip_type_source ELSE n.kept_ip_type_source END AS ip_type_source,
                     CASE WHEN n.facts_change THEN c.ip_provider ELSE n.kept_ip_provider END AS ip_provider,
                     CASE WHEN n.facts_change THEN c.ip_class_basis ELSE n.kept_ip_class_basis END AS ip_class_basis
              FROM n
              LEFT JOIN c ON c.ip = n.ip) n
        WHERE i.ip = n.ip
          AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
               i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source, i.ip_provider, i.ip_class_basis,
               i.is_known_attacker, i.is_known_attacker_source, i.threatfeeds)
              IS DISTINCT FROM
              (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
               n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source, n.ip_provider, n.ip_class_basis,
               n.is_known_attacker, n.is_known_attacker_source, n.threatfeeds)
        RETURNING n.ip, n.fetched_at, n.old_asn, n.old_asn_source, n.observed_asn, n.observed_asn_source,
                  n.current_asn
    ), moved AS (
        -- A new ASN observation (a value, or a better-ranked source) becomes current and goes to
        -- the history as of this answer: when a better-ranked source stops observing, the
        -- fallback becomes current now, not when it was observed.
        SELECT w.* FROM written w
        WHERE w.observed_asn_source IS NOT NULL
          AND (w.old_asn, w.old_asn_source) IS DISTINCT FROM (w.observed_asn, w.observed_asn_source)
    )
    SELECT (SELECT count(*) FROM written),
           (SELECT array_agg(m.observed_asn_source) FROM moved m), (SELECT array_agg(m.ip) FROM moved m),
           (SELECT array_agg(m.observed_asn) FROM moved m), (SELECT array_agg(m.fetched_at) FROM moved m),
           -- the ASNs whose counts change: old and new current_asn where it changed
           ARRAY(SELECT DISTINCT a.asn FROM written w CROSS JOIN LATERAL (VALUES (w.old_asn), (w.current_asn)) AS a(asn)
                 WHERE w.old_asn IS DISTINCT FROM w.current_asn AND a.asn IS NOT NULL)
    INTO v_changed, v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at, v_asns;

    IF v_moved_ips IS NOT NULL THEN
        PERFORM ipintel.record_asn_history(v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at);
    END IF;
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.apply_answers(text, bigint) IS
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot and is_known_attacker (with threatfeeds) with their *_source from enrichment_state by the registry''s ranks (resolved_facts), classifies as of today the IPs whose facts or ASN change (ip_classes, once per batch: ip_type, ip_type_source, ip_provider, ip_class_basis; the others keep their class until classify_inventory), and refreshes the ASN counts. An IP whose staged document equals its stored one (a refresh that learned nothing) is not resolved again: its facts cannot change (a change of the registry''s ranks reaches it with its next changed answer; resolved_facts shows it at once). Writes only rows that change; returns how many.';

DROP FUNCTION ipintel.add_to_asn_counts(bigint[], bigint[], bigint[], timestamptz[], timestamptz[]);
