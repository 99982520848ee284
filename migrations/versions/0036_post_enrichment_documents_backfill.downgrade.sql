-- From migrations/versions/0036_post_enrichment_documents_backfill.downgrade.sql
-- squawk-ignore-file ban-drop-constraint
-- Back to 0035: snapshot_enrichment added again (at the end of the columns: PostgreSQL cannot put
-- a column back in its place) and every snapshot's document copied into it from
-- enrichment_documents (one UPDATE of every snapshotted session, in this transaction: their rows
-- stay locked until it commits, and the copies take their space again), 0035's transitional
-- CHECK, guard, redo and session_documents.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '0';

ALTER TABLE ipintel.session_summaries ADD COLUMN snapshot_enrichment jsonb;
COMMENT ON COLUMN ipintel.session_summaries.snapshot_enrichment IS
    'Before revision 0035: the full ip_inventory.enrichment document as it was when a snapshot field was last filled, copied into every session. Snapshots since take snapshot_document (enrichment_documents) instead; revision 0036 moves these copies there and drops this column.';

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
           AND (NEW.snapshot_ip_type, NEW.snapshot_ip_type_source, NEW.snapshot_ip_provider)
               IS DISTINCT FROM (OLD.snapshot_ip_type, OLD.snapshot_ip_type_source, OLD.snapshot_ip_provider))
       OR (OLD.snapshot_is_scanner_source IS NOT NULL
           AND (NEW.snapshot_is_scanner, NEW.snapshot_is_scanner_source)
               IS DISTINCT FROM (OLD.snapshot_is_scanner, OLD.snapshot_is_scanner_source))
       OR (OLD.snapshot_is_known_attacker_source IS NOT NULL
           AND (NEW.snapshot_is_known_attacker, NEW.snapshot_threatfeeds, NEW.snapshot_is_known_attacker_source)
               IS DISTINCT FROM
               (OLD.snapshot_is_known_attacker, OLD.snapshot_threatfeeds, OLD.snapshot_is_known_attacker_source))
       OR (OLD.snapshot_at IS NOT NULL AND NEW.snapshot_at IS DISTINCT FROM OLD.snapshot_at)
       OR (OLD.snapshot_complete_at IS NOT NULL AND NEW.snapshot_complete_at IS DISTINCT FROM OLD.snapshot_complete_at) THEN
        RAISE EXCEPTION 'snapshot of session %: a known snapshot field is never rewritten', OLD.session_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    -- Until revision 0036 has moved every document to enrichment_documents: a complete snapshot's
    -- document, wherever it is held (snapshot_document, else the copy in snapshot_enrichment),
    -- never changes; moving it from one to the other (0036's backfill and downgrade) is allowed.
    IF OLD.snapshot_complete_at IS NOT NULL
       AND (NEW.snapshot_document, NEW.snapshot_enrichment) IS DISTINCT FROM (OLD.snapshot_document, OLD.snapshot_enrichment)
       AND (CASE WHEN NEW.snapshot_document IS NULL THEN NEW.snapshot_enrichment
                 ELSE (SELECT d.document FROM ipintel.enrichment_documents d WHERE d.document_id = NEW.snapshot_document) END)
           IS DISTINCT FROM
           (CASE WHEN OLD.snapshot_document IS NULL THEN OLD.snapshot_enrichment
                 ELSE (SELECT d.document FROM ipintel.enrichment_documents d WHERE d.document_id = OLD.snapshot_document) END) THEN
        RAISE EXCEPTION 'snapshot of session %: the document of a complete snapshot is never rewritten', OLD.session_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ipintel.protect_snapshot() IS
    'Trigger function: refuses to change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot (its document: snapshot_document, or until revision 0036 the copy in snapshot_enrichment), except inside redo_snapshots (audited in snapshot_redos). Unknown fields may be filled.';

DROP TRIGGER session_summaries_snapshot_is_immutable ON ipintel.session_summaries;
CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_document, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at, snapshot_is_known_attacker, snapshot_threatfeeds,
                     snapshot_is_known_attacker_source, snapshot_ip_provider
    ON ipintel.session_summaries
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

CREATE OR REPLACE FUNCTION ipintel.redo_snapshots(p_since timestamptz, p_until timestamptz, p_reason text)
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
        snapshot_ip_type = NULL, snapshot_ip_type_source = NULL, snapshot_ip_provider = NULL, snapshot_is_scanner = NULL,
        snapshot_is_scanner_source = NULL, snapshot_is_known_attacker = NULL, snapshot_threatfeeds = NULL,
        snapshot_is_known_attacker_source = NULL, snapshot_enrichment = NULL, snapshot_document = NULL, snapshot_at = NULL,
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
ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;
-- The enrichment document each session's snapshot took (issue 15, revision 0035): stored once per
-- distinct document in enrichment_documents, read back here per session.
CREATE OR REPLACE VIEW ipintel.session_documents AS
SELECT s.session_id,
       s.first_event_at,
       s.source_ip,
       s.snapshot_at,
       s.snapshot_complete_at,
       s.snapshot_document,
       -- until revision 0036 has moved them: the copies taken before 0035
       coalesce(d.document, s.snapshot_enrichment) AS snapshot_enrichment
FROM ipintel.session_summaries s
LEFT JOIN ipintel.enrichment_documents d ON d.document_id = s.snapshot_document
WHERE s.snapshot_at IS NOT NULL;
COMMENT ON VIEW ipintel.session_documents IS
    'One row per session with a snapshot: the full ip_inventory.enrichment document as it was when its snapshot was last filled (the snapshot_* columns of session_summaries hold what was taken from it). The document is stored once per distinct version in enrichment_documents and shared by the sessions that took it; join on session_id for the rest of the session (session_attribution, session_summaries).';
COMMENT ON COLUMN ipintel.session_documents.snapshot_document IS 'session_summaries.snapshot_document: the document''s number in enrichment_documents (equal numbers, equal documents).';
COMMENT ON COLUMN ipintel.session_documents.snapshot_enrichment IS
    'The document as it was: every source''s answer then, keyed by source (ip_inventory.enrichment''s form). What session_summaries.snapshot_enrichment held before revision 0036.';

ALTER TABLE ipintel.session_summaries ADD CONSTRAINT session_summaries_snapshot_is_consistent_until_0036 CHECK (
        (snapshot_at IS NULL) = (snapshot_enrichment IS NULL AND snapshot_document IS NULL)
        AND (snapshot_complete_at IS NULL
             OR (snapshot_at IS NOT NULL AND snapshot_asn_source IS NOT NULL AND snapshot_country_source IS NOT NULL
                 AND snapshot_ip_type_source IS NOT NULL AND snapshot_is_scanner_source IS NOT NULL))) NOT VALID;
ALTER TABLE ipintel.session_summaries DROP CONSTRAINT session_summaries_snapshot_is_consistent;

UPDATE ipintel.session_summaries s
SET snapshot_enrichment = d.document
FROM ipintel.enrichment_documents d
WHERE d.document_id = s.snapshot_document;
