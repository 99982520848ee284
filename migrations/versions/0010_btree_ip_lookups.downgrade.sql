-- From migrations/versions/0010_btree_ip_lookups.downgrade.sql
-- Back to 0009: the GiST index on ip_inventory.ip and the exclusion constraint on ip with
-- btree_gist's inet opclass (the designs issue 9 found losing rows), no CHECK on
-- ip_asn_history.ip, no btree index on it. One transaction, like the upgrade.
-- squawk-ignore-file ban-drop-constraint
-- Rebuilding the inet-opclass exclusion index is slow (over 5 min for a million rows whose
-- IPv6 addresses differ only in low bits: that opclass keys them on a lossy float8).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '30min';

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX ipintel.ip_asn_history_ip_idx;
ALTER TABLE ipintel.ip_asn_history DROP CONSTRAINT ip_asn_history_ranges_do_not_overlap;
-- No NOT VALID for exclusion constraints: the index build is the check, under the lock of the DROP.
ALTER TABLE ipintel.ip_asn_history
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT ip_asn_history_ranges_do_not_overlap EXCLUDE USING gist (ip WITH =, valid WITH &&);
ALTER TABLE ipintel.ip_asn_history DROP CONSTRAINT ip_asn_history_ip_is_host_address;

COMMENT ON INDEX ipintel.ip_inventory_pkey IS NULL;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX ip_inventory_ip_gist_idx ON ipintel.ip_inventory USING gist (ip inet_ops);
COMMENT ON INDEX ipintel.ip_inventory_ip_gist_idx IS 'Serves network containment queries (ip <<= ''198.51.100.0/22'').';
