-- From sql/050_foreign_keys.sql
-- Foreign keys between the tiers. Migrations add them NOT VALID and VALIDATE them in a later
-- transaction, so the end state (validated constraints) is what this file declares.

ALTER TABLE ipintel.ip_inventory
    ADD CONSTRAINT ip_inventory_current_asn_fkey
    FOREIGN KEY (current_asn) REFERENCES ipintel.asn_inventory (asn);

-- DEFERRABLE, checked at once unless a transaction defers it (revision 0047): the ingest merge
-- defers it while it inserts sessions and takes their snapshots, so that each is checked once.
ALTER TABLE ipintel.session_summaries
    ADD CONSTRAINT session_summaries_source_ip_fkey
    FOREIGN KEY (source_ip) REFERENCES ipintel.ip_inventory (ip)
    DEFERRABLE INITIALLY IMMEDIATE;
COMMENT ON CONSTRAINT session_summaries_source_ip_fkey ON ipintel.session_summaries IS
    'Every session''s source IP is in ip_inventory. Checked at once (INITIALLY IMMEDIATE); DEFERRABLE so that merge_cowrie_events can check the sessions it inserts and then snapshots once, when it ends (SET CONSTRAINTS ... DEFERRED, then IMMEDIATE), rather than on the insert and again on the update.';
