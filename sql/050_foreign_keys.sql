-- From sql/050_foreign_keys.sql
-- Foreign keys between the tiers. Migrations add them NOT VALID and VALIDATE them in a later
-- transaction, so the end state (validated constraints) is what this file declares.

ALTER TABLE ipintel.ip_inventory
    ADD CONSTRAINT ip_inventory_current_asn_fkey
    FOREIGN KEY (current_asn) REFERENCES ipintel.asn_inventory (asn);

ALTER TABLE ipintel.session_summaries
    ADD CONSTRAINT session_summaries_source_ip_fkey
    FOREIGN KEY (source_ip) REFERENCES ipintel.ip_inventory (ip);
