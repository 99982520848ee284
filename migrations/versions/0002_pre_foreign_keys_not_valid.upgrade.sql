-- From migrations/versions/0002_pre_foreign_keys_not_valid.upgrade.sql
-- NOT VALID: existing rows are not scanned, so each ADD holds its SHARE ROW EXCLUSIVE lock
-- only for a moment; new and updated rows are checked from now on. 0003 validates the old
-- rows in its own transaction under a lock that lets reads and writes go on.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

ALTER TABLE ipintel.ip_inventory
    ADD CONSTRAINT ip_inventory_current_asn_fkey
    FOREIGN KEY (current_asn) REFERENCES ipintel.asn_inventory (asn) NOT VALID;

ALTER TABLE ipintel.session_summaries
    ADD CONSTRAINT session_summaries_source_ip_fkey
    FOREIGN KEY (source_ip) REFERENCES ipintel.ip_inventory (ip) NOT VALID;

ALTER TABLE ipintel.ip_asn_history
    ADD CONSTRAINT ip_asn_history_ip_fkey
    FOREIGN KEY (ip) REFERENCES ipintel.ip_inventory (ip) NOT VALID;

ALTER TABLE ipintel.ip_asn_history
    ADD CONSTRAINT ip_asn_history_asn_fkey
    FOREIGN KEY (asn) REFERENCES ipintel.asn_inventory (asn) NOT VALID;
