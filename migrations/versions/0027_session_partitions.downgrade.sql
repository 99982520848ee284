-- From migrations/versions/0027_session_partitions.downgrade.sql: back to 0025 (session_summaries
-- one table again, keyed by session_id; merge_cowrie_events with ON CONFLICT (session_id);
-- no ensure_session_partitions, no verify_sessions).
-- One transaction: EXCLUSIVE on session_summaries from the first statement to the commit
-- (ingest and snapshots wait, readers go on until the swap), the sessions copied into a new
-- unpartitioned table, its indexes built and its foreign key validated, then the swap (ACCESS
-- EXCLUSIVE on both tables until the commit). Minutes per ten million sessions: a maintenance
-- window (docs/operations.md). A session_id found twice stops it (the new key refuses it, and the
-- error names it): ipintel verify lists them.
-- 0027_session_partitions.swap_tables.sql follows in the same transaction: the swap itself.
-- squawk-ignore-file ban-drop-function
-- The table is new and filled in this transaction: its indexes and key are built here, before
-- anything else can see it.
-- squawk-ignore-file require-concurrent-index-creation, adding-foreign-key-constraint
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '0';

LOCK TABLE ipintel.session_summaries IN EXCLUSIVE MODE;

CREATE TABLE ipintel.session_summaries_unpartitioned (
    session_id          text        NOT NULL,
    sensor              text,
    first_event_at      timestamptz NOT NULL,
    last_event_at       timestamptz NOT NULL,
    protocol            text,
    source_ip           inet        NOT NULL,
    -- TCP ports fit in integer (0-65535, checked below).
    -- squawk-ignore prefer-bigint-over-int
    src_port            integer,
    dst_ip              inet,
    -- TCP ports fit in integer (0-65535, checked below).
    -- squawk-ignore prefer-bigint-over-int
    dst_port            integer,
    duration_seconds    double precision,
    client_version      text,
    hassh               text,
    login_attempts      bigint      NOT NULL DEFAULT 0,
    login_successes     bigint      NOT NULL DEFAULT 0,
    command_count       bigint      NOT NULL DEFAULT 0,
    download_count      bigint      NOT NULL DEFAULT 0,
    event_count         bigint      NOT NULL DEFAULT 0,
    snapshot_asn        bigint,
    snapshot_country    text,
    snapshot_ip_type    text,
    snapshot_is_scanner boolean,
    snapshot_enrichment jsonb,
    snapshot_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    snapshot_asn_source        text,
    snapshot_country_source    text,
    snapshot_ip_type_source    text,
    snapshot_is_scanner_source text,
    snapshot_complete_at       timestamptz,
    CONSTRAINT session_summaries_unpartitioned_pkey PRIMARY KEY (session_id),
    CONSTRAINT session_summaries_events_in_order CHECK (first_event_at <= last_event_at),
    CONSTRAINT session_summaries_counts_are_not_negative CHECK (
        login_attempts >= 0 AND login_successes >= 0 AND command_count >= 0
        AND download_count >= 0 AND event_count >= 0),
    CONSTRAINT session_summaries_successes_within_attempts CHECK (login_successes <= login_attempts),
    CONSTRAINT session_summaries_ports_in_range CHECK (src_port BETWEEN 0 AND 65535 AND dst_port BETWEEN 0 AND 65535),
    CONSTRAINT session_summaries_source_ip_is_host_address CHECK (masklen(source_ip) = CASE family(source_ip) WHEN 4 THEN 32 ELSE 128 END),
    CONSTRAINT session_summaries_snapshot_country_is_iso_alpha2 CHECK (snapshot_country ~ '^[A-Z]{2}$'),
    CONSTRAINT session_summaries_snapshot_is_consistent CHECK (
        (snapshot_at IS NULL) = (snapshot_enrichment IS NULL)
        AND (snapshot_complete_at IS NULL
             OR (snapshot_at IS NOT NULL AND snapshot_asn_source IS NOT NULL AND snapshot_country_source IS NOT NULL
                 AND snapshot_ip_type_source IS NOT NULL AND snapshot_is_scanner_source IS NOT NULL)))
);
-- The columns named: revision 0036's downgrade adds snapshot_enrichment back at the end, so the
-- partitioned table's column order may differ from this one's.
INSERT INTO ipintel.session_summaries_unpartitioned (
    session_id, sensor, first_event_at, last_event_at, protocol, source_ip, src_port, dst_ip, dst_port,
    duration_seconds, client_version, hassh, login_attempts, login_successes, command_count, download_count, event_count,
    snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at, created_at,
    updated_at, snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
    snapshot_complete_at)
SELECT session_id, sensor, first_event_at, last_event_at, protocol, source_ip, src_port, dst_ip, dst_port,
    duration_seconds, client_version, hassh, login_attempts, login_successes, command_count, download_count, event_count,
    snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at, created_at,
    updated_at, snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
    snapshot_complete_at
FROM ipintel.session_summaries ORDER BY first_event_at;
COMMENT ON TABLE ipintel.session_summaries_unpartitioned IS
    'Tier 3: one row per Cowrie session, with point-in-time snapshot_* columns: what ipintel knew about the source IP for the session''s time. A snapshot field is known once its *_source is set and is then never rewritten; an unknown field is filled when its source first answers, within that source''s snapshot_window (enrichment_policy) from the session''s created_at.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.session_id IS 'Cowrie session id.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.sensor IS 'Cowrie sensor (honeypot) name that logged the session.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.first_event_at IS 'Time of the first event of the session (UTC).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.last_event_at IS 'Time of the last event of the session (UTC).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.protocol IS 'ssh or telnet (cowrie.session.connect).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.source_ip IS 'Attacker address (normalised like ip_inventory.ip).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.src_port IS 'Attacker TCP source port (cowrie.session.connect).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.dst_ip IS 'Honeypot address the attacker connected to.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.dst_port IS 'Honeypot TCP port the attacker connected to (22, 23, 2222...).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.duration_seconds IS 'Session duration reported by cowrie.session.closed.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.client_version IS 'SSH client version string (cowrie.client.version); attacker-chosen text.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.hassh IS 'HASSH fingerprint of the SSH client key exchange (cowrie.client.kex).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.login_attempts IS 'Login attempts: cowrie.login.failed plus cowrie.login.success events.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.login_successes IS 'cowrie.login.success events.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.command_count IS 'Commands entered (cowrie.command.input events).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.download_count IS 'Files fetched by the attacker (cowrie.session.file_download events).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.event_count IS 'All events of the session, known or not.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_asn IS 'Snapshot: origin AS of the source IP at the session''s time: from routing history (prefix_origins) at its day, else ip_asn_history at its time, else its current_asn when the field was filled. Known once snapshot_asn_source is set (NULL then means not routed / not known by any source).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_country IS 'Snapshot: ip_inventory.geo_country when the field was filled. Known once snapshot_country_source is set.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_ip_type IS 'Snapshot: ip_inventory.ip_type when the field was filled (only once no source is still awaited). Known once snapshot_ip_type_source is set.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_is_scanner IS 'Snapshot: ip_inventory.is_scanner when the field was filled. Known once snapshot_is_scanner_source is set (NULL then means GreyNoise declined, e.g. IPv6).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_enrichment IS 'Snapshot: the full ip_inventory.enrichment document as it was when a snapshot field was last filled.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_at IS 'When the first snapshot field was filled; NULL means no field is known yet.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_asn_source IS
    'Where snapshot_asn came from: routing:<dataset>:<snapshot day> (routing history), <source>:history (the ip_asn_history range at the session''s time), <source>:current (current_asn when filled), bogon (never asked), none (every source answered or declined, none knew). Before revision 0022: the bare source name. NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_country_source IS
    'Where snapshot_country came from: maxmind (geolocation), cymru (registration country), bogon, none (XX: no source knew). NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_ip_type_source IS
    'Which source decided snapshot_ip_type: greynoise (riot, scanner), maxmind (anonymizer, routed), cymru (unrouted, routed), bogon, none (unknown). NULL: not known yet (filled only once no source is awaited).';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_is_scanner_source IS
    'Where snapshot_is_scanner came from: greynoise, bogon (never asked), none (GreyNoise declined or its window closed). NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries_unpartitioned.snapshot_complete_at IS
    'When every snapshot field became known: every enabled source had answered or declined (bogon, not applicable, not found), or its snapshot_window had closed. NULL: incomplete, see ipintel.snapshot_backlog.';

CREATE INDEX session_summaries_unpartitioned_first_event_at_brin_idx ON ipintel.session_summaries_unpartitioned USING brin (first_event_at);
COMMENT ON INDEX ipintel.session_summaries_unpartitioned_first_event_at_brin_idx IS 'Sessions arrive roughly in time order: a tiny BRIN index serves time-window scans.';
CREATE INDEX session_summaries_unpartitioned_source_ip_idx ON ipintel.session_summaries_unpartitioned (source_ip);
CREATE INDEX session_summaries_unpartitioned_snapshot_asn_idx ON ipintel.session_summaries_unpartitioned (snapshot_asn);
CREATE INDEX session_summaries_unpartitioned_snapshot_country_idx ON ipintel.session_summaries_unpartitioned (snapshot_country);
CREATE INDEX session_summaries_unpartitioned_incomplete_snapshot_idx ON ipintel.session_summaries_unpartitioned (source_ip) WHERE snapshot_complete_at IS NULL;
COMMENT ON INDEX ipintel.session_summaries_unpartitioned_incomplete_snapshot_idx IS 'Finds the sessions whose snapshot is still incomplete.';

CREATE INDEX session_summaries_unpartitioned_window_idx ON ipintel.session_summaries_unpartitioned (first_event_at)
    INCLUDE (snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, source_ip,
             last_event_at);
COMMENT ON INDEX ipintel.session_summaries_unpartitioned_window_idx IS
    'Window queries on the snapshot columns (top ASNs / countries in a time range): first_event_at with the snapshot ASN and country and the source IP, so session_attribution''s window aggregates are index-only scans; with last_event_at, verify_counts'' recount per IP reads this index instead of the table.';

ALTER TABLE ipintel.session_summaries_unpartitioned
    ADD CONSTRAINT session_summaries_source_ip_fkey
    FOREIGN KEY (source_ip) REFERENCES ipintel.ip_inventory (ip);

CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at
    ON ipintel.session_summaries_unpartitioned
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

GRANT SELECT ON ipintel.session_summaries_unpartitioned TO ipintel_reader, ipintel_loader;

DROP FUNCTION ipintel.verify_sessions();
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
DROP FUNCTION ipintel.ensure_session_partitions(timestamptz[]);
