-- From migrations/versions/0002_pre_foreign_keys_not_valid.downgrade.sql
-- squawk-ignore-file ban-drop-constraint
-- Downgrading 0002 is the explicit request to remove these foreign keys.
-- Dropping a foreign key touches no row; it only needs brief locks on both tables.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

ALTER TABLE ipintel.ip_asn_history DROP CONSTRAINT ip_asn_history_asn_fkey;
ALTER TABLE ipintel.ip_asn_history DROP CONSTRAINT ip_asn_history_ip_fkey;
ALTER TABLE ipintel.session_summaries DROP CONSTRAINT session_summaries_source_ip_fkey;
ALTER TABLE ipintel.ip_inventory DROP CONSTRAINT ip_inventory_current_asn_fkey;
