-- From migrations/versions/0072_snapshot_guard_when_known_field_changes.downgrade.sql (sql/075_snapshots.sql)
-- The guard as revision 0038 left it: its function, which tests the refusal itself, called for
-- every update of a session with a known field.
-- Locks: CREATE OR REPLACE TRIGGER takes SHARE ROW EXCLUSIVE on session_summaries and each of its
-- partitions for a catalog change (no row read or written): ingest and snapshot passes wait for
-- it, it waits for theirs (lock_timeout below; retry when a long pass holds the table). The
-- function and the trigger change in one transaction: neither is ever seen without the other.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

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
       OR (OLD.snapshot_complete_at IS NOT NULL
           AND (NEW.snapshot_complete_at, NEW.snapshot_document)
               IS DISTINCT FROM (OLD.snapshot_complete_at, OLD.snapshot_document)) THEN
        RAISE EXCEPTION 'snapshot of session %: a known snapshot field is never rewritten', OLD.session_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION ipintel.protect_snapshot() IS
    'Trigger function: refuses to change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot (its document too: snapshot_document), except inside redo_snapshots (audited in snapshot_redos). Unknown fields may be filled.';

CREATE OR REPLACE TRIGGER session_summaries_snapshot_is_immutable
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
