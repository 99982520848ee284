-- From migrations/versions/0009_snapshot_completion.upgrade.sql (sql/030, 060, 070, 080, 090 as of this revision)
-- Snapshots completed as sources answer (per-field sources, snapshot_window, snapshot_backlog),
-- one lock order for ingest and every merge (lock_for_merge), ASN history from real
-- observations only. The new CHECK constraints are added NOT VALID here and validated in 0012.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

ALTER TABLE ipintel.session_summaries
    ADD COLUMN snapshot_asn_source text,
    ADD COLUMN snapshot_country_source text,
    ADD COLUMN snapshot_ip_type_source text,
    ADD COLUMN snapshot_is_scanner_source text,
    ADD COLUMN snapshot_complete_at timestamptz;
-- Replaced by session_summaries_snapshot_is_consistent (partial snapshots may lack a country).
-- squawk-ignore ban-drop-constraint
ALTER TABLE ipintel.session_summaries DROP CONSTRAINT session_summaries_snapshot_is_complete;
ALTER TABLE ipintel.session_summaries ADD CONSTRAINT session_summaries_snapshot_is_consistent CHECK (
        (snapshot_at IS NULL) = (snapshot_enrichment IS NULL)
        AND (snapshot_complete_at IS NULL
             OR (snapshot_at IS NOT NULL AND snapshot_asn_source IS NOT NULL AND snapshot_country_source IS NOT NULL
                 AND snapshot_ip_type_source IS NOT NULL AND snapshot_is_scanner_source IS NOT NULL))) NOT VALID;
COMMENT ON TABLE ipintel.session_summaries IS
    'Tier 3: one row per Cowrie session, with point-in-time snapshot_* columns: what ipintel knew about the source IP for the session''s time. A snapshot field is known once its *_source is set and is then never rewritten; an unknown field is filled when its source first answers, within that source''s snapshot_window (enrichment_policy) from the session''s created_at.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn IS 'Snapshot: ASN of the source IP valid at the session''s time (ip_asn_history), else its current_asn when the field was filled. Known once snapshot_asn_source is set (NULL then means not routed / not known by any source).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_country IS 'Snapshot: ip_inventory.geo_country when the field was filled. Known once snapshot_country_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type IS 'Snapshot: ip_inventory.ip_type when the field was filled (only once no source is still awaited). Known once snapshot_ip_type_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_is_scanner IS 'Snapshot: ip_inventory.is_scanner when the field was filled. Known once snapshot_is_scanner_source is set (NULL then means GreyNoise declined, e.g. IPv6).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_enrichment IS 'Snapshot: the full ip_inventory.enrichment document as it was when a snapshot field was last filled.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_at IS 'When the first snapshot field was filled; NULL means no field is known yet.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn_source IS
    'Where snapshot_asn came from: cymru or maxmind (the source of the ip_asn_history range, else of current_asn), bogon (never asked), none (every source answered or declined, none knew). NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_country_source IS
    'Where snapshot_country came from: maxmind (geolocation), cymru (registration country), bogon, none (XX: no source knew). NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type_source IS
    'Which source decided snapshot_ip_type: greynoise (riot, scanner), maxmind (anonymizer, routed), cymru (unrouted, routed), bogon, none (unknown). NULL: not known yet (filled only once no source is awaited).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_is_scanner_source IS
    'Where snapshot_is_scanner came from: greynoise, bogon (never asked), none (GreyNoise declined or its window closed). NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_complete_at IS
    'When every snapshot field became known: every enabled source had answered or declined (bogon, not applicable, not found), or its snapshot_window had closed. NULL: incomplete, see ipintel.snapshot_backlog.';

-- Replaced below; a small partial index, dropped under lock_timeout (no CONCURRENTLY inside a revision).
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX ipintel.session_summaries_without_snapshot_idx;
-- A partial index over incomplete snapshots only; built inside the revision's transaction
-- (alembic cannot run CONCURRENTLY here), holding a SHARE lock on session_summaries while it builds.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX session_summaries_incomplete_snapshot_idx ON ipintel.session_summaries (source_ip) WHERE snapshot_complete_at IS NULL;
COMMENT ON INDEX ipintel.session_summaries_incomplete_snapshot_idx IS 'Finds the sessions whose snapshot is still incomplete.';

ALTER TABLE ipintel.enrichment_policy ADD COLUMN snapshot_window interval NOT NULL DEFAULT interval '30 days';
ALTER TABLE ipintel.enrichment_policy ADD CONSTRAINT enrichment_policy_snapshot_window_is_not_negative
    CHECK (snapshot_window >= interval '0') NOT VALID;
COMMENT ON COLUMN ipintel.enrichment_policy.snapshot_window IS
    'How long after a session is ingested (session_summaries.created_at) its snapshot still waits for this source: an unknown snapshot field is filled when the source first answers within the window; after it, the field is settled with what is known.';

-- One lock order for every writer of the tiers, so that `ipintel ingest` and `ipintel enrich`
-- can run at the same time without deadlocking: first the ip_inventory rows of the batch in ip
-- order, then the asn_inventory rows it may touch (the given ASNs and the current ASNs of those
-- IPs) in asn order. Ingest chunks and every merge call this before writing anything else.
CREATE FUNCTION ipintel.lock_for_merge(p_ips inet[], p_asns bigint[])
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    PERFORM 1 FROM ipintel.ip_inventory i
    WHERE i.ip = ANY (p_ips)
    ORDER BY i.ip
    FOR NO KEY UPDATE;
    PERFORM 1 FROM ipintel.asn_inventory a
    WHERE a.asn = ANY (p_asns)
       OR a.asn IN (SELECT i.current_asn FROM ipintel.ip_inventory i WHERE i.ip = ANY (p_ips))
    ORDER BY a.asn
    FOR NO KEY UPDATE;
END;
$$;
COMMENT ON FUNCTION ipintel.lock_for_merge(inet[], bigint[]) IS
    'Locks the ip_inventory rows of p_ips (ip order), then the asn_inventory rows of p_asns and of their current ASNs (asn order): the one lock order of ingest and every merge, so concurrent runs cannot deadlock.';

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
    'Records real ASN observations (parallel arrays) in ip_asn_history, closing and opening ranges where the ASN changed; call before setting current_asn. Returns the ASNs whose counts may change.';

CREATE OR REPLACE FUNCTION ipintel.merge_maxmind(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
    v_asns bigint[];
BEGIN
    PERFORM ipintel.lock_for_merge(
        ARRAY(SELECT r.ip FROM ipintel_staging.maxmind_results r WHERE r.batch_id = p_batch_id),
        ARRAY(SELECT (r.result ->> 'asn')::bigint FROM ipintel_staging.maxmind_results r
              WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL));

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

    -- MaxMind's ASN sets current_asn only where Team Cymru (live BGP) has not answered, only when
    -- an ASN database was read (the City file alone says nothing about ASNs), and only where the
    -- file knows the IP: "not in MaxMind's ASN file" is not "unrouted", so it is no observation.
    SELECT ipintel.record_asn_history('maxmind', array_agg(r.ip), array_agg((r.result ->> 'asn')::bigint),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.maxmind_results r
    JOIN ipintel.ip_inventory i ON i.ip = r.ip
    WHERE r.batch_id = p_batch_id
      AND jsonb_typeof(r.result -> 'asn_db') = 'object'
      AND r.result ->> 'asn' IS NOT NULL
      AND NOT (i.enrichment ? 'cymru');

    -- One write per row: the document and, with the same rule as above, current_asn.
    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('maxmind', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        current_asn = CASE WHEN jsonb_typeof(r.result -> 'asn_db') = 'object' AND r.result ->> 'asn' IS NOT NULL
                                AND NOT (i.enrichment ? 'cymru')
                           THEN (r.result ->> 'asn')::bigint ELSE i.current_asn END,
        updated_at = now()
    FROM ipintel_staging.maxmind_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN ipintel.finish_batch('maxmind', p_run_id, p_batch_id, v_merged, v_asns);
END;
$$;
COMMENT ON FUNCTION ipintel.merge_maxmind(bigint, bigint) IS
    'Merges a staged MaxMind batch: enrichment->maxmind with its fetched_at, asn_inventory, current_asn (when Team Cymru has not answered and the ASN file knows the IP) and ip_asn_history (real observations only). Returns the IPs merged.';

CREATE OR REPLACE FUNCTION ipintel.merge_cymru(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
    v_asns bigint[];
BEGIN
    PERFORM ipintel.lock_for_merge(
        ARRAY(SELECT r.ip FROM ipintel_staging.cymru_results r WHERE r.batch_id = p_batch_id),
        ARRAY(SELECT (r.result ->> 'asn')::bigint FROM ipintel_staging.cymru_results r
              WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL));

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

    -- History from real observations only: an origin ASN, or NA (allocated but not routed).
    -- "No match" (found: false) means Cymru knows nothing of the address: no observation.
    SELECT ipintel.record_asn_history('cymru', array_agg(r.ip), array_agg((r.result ->> 'asn')::bigint),
                                      array_agg(r.fetched_at))
    INTO v_asns
    FROM ipintel_staging.cymru_results r
    WHERE r.batch_id = p_batch_id AND (r.result ->> 'found')::boolean IS DISTINCT FROM false;

    UPDATE ipintel.ip_inventory i
    SET enrichment = i.enrichment || jsonb_build_object('cymru', r.result || jsonb_build_object('fetched_at', r.fetched_at)),
        current_asn = CASE WHEN (r.result ->> 'found')::boolean IS DISTINCT FROM false
                           THEN (r.result ->> 'asn')::bigint ELSE i.current_asn END,
        updated_at = now()
    FROM ipintel_staging.cymru_results r
    WHERE r.batch_id = p_batch_id AND i.ip = r.ip;
    GET DIAGNOSTICS v_merged = ROW_COUNT;
    RETURN ipintel.finish_batch('cymru', p_run_id, p_batch_id, v_merged, v_asns);
END;
$$;
COMMENT ON FUNCTION ipintel.merge_cymru(bigint, bigint) IS
    'Merges a staged Team Cymru batch: asn_inventory (name, registration country, RIR, allocation date; unchanged rows skipped), enrichment->cymru with its fetched_at, current_asn (Cymru takes precedence over MaxMind; a "no match" answer changes nothing) and ip_asn_history (real observations only). Returns the IPs merged.';

CREATE OR REPLACE FUNCTION ipintel.merge_greynoise(p_run_id bigint, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_merged bigint;
BEGIN
    PERFORM ipintel.lock_for_merge(
        ARRAY(SELECT r.ip FROM ipintel_staging.greynoise_results r WHERE r.batch_id = p_batch_id), '{}');
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

    -- The one lock order of every writer of the tiers (see lock_for_merge): this chunk's IPs in
    -- ip order, then their ASNs, before any session row; so a concurrent enrich cannot deadlock it.
    PERFORM ipintel.lock_for_merge(
        ARRAY(SELECT DISTINCT m.source_ip FROM ipintel_staging.cowrie_sessions m WHERE m.batch_id = p_batch_id), '{}');

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

-- Its callers (ipintel enrich) change with this revision: take_snapshots() takes no arguments now.
-- squawk-ignore ban-drop-function
DROP FUNCTION ipintel.take_snapshots(text[], interval);

-- The rule, for every snapshot_* field of a session: a known field (its *_source set) is never
-- changed; an unknown one is filled as soon as the sources it depends on are no longer awaited.
-- A source is awaited for a session while it is enabled, has no fresh answer for the IP, has not
-- declined it (bogon, policy says not applicable, a failure asking again cannot fix), and the
-- session was ingested less than the source's snapshot_window ago (so a backfill of old logs is
-- completed too). ASN waits for maxmind and cymru, country for maxmind (and for cymru when
-- MaxMind has no country), is_scanner for greynoise, ip_type for every source.

-- Policy filters say a source will not be asked about an IP: a definitive "no" for snapshots.
CREATE FUNCTION ipintel.source_declines(p_policy ipintel.enrichment_policy, p_ip ipintel.ip_inventory)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN (p_policy.skip_when_maxmind_asn AND jsonb_typeof(p_ip.enrichment #> '{maxmind,asn}') IS NOT DISTINCT FROM 'number')
    OR (p_policy.min_session_count IS NOT NULL AND p_ip.session_count < p_policy.min_session_count
        AND NOT (p_policy.or_login_success AND EXISTS (
            SELECT 1 FROM ipintel.session_summaries s
            WHERE s.source_ip = p_ip.ip AND s.login_successes > 0)))
    OR EXISTS (
        SELECT 1 FROM ipintel.enrichment_failures f
        WHERE f.source = p_policy.source AND f.ip = p_ip.ip
          AND f.resolved_at IS NULL AND NOT f.retryable);
COMMENT ON FUNCTION ipintel.source_declines(ipintel.enrichment_policy, ipintel.ip_inventory) IS
    'True when the source will not be asked about the IP: the policy skips it (skip_when_maxmind_asn, min_session_count) or an open failure says asking again cannot help. A definitive answer for snapshots.';

CREATE VIEW ipintel.snapshot_backlog AS
SELECT s.session_id,
       s.source_ip,
       s.first_event_at,
       s.created_at AS ingested_at,
       s.snapshot_at,
       w.waiting_for,
       w.window_closes_at
FROM ipintel.session_summaries s
JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(p.source ORDER BY p.source), '{}'::text[]) AS waiting_for,
           max(s.created_at + p.snapshot_window) AS window_closes_at
    FROM ipintel.enrichment_policy p
    WHERE p.enabled
      AND s.created_at + p.snapshot_window > now()
      AND NOT i.is_bogon
      -- never answered, or its answer is stale (due again): a new session waits for a fresh one
      AND (NOT (i.enrichment ? p.source)
           OR (i.enrichment -> p.source ->> 'fetched_at')::timestamptz < now() - p.ttl)
      AND NOT ipintel.source_declines(p, i)) w
WHERE s.snapshot_complete_at IS NULL;
COMMENT ON VIEW ipintel.snapshot_backlog IS
    'Sessions whose snapshot is still incomplete, with the sources still awaited (waiting_for; empty: complete at the next take_snapshots) and when the last of their windows closes.';
COMMENT ON COLUMN ipintel.snapshot_backlog.ingested_at IS 'session_summaries.created_at: each source''s snapshot_window starts here.';
COMMENT ON COLUMN ipintel.snapshot_backlog.waiting_for IS 'Enabled sources that have neither answered nor declined for the IP while their window is open.';
COMMENT ON COLUMN ipintel.snapshot_backlog.window_closes_at IS 'When the last awaited source''s window closes; the snapshot is then completed with what is known.';

CREATE FUNCTION ipintel.take_snapshots()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
BEGIN
    WITH ready AS (
        SELECT b.session_id,
               NOT (b.waiting_for && ARRAY['maxmind', 'cymru']) AS asn_ready,
               NOT ('maxmind' = ANY (b.waiting_for))
                   AND (i.enrichment #>> '{maxmind,country}' IS NOT NULL OR NOT ('cymru' = ANY (b.waiting_for))) AS country_ready,
               NOT ('greynoise' = ANY (b.waiting_for)) AS scanner_ready,
               b.waiting_for = '{}' AS all_ready,
               CASE WHEN h.ip IS NOT NULL THEN h.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN h.ip IS NOT NULL THEN h.source
                    WHEN i.current_asn IS NOT NULL AND i.enrichment #>> '{cymru,found}' = 'true' THEN 'cymru'
                    WHEN i.current_asn IS NOT NULL THEN 'maxmind'
                    ELSE 'none' END AS asn_source,
               i.geo_country AS country,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN i.enrichment #>> '{maxmind,country}' IS NOT NULL THEN 'maxmind'
                    WHEN i.enrichment #>> '{cymru,registered_country}' IS NOT NULL THEN 'cymru'
                    ELSE 'none' END AS country_source,
               i.is_scanner,
               CASE WHEN i.is_bogon THEN 'bogon' WHEN i.enrichment ? 'greynoise' THEN 'greynoise' ELSE 'none' END
                   AS is_scanner_source,
               i.ip_type,
               CASE i.ip_type
                    WHEN 'bogon' THEN 'bogon'
                    WHEN 'riot' THEN 'greynoise'
                    WHEN 'scanner' THEN 'greynoise'
                    WHEN 'anonymizer' THEN 'maxmind'
                    WHEN 'unrouted' THEN 'cymru'
                    WHEN 'routed' THEN CASE WHEN jsonb_typeof(i.enrichment #> '{cymru,asn}') = 'number' THEN 'cymru' ELSE 'maxmind' END
                    ELSE 'none' END AS ip_type_source,
               i.enrichment
        FROM ipintel.snapshot_backlog b
        JOIN ipintel.ip_inventory i ON i.ip = b.source_ip
        LEFT JOIN ipintel.ip_asn_history h ON h.ip = b.source_ip AND h.valid @> b.first_event_at
    ), todo AS (
        SELECT r.*
        FROM ready r
        JOIN ipintel.session_summaries s ON s.session_id = r.session_id
        WHERE r.all_ready
           OR (r.asn_ready AND s.snapshot_asn_source IS NULL)
           OR (r.country_ready AND s.snapshot_country_source IS NULL)
           OR (r.scanner_ready AND s.snapshot_is_scanner_source IS NULL)
    ), locked AS (
        -- A session an ingest chunk is updating right now is left for the next run (SKIP LOCKED):
        -- snapshots never wait for ingest, so the two can never deadlock.
        SELECT s.session_id
        FROM ipintel.session_summaries s
        WHERE s.session_id IN (SELECT t.session_id FROM todo t)
        ORDER BY s.session_id
        FOR NO KEY UPDATE SKIP LOCKED
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
            snapshot_ip_type = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.all_ready THEN t.ip_type
                                    ELSE s.snapshot_ip_type END,
            snapshot_ip_type_source = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.all_ready THEN t.ip_type_source
                                           ELSE s.snapshot_ip_type_source END,
            snapshot_enrichment = t.enrichment,
            snapshot_at = coalesce(s.snapshot_at, now()),
            snapshot_complete_at = CASE WHEN t.all_ready THEN now() END,
            updated_at = now()
        FROM todo t
        JOIN locked l ON l.session_id = t.session_id
        WHERE s.session_id = t.session_id
        RETURNING 1)
    SELECT count(*) INTO v_changed FROM filled;
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.take_snapshots() IS
    'Fills the unknown snapshot_* fields of incomplete sessions whose sources are no longer awaited (see ipintel.snapshot_backlog), and marks a snapshot complete once no source is awaited. Never changes a known field. Returns the sessions changed.';

CREATE OR REPLACE FUNCTION ipintel.protect_snapshot()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF (OLD.snapshot_asn_source IS NOT NULL
        AND (NEW.snapshot_asn, NEW.snapshot_asn_source) IS DISTINCT FROM (OLD.snapshot_asn, OLD.snapshot_asn_source))
       OR (OLD.snapshot_country_source IS NOT NULL
           AND (NEW.snapshot_country, NEW.snapshot_country_source)
               IS DISTINCT FROM (OLD.snapshot_country, OLD.snapshot_country_source))
       OR (OLD.snapshot_ip_type_source IS NOT NULL
           AND (NEW.snapshot_ip_type, NEW.snapshot_ip_type_source)
               IS DISTINCT FROM (OLD.snapshot_ip_type, OLD.snapshot_ip_type_source))
       OR (OLD.snapshot_is_scanner_source IS NOT NULL
           AND (NEW.snapshot_is_scanner, NEW.snapshot_is_scanner_source)
               IS DISTINCT FROM (OLD.snapshot_is_scanner, OLD.snapshot_is_scanner_source))
       OR (OLD.snapshot_at IS NOT NULL AND NEW.snapshot_at IS DISTINCT FROM OLD.snapshot_at)
       OR (OLD.snapshot_complete_at IS NOT NULL
           AND (NEW.snapshot_complete_at, NEW.snapshot_enrichment)
               IS DISTINCT FROM (OLD.snapshot_complete_at, OLD.snapshot_enrichment)) THEN
        RAISE EXCEPTION 'snapshot of session %: a known snapshot field is never rewritten', OLD.session_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ipintel.protect_snapshot() IS
    'Trigger function: refuses to change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot. Unknown fields may be filled.';

CREATE OR REPLACE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at
    ON ipintel.session_summaries
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

CREATE OR REPLACE VIEW ipintel.session_attribution AS
SELECT s.session_id,
       s.sensor,
       s.first_event_at,
       s.last_event_at,
       s.protocol,
       s.source_ip,
       CASE WHEN s.snapshot_asn_source IS NOT NULL THEN s.snapshot_asn ELSE i.current_asn END AS asn,
       a.as_name,
       CASE WHEN s.snapshot_country_source IS NOT NULL THEN s.snapshot_country ELSE i.geo_country END AS country,
       CASE WHEN s.snapshot_ip_type_source IS NOT NULL THEN s.snapshot_ip_type ELSE i.ip_type END AS ip_type,
       CASE WHEN s.snapshot_is_scanner_source IS NOT NULL THEN s.snapshot_is_scanner ELSE i.is_scanner END AS is_scanner,
       s.snapshot_complete_at IS NOT NULL AS from_snapshot,
       s.login_attempts,
       s.login_successes,
       s.command_count,
       s.download_count
FROM ipintel.session_summaries s
JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
LEFT JOIN ipintel.asn_inventory a
       ON a.asn = CASE WHEN s.snapshot_asn_source IS NOT NULL THEN s.snapshot_asn ELSE i.current_asn END;
COMMENT ON VIEW ipintel.session_attribution IS
    'One row per session with who it came from: each field is the point-in-time snapshot once known, else what ip_inventory knows now.';
COMMENT ON COLUMN ipintel.session_attribution.asn IS 'snapshot_asn once known (snapshot_asn_source set), else current_asn.';
COMMENT ON COLUMN ipintel.session_attribution.as_name IS 'Name of that AS (asn_inventory, current name).';
COMMENT ON COLUMN ipintel.session_attribution.country IS 'snapshot_country once known, else geo_country.';
COMMENT ON COLUMN ipintel.session_attribution.ip_type IS 'snapshot_ip_type once known, else ip_type.';
COMMENT ON COLUMN ipintel.session_attribution.is_scanner IS 'snapshot_is_scanner once known, else is_scanner.';
COMMENT ON COLUMN ipintel.session_attribution.from_snapshot IS 'true: the snapshot is complete and every attribution column comes from it.';
