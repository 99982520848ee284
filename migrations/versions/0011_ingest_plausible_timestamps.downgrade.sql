-- From migrations/versions/0011_ingest_plausible_timestamps.downgrade.sql
-- Back to the reasons of 0004. Rows rejected as implausible_timestamp keep their line, detail
-- and excerpt under the older, nearest reason (invalid_timestamp): the narrower CHECK
-- cannot hold the new code.
-- squawk-ignore-file ban-drop-constraint
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

UPDATE ipintel.ingest_rejects SET reason = 'invalid_timestamp' WHERE reason = 'implausible_timestamp';
ALTER TABLE ipintel.ingest_rejects DROP CONSTRAINT ingest_rejects_reason_is_known;
ALTER TABLE ipintel.ingest_rejects
    ADD CONSTRAINT ingest_rejects_reason_is_known CHECK (reason IN (
        'malformed_json', 'missing_session', 'missing_src_ip', 'missing_eventid', 'invalid_ip',
        'invalid_timestamp', 'invalid_utf8', 'nul_character', 'truncated_gzip'))
    NOT VALID;
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE ipintel.ingest_rejects VALIDATE CONSTRAINT ingest_rejects_reason_is_known;

COMMENT ON COLUMN ipintel.ingest_rejects.reason IS 'Stable reason code: malformed_json, missing_session, missing_src_ip, missing_eventid, invalid_ip, invalid_timestamp, invalid_utf8, nul_character, truncated_gzip.';
