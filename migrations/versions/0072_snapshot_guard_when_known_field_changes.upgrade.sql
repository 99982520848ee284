-- From migrations/versions/0072_snapshot_guard_when_known_field_changes.upgrade.sql (sql/075_snapshots.sql)
-- The guard that refuses rewriting a known snapshot field calls its function only where a known
-- field would change: the trigger's WHEN states the refusal (before, any known field, so a pass
-- filling the fields a later source gave called it for every such session), and protect_snapshot,
-- reached only then, refuses but inside a redo (the test is stated once, in the WHEN).
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
    -- Called only for an update that would change a known snapshot field: the trigger's WHEN
    -- (session_summaries_snapshot_is_immutable, revision 0072) is the one statement of which.
    -- Inside redo_snapshots (which records itself in snapshot_redos first): allowed.
    IF EXISTS (SELECT 1 FROM ipintel.snapshot_redos r
               WHERE r.redo_id::text = current_setting('ipintel.snapshot_redo', true) AND r.finished_at IS NULL) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'snapshot of session %: a known snapshot field is never rewritten', OLD.session_id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

COMMENT ON FUNCTION ipintel.protect_snapshot() IS
    'Trigger function of session_summaries_snapshot_is_immutable, whose WHEN finds the updates that would change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot (its document too: snapshot_document): refuses them, except inside redo_snapshots (audited in snapshot_redos). Unknown fields may be filled (the trigger calls no function for them).';

CREATE OR REPLACE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_document, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at, snapshot_is_known_attacker, snapshot_threatfeeds,
                     snapshot_is_known_attacker_source, snapshot_ip_provider
    ON ipintel.session_summaries
    FOR EACH ROW
    -- Only where a known field would change (revision 0072): this WHEN is the rule's one
    -- statement, and protect_snapshot refuses what reaches it but inside a redo. Filling an
    -- unknown field calls no function, also when others are known (the pass after a later source
    -- answers: 1M such sessions took 17 to 19 s with the function called for each, 5.2 to 5.6 s
    -- without). Revision 0038 tested only that some field was known, which spared first fills alone.
    WHEN ((OLD.snapshot_asn_source IS NOT NULL
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
                  IS DISTINCT FROM (OLD.snapshot_complete_at, OLD.snapshot_document)))
    EXECUTE FUNCTION ipintel.protect_snapshot();
