-- From migrations/versions/0009_snapshot_completion.downgrade.sql: back to 0008.
-- A downgrade removes what 0009 added, by definition.
-- squawk-ignore-file ban-drop-function, ban-drop-view, ban-drop-column, ban-drop-constraint, require-concurrent-index-deletion
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE VIEW ipintel.session_attribution AS
SELECT s.session_id,
       s.sensor,
       s.first_event_at,
       s.last_event_at,
       s.protocol,
       s.source_ip,
       coalesce(s.snapshot_asn, CASE WHEN s.snapshot_at IS NULL THEN i.current_asn END) AS asn,
       a.as_name,
       coalesce(s.snapshot_country, i.geo_country) AS country,
       coalesce(s.snapshot_ip_type, i.ip_type) AS ip_type,
       CASE WHEN s.snapshot_at IS NULL THEN i.is_scanner ELSE s.snapshot_is_scanner END AS is_scanner,
       s.snapshot_at IS NOT NULL AS from_snapshot,
       s.login_attempts,
       s.login_successes,
       s.command_count,
       s.download_count
FROM ipintel.session_summaries s
JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
LEFT JOIN ipintel.asn_inventory a
       ON a.asn = coalesce(s.snapshot_asn, CASE WHEN s.snapshot_at IS NULL THEN i.current_asn END);
COMMENT ON VIEW ipintel.session_attribution IS
    'One row per session with who it came from: the point-in-time snapshot when taken (from_snapshot), else what ip_inventory knows now.';
COMMENT ON COLUMN ipintel.session_attribution.asn IS 'snapshot_asn, or current_asn while the snapshot is not taken.';
COMMENT ON COLUMN ipintel.session_attribution.as_name IS 'Name of that AS (asn_inventory, current name).';
COMMENT ON COLUMN ipintel.session_attribution.country IS 'snapshot_country, or geo_country while the snapshot is not taken.';
COMMENT ON COLUMN ipintel.session_attribution.ip_type IS 'snapshot_ip_type, or ip_type while the snapshot is not taken.';
COMMENT ON COLUMN ipintel.session_attribution.is_scanner IS 'snapshot_is_scanner, or is_scanner while the snapshot is not taken.';
COMMENT ON COLUMN ipintel.session_attribution.from_snapshot IS 'true: the attribution columns are the snapshot taken for this session.';

DROP TRIGGER session_summaries_snapshot_is_immutable ON ipintel.session_summaries;
-- 0008 requires a country and an ip_type in every snapshot taken: partial ones get its "unknown".
UPDATE ipintel.session_summaries
SET snapshot_country = coalesce(snapshot_country, 'XX'), snapshot_ip_type = coalesce(snapshot_ip_type, 'unknown')
WHERE snapshot_at IS NOT NULL AND (snapshot_country IS NULL OR snapshot_ip_type IS NULL);
DROP FUNCTION ipintel.take_snapshots();
DROP VIEW ipintel.snapshot_backlog;
DROP FUNCTION ipintel.source_declines(ipintel.enrichment_policy, ipintel.ip_inventory);

CREATE FUNCTION ipintel.take_snapshots(p_sources text[], p_max_wait interval DEFAULT interval '2 days')
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_taken bigint;
BEGIN
    -- A session's snapshot is taken once its IP is settled: a bogon, or no longer due for any
    -- source that ran; or, after p_max_wait, with whatever is known (a GreyNoise quota must not
    -- hold snapshots back for ever).
    WITH due AS (
        SELECT d.ip FROM unnest(p_sources) AS src(name) CROSS JOIN LATERAL ipintel.ips_due(src.name) AS d
    ), settled AS (
        SELECT i.ip
        FROM ipintel.ip_inventory i
        WHERE i.is_bogon
           OR (i.enrichment <> '{}'::jsonb AND NOT EXISTS (SELECT 1 FROM due WHERE due.ip = i.ip))
    ), snap AS (
        UPDATE ipintel.session_summaries s
        SET snapshot_asn = coalesce(
                (SELECT h.asn FROM ipintel.ip_asn_history h
                 WHERE h.ip = s.source_ip AND h.valid @> s.first_event_at),
                i.current_asn),
            snapshot_country = i.geo_country,
            snapshot_ip_type = i.ip_type,
            snapshot_is_scanner = i.is_scanner,
            snapshot_enrichment = i.enrichment,
            snapshot_at = now(),
            updated_at = now()
        FROM ipintel.ip_inventory i
        WHERE i.ip = s.source_ip
          AND s.snapshot_at IS NULL
          AND (s.source_ip IN (SELECT st.ip FROM settled st)
               OR (s.first_event_at < now() - p_max_wait AND i.enrichment <> '{}'::jsonb))
        RETURNING 1)
    SELECT count(*) INTO v_taken FROM snap;
    RETURN v_taken;
END;
$$;
COMMENT ON FUNCTION ipintel.take_snapshots(text[], interval) IS
    'Fills the snapshot_* columns of sessions still without one whose IP is settled for the given sources (or waited longer than p_max_wait). Never touches a snapshot already taken.';

CREATE OR REPLACE FUNCTION ipintel.protect_snapshot()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF OLD.snapshot_at IS NOT NULL
       AND (NEW.snapshot_asn, NEW.snapshot_country, NEW.snapshot_ip_type, NEW.snapshot_is_scanner,
            NEW.snapshot_enrichment, NEW.snapshot_at)
           IS DISTINCT FROM
           (OLD.snapshot_asn, OLD.snapshot_country, OLD.snapshot_ip_type, OLD.snapshot_is_scanner,
            OLD.snapshot_enrichment, OLD.snapshot_at) THEN
        RAISE EXCEPTION 'snapshot of session % was taken at % and is never rewritten', OLD.session_id, OLD.snapshot_at
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ipintel.protect_snapshot() IS 'Trigger function: refuses to change a session snapshot once taken.';

CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at
    ON ipintel.session_summaries
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

CREATE OR REPLACE FUNCTION ipintel.record_asn_history(p_source text, p_ips inet[], p_asns bigint[], p_observed_at timestamptz[])
    RETURNS bigint[]
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_asns bigint[];
BEGIN
    SELECT array_agg(DISTINCT v.asn) FILTER (WHERE v.asn IS NOT NULL)
    INTO v_asns
    FROM unnest(p_ips, p_asns) AS o(ip, asn)
    JOIN ipintel.ip_inventory i ON i.ip = o.ip
    CROSS JOIN LATERAL (VALUES (i.current_asn), (o.asn)) AS v(asn)
    WHERE i.current_asn IS DISTINCT FROM o.asn;

    -- Separate statements, in this order: the exclusion constraint must see each open range
    -- closed before the range that follows it is inserted.
    UPDATE ipintel.ip_asn_history h
    SET valid = tstzrange(lower(h.valid), o.observed_at, '[)')
    FROM unnest(p_ips, p_asns, p_observed_at) AS o(ip, asn, observed_at)
    WHERE h.ip = o.ip AND upper_inf(h.valid) AND h.asn IS DISTINCT FROM o.asn
      AND o.observed_at > lower(h.valid);

    -- Observed at the very instant the open range began: that range simply had the wrong ASN.
    UPDATE ipintel.ip_asn_history h
    SET asn = o.asn, source = p_source, recorded_at = now()
    FROM unnest(p_ips, p_asns, p_observed_at) AS o(ip, asn, observed_at)
    WHERE h.ip = o.ip AND upper_inf(h.valid) AND h.asn IS DISTINCT FROM o.asn
      AND o.observed_at <= lower(h.valid);

    INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
    SELECT o.ip, o.asn, tstzrange(o.observed_at, NULL, '[)'), p_source
    FROM unnest(p_ips, p_asns, p_observed_at) AS o(ip, asn, observed_at)
    WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_asn_history h WHERE h.ip = o.ip AND upper_inf(h.valid));

    RETURN coalesce(v_asns, '{}');
END;
$$;
COMMENT ON FUNCTION ipintel.record_asn_history(text, inet[], bigint[], timestamptz[]) IS
    'Records ASN observations (parallel arrays) in ip_asn_history, closing and opening ranges where the ASN changed; call before setting current_asn. Returns the ASNs whose counts may change.';

CREATE OR REPLACE FUNCTION ipintel.merge_maxmind(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
    v_asns bigint[];
BEGIN
    -- AS names from the MaxMind ASN file; Team Cymru's, when present, are kept (see merge_cymru).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, sources)
    SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
           (r.result ->> 'asn')::bigint, r.result ->> 'as_org',
           jsonb_build_object('maxmind', jsonb_build_object('as_org', r.result ->> 'as_org',
                                                            'fetched_at', r.fetched_at))
    FROM ipintel_staging.maxmind_results r
    WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL
    ORDER BY (r.result ->> 'asn')::bigint, r.fetched_at DESC
    ON CONFLICT (asn) DO UPDATE SET
        as_name = coalesce(a.sources #>> '{cymru,as_name}', excluded.as_name, a.as_name),
        sources = a.sources || excluded.sources,
        updated_at = now();

    -- MaxMind's ASN sets current_asn only where Team Cymru (live BGP) has not answered, and
    -- only when an ASN database was read (the City file alone says nothing about ASNs).
    SELECT ipintel.record_asn_history('maxmind', array_agg(r.ip), array_agg((r.result ->> 'asn')::bigint),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.maxmind_results r
    JOIN ipintel.ip_inventory i ON i.ip = r.ip
    WHERE r.batch_id = p_batch_id
      AND jsonb_typeof(r.result -> 'asn_db') = 'object'
      AND NOT (i.enrichment ? 'cymru');

    -- One write per row: the document and, with the same rule as above, current_asn.
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('maxmind', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        current_asn = CASE WHEN jsonb_typeof(r.result -> 'asn_db') = 'object' AND NOT (i.enrichment ? 'cymru')
                           THEN (r.result ->> 'asn')::bigint ELSE i.current_asn END,
        updated_at = now()
    FROM ipintel_staging.maxmind_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN ipintel.finish_batch('maxmind', p_run_id, p_batch_id, v_merged, v_asns);
END;
$$;
COMMENT ON FUNCTION ipintel.merge_maxmind(bigint, bigint) IS
    'Merges a staged MaxMind batch: enrichment->maxmind with its fetched_at, asn_inventory, current_asn (when Team Cymru has not answered) and ip_asn_history. Returns the IPs merged.';

CREATE OR REPLACE FUNCTION ipintel.merge_cymru(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
    v_asns bigint[];
BEGIN
    -- One row per origin ASN seen in the batch; rows whose facts did not change are skipped here
    -- in the SELECT (ON CONFLICT ... WHERE would still lock every conflicting row).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, as_country, rir, allocated, sources)
    SELECT n.asn, n.as_name, n.as_country, n.rir, n.allocated, jsonb_build_object('cymru', n.facts)
    FROM (
        SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
               (r.result ->> 'asn')::bigint AS asn,
               nullif(r.result ->> 'as_name', '') AS as_name,
               CASE WHEN upper(r.result ->> 'registered_country') ~ '^[A-Z]{2}$'
                    THEN upper(r.result ->> 'registered_country') END AS as_country,
               CASE WHEN lower(r.result ->> 'registry') ~ '^[a-z]+$' THEN lower(r.result ->> 'registry') END AS rir,
               (r.result ->> 'allocated')::date AS allocated,
               jsonb_build_object('as_name', r.result ->> 'as_name',
                                  'registered_country', r.result ->> 'registered_country',
                                  'registry', r.result ->> 'registry',
                                  'allocated', r.result ->> 'allocated') AS facts
        FROM ipintel_staging.cymru_results r
        WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL
        ORDER BY (r.result ->> 'asn')::bigint, r.fetched_at DESC
    ) n
    LEFT JOIN ipintel.asn_inventory cur ON cur.asn = n.asn
    WHERE cur.asn IS NULL
       OR (cur.as_name, cur.as_country, cur.rir, cur.allocated, cur.sources -> 'cymru')
          IS DISTINCT FROM (n.as_name, n.as_country, n.rir, n.allocated, n.facts)
    ORDER BY n.asn
    ON CONFLICT (asn) DO UPDATE SET
        as_name = excluded.as_name,
        as_country = excluded.as_country,
        rir = excluded.rir,
        allocated = excluded.allocated,
        sources = a.sources || excluded.sources,
        updated_at = now();

    SELECT ipintel.record_asn_history('cymru', array_agg(r.ip), array_agg((r.result ->> 'asn')::bigint),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.cymru_results r
    WHERE r.batch_id = p_batch_id;

    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('cymru', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        current_asn = (r.result ->> 'asn')::bigint,
        updated_at = now()
    FROM ipintel_staging.cymru_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN ipintel.finish_batch('cymru', p_run_id, p_batch_id, v_merged, v_asns);
END;
$$;
COMMENT ON FUNCTION ipintel.merge_cymru(bigint, bigint) IS
    'Merges a staged Team Cymru batch: asn_inventory (name, registration country, RIR, allocation date; unchanged rows skipped), enrichment->cymru with its fetched_at, current_asn (Cymru takes precedence over MaxMind) and ip_asn_history. Returns the IPs merged.';

CREATE OR REPLACE FUNCTION ipintel.merge_greynoise(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
BEGIN
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('greynoise', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        updated_at = now()
    FROM ipintel_staging.greynoise_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN ipintel.finish_batch('greynoise', p_run_id, p_batch_id, v_merged);
END;
$$;
COMMENT ON FUNCTION ipintel.merge_greynoise(bigint, bigint) IS
    'Merges a staged GreyNoise batch into enrichment->greynoise with its fetched_at (is_scanner, is_riot and ip_type follow). Returns the IPs merged.';

CREATE OR REPLACE FUNCTION ipintel.merge_cowrie_events(p_batch_id bigint)
    RETURNS TABLE (events bigint, sessions_new bigint, sessions_updated bigint, ips_new bigint, event_counts jsonb)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_events bigint;
    v_event_counts jsonb;
    v_sessions_new bigint;
    v_sessions_updated bigint;
    v_ips_new bigint;
    v_asns bigint[];
BEGIN
    SELECT coalesce(sum(e.n), 0), coalesce(jsonb_object_agg(e.eventid, e.n), '{}'::jsonb)
    INTO v_events, v_event_counts
    FROM (SELECT c.eventid, count(*) AS n FROM ipintel_staging.cowrie_events c
          WHERE c.batch_id = p_batch_id GROUP BY c.eventid) e;

    INSERT INTO ipintel_staging.cowrie_sessions
    SELECT p_batch_id, c.session_id,
           -- The peer is the address of the connect event. Without one in this batch (a session
           -- continued from an earlier file), the earliest event's, but never a direct-tcpip
           -- event's: Cowrie logs the client-claimed forwarding origin (e.g. 127.0.0.1) there.
           coalesce((array_agg(ipintel.normalize_ip(c.src_ip) ORDER BY c.event_ts) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
                    (array_agg(ipintel.normalize_ip(c.src_ip) ORDER BY c.event_ts, c.line_no) FILTER (WHERE c.eventid NOT LIKE 'cowrie.direct-tcpip.%'))[1],
                    (array_agg(ipintel.normalize_ip(c.src_ip) ORDER BY c.event_ts, c.line_no))[1]),
           (array_agg(c.sensor ORDER BY c.event_ts) FILTER (WHERE c.sensor IS NOT NULL))[1],
           min(c.event_ts), max(c.event_ts),
           (array_agg(c.protocol ORDER BY c.event_ts) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           (array_agg(c.src_port ORDER BY c.event_ts) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           (array_agg(ipintel.normalize_ip(c.dst_ip) ORDER BY c.event_ts) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           (array_agg(c.dst_port ORDER BY c.event_ts) FILTER (WHERE c.eventid = 'cowrie.session.connect'))[1],
           max(c.duration) FILTER (WHERE c.eventid = 'cowrie.session.closed'),
           (array_agg(c.client_version ORDER BY c.event_ts) FILTER (WHERE c.eventid = 'cowrie.client.version'))[1],
           (array_agg(c.hassh ORDER BY c.event_ts) FILTER (WHERE c.eventid = 'cowrie.client.kex'))[1],
           count(*) FILTER (WHERE c.eventid IN ('cowrie.login.failed', 'cowrie.login.success')),
           count(*) FILTER (WHERE c.eventid = 'cowrie.login.success'),
           count(*) FILTER (WHERE c.eventid = 'cowrie.command.input'),
           count(*) FILTER (WHERE c.eventid = 'cowrie.session.file_download'),
           count(*)
    FROM ipintel_staging.cowrie_events c
    WHERE c.batch_id = p_batch_id
    GROUP BY c.session_id;

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

    WITH merged AS (
        INSERT INTO ipintel.session_summaries AS s (
            session_id, source_ip, sensor, first_event_at, last_event_at, protocol, src_port, dst_ip,
            dst_port, duration_seconds, client_version, hassh, login_attempts, login_successes,
            command_count, download_count, event_count)
        SELECT m.session_id, m.source_ip, m.sensor, m.first_event_at, m.last_event_at, m.protocol,
               m.src_port, m.dst_ip, m.dst_port, m.duration_seconds, m.client_version, m.hassh,
               m.login_attempts, m.login_successes, m.command_count, m.download_count, m.event_count
        FROM ipintel_staging.cowrie_sessions m
        WHERE m.batch_id = p_batch_id
        ORDER BY m.session_id
        ON CONFLICT (session_id) DO UPDATE SET
            sensor           = coalesce(s.sensor, excluded.sensor),
            first_event_at   = least(s.first_event_at, excluded.first_event_at),
            last_event_at    = greatest(s.last_event_at, excluded.last_event_at),
            protocol         = coalesce(s.protocol, excluded.protocol),
            src_port         = coalesce(s.src_port, excluded.src_port),
            dst_ip           = coalesce(s.dst_ip, excluded.dst_ip),
            dst_port         = coalesce(s.dst_port, excluded.dst_port),
            duration_seconds = coalesce(excluded.duration_seconds, s.duration_seconds),
            client_version   = coalesce(s.client_version, excluded.client_version),
            hassh            = coalesce(s.hassh, excluded.hassh),
            login_attempts   = s.login_attempts + excluded.login_attempts,
            login_successes  = s.login_successes + excluded.login_successes,
            command_count    = s.command_count + excluded.command_count,
            download_count   = s.download_count + excluded.download_count,
            event_count      = s.event_count + excluded.event_count,
            updated_at       = now()
        RETURNING s.source_ip, (xmax = 0) AS inserted)  -- xmax = 0: the row was inserted, not updated
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

    DELETE FROM ipintel_staging.cowrie_events c WHERE c.batch_id = p_batch_id;
    DELETE FROM ipintel_staging.cowrie_sessions m WHERE m.batch_id = p_batch_id;

    RETURN QUERY SELECT v_events, coalesce(v_sessions_new, 0), coalesce(v_sessions_updated, 0),
                        v_ips_new, v_event_counts;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_cowrie_events(bigint) IS
    'Merges one staged batch of Cowrie events (ipintel_staging.cowrie_events) into ip_inventory and session_summaries, then empties the batch. Set-based; call in the transaction that COPYed the batch.';

DROP FUNCTION ipintel.lock_for_merge(inet[], bigint[]);

ALTER TABLE ipintel.enrichment_policy DROP COLUMN snapshot_window;

DROP INDEX ipintel.session_summaries_incomplete_snapshot_idx;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX session_summaries_without_snapshot_idx ON ipintel.session_summaries (source_ip) WHERE snapshot_at IS NULL;
COMMENT ON INDEX ipintel.session_summaries_without_snapshot_idx IS 'Finds the sessions still waiting for their snapshot.';

ALTER TABLE ipintel.session_summaries DROP CONSTRAINT session_summaries_snapshot_is_consistent;
ALTER TABLE ipintel.session_summaries
    DROP COLUMN snapshot_asn_source,
    DROP COLUMN snapshot_country_source,
    DROP COLUMN snapshot_ip_type_source,
    DROP COLUMN snapshot_is_scanner_source,
    DROP COLUMN snapshot_complete_at;
-- Partial snapshots (taken by 0009's rules) may lack a country or ip_type: the 0008 rule needs both.
ALTER TABLE ipintel.session_summaries ADD CONSTRAINT session_summaries_snapshot_is_complete CHECK (
        (snapshot_at IS NULL) = (snapshot_enrichment IS NULL)
        AND (snapshot_at IS NULL OR (snapshot_country IS NOT NULL AND snapshot_ip_type IS NOT NULL))) NOT VALID;
COMMENT ON TABLE ipintel.session_summaries IS
    'Tier 3: one row per Cowrie session, with point-in-time snapshot_* columns: what ipintel knew about the source IP for the session''s time. A snapshot, once taken, is never rewritten.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn IS 'Snapshot: ASN of the source IP valid at the session''s time (ip_asn_history), else its ASN when the snapshot was taken.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_country IS 'Snapshot: ip_inventory.geo_country when the snapshot was taken.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type IS 'Snapshot: ip_inventory.ip_type when the snapshot was taken.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_is_scanner IS 'Snapshot: ip_inventory.is_scanner when the snapshot was taken.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_enrichment IS 'Snapshot: the full ip_inventory.enrichment document as it was.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_at IS 'When the snapshot was taken; NULL means not yet taken.';

