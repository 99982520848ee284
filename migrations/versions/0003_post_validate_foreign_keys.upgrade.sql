-- From migrations/versions/0003_post_validate_foreign_keys.upgrade.sql
-- VALIDATE scans the rows under SHARE UPDATE EXCLUSIVE, which does not block reads or
-- writes; on tens of millions of sessions it may take minutes, hence no statement timeout.
-- A violating row stops the validation with the row named; fix it and run again.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = 0;

ALTER TABLE ipintel.ip_inventory VALIDATE CONSTRAINT ip_inventory_current_asn_fkey;
ALTER TABLE ipintel.session_summaries VALIDATE CONSTRAINT session_summaries_source_ip_fkey;
ALTER TABLE ipintel.ip_asn_history VALIDATE CONSTRAINT ip_asn_history_ip_fkey;
ALTER TABLE ipintel.ip_asn_history VALIDATE CONSTRAINT ip_asn_history_asn_fkey;
