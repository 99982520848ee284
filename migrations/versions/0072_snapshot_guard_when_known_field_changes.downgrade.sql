-- From migrations/versions/0072_snapshot_guard_when_known_field_changes.downgrade.sql (sql/075_snapshots.sql)
-- The guard as revision 0038 left it: its function called for every update of a session with a
-- known field.
-- Locks: CREATE OR REPLACE TRIGGER takes SHARE ROW EXCLUSIVE on session_summaries and each of its
-- partitions for a catalog change (no row read or written): ingest and snapshot passes wait for
-- it, it waits for theirs (lock_timeout below; retry when a long pass holds the table).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

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
