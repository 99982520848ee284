-- From migrations/versions/0023_snapshot_redo.upgrade.sql (sql/075_snapshots.sql's redo and
-- sql/090_attribution_views.sql's asn_disagreements as of this revision)
-- The audited redo of snapshots, and where sources disagree about a session's origin AS.
-- New objects only, and the trigger function replaced (no lock on session_summaries' rows).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE TABLE ipintel.snapshot_redos (
    redo_id         bigint      GENERATED ALWAYS AS IDENTITY,
    since           timestamptz NOT NULL,
    until           timestamptz NOT NULL,
    reason          text        NOT NULL,
    requested_by    text        NOT NULL DEFAULT session_user,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    sessions_reset  bigint      NOT NULL DEFAULT 0,
    sessions_taken  bigint      NOT NULL DEFAULT 0,
    CONSTRAINT snapshot_redos_pkey PRIMARY KEY (redo_id),
    CONSTRAINT snapshot_redos_window_is_ordered CHECK (since < until),
    CONSTRAINT snapshot_redos_reason_is_given CHECK (length(btrim(reason)) > 0),
    CONSTRAINT snapshot_redos_counts_are_not_negative CHECK (sessions_reset >= 0 AND sessions_taken >= 0)
);
COMMENT ON TABLE ipintel.snapshot_redos IS
    'Every redo of snapshots (ipintel snapshots redo): the only way a known snapshot field is ever rewritten.';
COMMENT ON COLUMN ipintel.snapshot_redos.redo_id IS 'Redo number.';
COMMENT ON COLUMN ipintel.snapshot_redos.since IS 'Sessions that started at or after this time were redone...';
COMMENT ON COLUMN ipintel.snapshot_redos.until IS '...and before this time.';
COMMENT ON COLUMN ipintel.snapshot_redos.reason IS 'Why, in the operator''s words (required).';
COMMENT ON COLUMN ipintel.snapshot_redos.requested_by IS 'The database user that asked (session_user).';
COMMENT ON COLUMN ipintel.snapshot_redos.started_at IS 'When the redo started.';
COMMENT ON COLUMN ipintel.snapshot_redos.finished_at IS 'When it ended (in the same transaction: a redo is all or nothing).';
COMMENT ON COLUMN ipintel.snapshot_redos.sessions_reset IS 'Snapshots cleared.';
COMMENT ON COLUMN ipintel.snapshot_redos.sessions_taken IS 'Sessions take_snapshots then filled (some may wait again for a source whose window is still open).';

CREATE OR REPLACE FUNCTION ipintel.protect_snapshot()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    -- Inside redo_snapshots (which records itself in snapshot_redos first): allowed.
    IF EXISTS (SELECT 1 FROM ipintel.snapshot_redos r
               WHERE r.redo_id::text = current_setting('ipintel.snapshot_redo', true) AND r.finished_at IS NULL) THEN
        RETURN NEW;
    END IF;
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
    'Trigger function: refuses to change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot, except inside redo_snapshots (audited in snapshot_redos). Unknown fields may be filled.';

CREATE FUNCTION ipintel.redo_snapshots(p_since timestamptz, p_until timestamptz, p_reason text)
    RETURNS TABLE (redo_id bigint, sessions_reset bigint, sessions_taken bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_redo bigint;
    v_reset bigint;
    v_taken bigint;
BEGIN
    INSERT INTO ipintel.snapshot_redos (since, until, reason) VALUES (p_since, p_until, p_reason)
    RETURNING snapshot_redos.redo_id INTO v_redo;
    PERFORM set_config('ipintel.snapshot_redo', v_redo::text, true);
    UPDATE ipintel.session_summaries s
    SET snapshot_asn = NULL, snapshot_asn_source = NULL, snapshot_country = NULL, snapshot_country_source = NULL,
        snapshot_ip_type = NULL, snapshot_ip_type_source = NULL, snapshot_is_scanner = NULL,
        snapshot_is_scanner_source = NULL, snapshot_enrichment = NULL, snapshot_at = NULL,
        snapshot_complete_at = NULL, updated_at = now()
    WHERE s.first_event_at >= p_since AND s.first_event_at < p_until AND s.snapshot_at IS NOT NULL;
    GET DIAGNOSTICS v_reset = ROW_COUNT;
    PERFORM set_config('ipintel.snapshot_redo', '', true);
    v_taken := ipintel.take_snapshots();
    UPDATE ipintel.snapshot_redos r
    SET finished_at = clock_timestamp(), sessions_reset = v_reset, sessions_taken = v_taken
    WHERE r.redo_id = v_redo;
    RETURN QUERY SELECT v_redo, v_reset, v_taken;
END;
$$;
COMMENT ON FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) IS
    'Takes again the snapshots of the sessions that started in [p_since, p_until), recorded in snapshot_redos with p_reason and its counts: the one audited way a known snapshot is rewritten (e.g. after loading routing history for sessions snapshotted from the current ASN). Returns the redo and its counts.';

-- Where the sources disagree about a session's origin AS: routing history at its day, the
-- ip_asn_history range at its time, and what each source last said of the IP.
CREATE VIEW ipintel.asn_disagreements AS
SELECT s.session_id,
       s.source_ip,
       s.first_event_at,
       r.asn AS routing_asn,
       r.dataset || ':' || r.taken_on::text AS routing_snapshot,
       h.asn AS history_asn,
       h.source AS history_source,
       e.source_asns,
       s.snapshot_asn,
       s.snapshot_asn_source
FROM ipintel.session_summaries s
LEFT JOIN LATERAL ipintel.routing_asns(ARRAY[s.source_ip], ARRAY[(s.first_event_at AT TIME ZONE 'UTC')::date]) r ON true
LEFT JOIN ipintel.ip_asn_history h ON h.ip = s.source_ip AND h.valid @> s.first_event_at
LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(st.source, st.asn ORDER BY st.source) AS source_asns,
           array_agg(DISTINCT st.asn) FILTER (WHERE st.asn IS NOT NULL) AS asns
    FROM ipintel.enrichment_state st
    WHERE st.ip = s.source_ip AND st.asn_observed) e ON true
WHERE (SELECT count(DISTINCT x.asn)
       FROM unnest(array_cat(ARRAY[r.asn, h.asn], e.asns)) AS x(asn)
       WHERE x.asn IS NOT NULL) > 1;
COMMENT ON VIEW ipintel.asn_disagreements IS
    'Sessions whose origin AS differs between routing history (at the session''s day), ip_asn_history (at its time) and what the sources last observed for the IP. Filter by first_event_at or source_ip: it looks up routing history per session.';
COMMENT ON COLUMN ipintel.asn_disagreements.routing_asn IS 'Origin AS in routing history at the session''s day (routing_asns).';
COMMENT ON COLUMN ipintel.asn_disagreements.routing_snapshot IS 'The routing snapshot that gave it: dataset:day.';
COMMENT ON COLUMN ipintel.asn_disagreements.history_asn IS 'ip_asn_history''s ASN at the session''s time.';
COMMENT ON COLUMN ipintel.asn_disagreements.history_source IS 'The source whose observation opened that range.';
COMMENT ON COLUMN ipintel.asn_disagreements.source_asns IS 'What each source last observed for the IP: {source: asn} (null: allocated, not routed).';
COMMENT ON COLUMN ipintel.asn_disagreements.snapshot_asn IS 'What the session''s snapshot says.';
COMMENT ON COLUMN ipintel.asn_disagreements.snapshot_asn_source IS 'Where the snapshot''s ASN came from.';

ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) TO ipintel_loader;
GRANT SELECT ON ipintel.snapshot_redos, ipintel.asn_disagreements TO ipintel_loader, ipintel_reader;
