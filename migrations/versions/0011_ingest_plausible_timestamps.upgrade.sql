-- From migrations/versions/0011_ingest_plausible_timestamps.upgrade.sql
-- A new reject reason, implausible_timestamp: a well-formed Cowrie timestamp before 1990 or more
-- than a day in the future. The reasons CHECK is replaced by a wider one (every old reason is
-- still allowed, so no guarantee is lost and no existing row can fail it).
-- One transaction: the ACCESS EXCLUSIVE lock of DROP/ADD is held through the VALIDATE scan.
-- That blocks ingest_rejects alone (rejected log lines: small, written by ingest only, read
-- by nothing hot) for the length of one scan, bounded by the statement timeout below; a
-- revision of its own for VALIDATE would buy nothing here.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- squawk-ignore ban-drop-constraint
ALTER TABLE ipintel.ingest_rejects DROP CONSTRAINT ingest_rejects_reason_is_known;
ALTER TABLE ipintel.ingest_rejects
    ADD CONSTRAINT ingest_rejects_reason_is_known CHECK (reason IN (
        'malformed_json', 'missing_session', 'missing_src_ip', 'missing_eventid', 'invalid_ip',
        'invalid_timestamp', 'implausible_timestamp', 'invalid_utf8', 'nul_character', 'truncated_gzip'))
    NOT VALID;
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE ipintel.ingest_rejects VALIDATE CONSTRAINT ingest_rejects_reason_is_known;

COMMENT ON COLUMN ipintel.ingest_rejects.reason IS 'Stable reason code: malformed_json, missing_session, missing_src_ip, missing_eventid, invalid_ip, invalid_timestamp (not ISO 8601), implausible_timestamp (before 1990 or more than a day in the future), invalid_utf8, nul_character, truncated_gzip.';
