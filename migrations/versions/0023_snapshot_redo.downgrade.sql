-- From migrations/versions/0023_snapshot_redo.downgrade.sql: back to 0022 (the redo records go).
-- squawk-ignore-file ban-drop-function, ban-drop-table, ban-drop-view
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP VIEW ipintel.asn_disagreements;
DROP FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text);
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

DROP TABLE ipintel.snapshot_redos;
