-- From migrations/versions/0010_btree_ip_lookups.upgrade.sql
-- IP lookups that cannot lose rows (issue 9, item 3). GiST index scans on ip_inventory.ip
-- returned no row for addresses that were there: GiST's LP_DEAD hinting had marked the live
-- row's leaf entry dead, so `=` lookups (the planner's choice for the foreign-key check too)
-- and `<<=` scans skipped it until a REINDEX. Reproduced with both inet opclasses (in-core
-- inet_ops and btree_gist's gist_inet_ops) when a statement updates the table through a
-- nested-loop GiST scan of the same index (merge_cowrie_events' UPDATE ... FROM), with a few
-- thousand IPs (a two-level GiST tree). So:
-- * ip_inventory keeps its btree primary key only: it serves `=` and, through
--   network_subset_support, `ip <<= '198.51.100.0/22'` (a btree range scan).
-- * ip_asn_history's exclusion constraint is built on host(ip) with btree_gist's text
--   opclass instead of btree_gist's inet opclass (lossy, deprecated upstream), and no query
--   on `ip` can use that GiST index: lookups by ip go to a new btree index on ip. A CHECK
--   keeps ip a host address, so host(ip) equal means ip equal.
-- One transaction: ADD ... EXCLUDE cannot be built concurrently and holds ACCESS EXCLUSIVE on
-- ip_asn_history while its GiST index builds; the CHECK is validated and the btree index built
-- under that same lock, so each costs one more scan and no extra lock window. ip_inventory
-- comes last: its ACCESS EXCLUSIVE lock (DROP INDEX) is then held only until the commit that
-- follows, not through the build.
-- The exclusion index build dominates: about 80 s per million ip_asn_history rows on the
-- development machine (PostgreSQL 15); size the timeout to the table before running.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '10min';

ALTER TABLE ipintel.ip_asn_history
    ADD CONSTRAINT ip_asn_history_ip_is_host_address CHECK (masklen(ip) = CASE family(ip) WHEN 4 THEN 32 ELSE 128 END)
    NOT VALID;
-- Every row references ip_inventory, whose ips are host addresses: this scan finds nothing.
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE ipintel.ip_asn_history VALIDATE CONSTRAINT ip_asn_history_ip_is_host_address;
COMMENT ON CONSTRAINT ip_asn_history_ip_is_host_address ON ipintel.ip_asn_history IS
    'ip is a host address (as in ip_inventory), so equal host(ip) text means equal ip: the exclusion constraint relies on it.';

-- Replaced under the same name: the old one used btree_gist's inet opclass.
-- squawk-ignore ban-drop-constraint
ALTER TABLE ipintel.ip_asn_history DROP CONSTRAINT ip_asn_history_ranges_do_not_overlap;
-- PostgreSQL has no NOT VALID (nor CONCURRENTLY) for exclusion constraints: the index build is
-- the check, under the ACCESS EXCLUSIVE lock this transaction holds since the DROP above.
ALTER TABLE ipintel.ip_asn_history
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT ip_asn_history_ranges_do_not_overlap EXCLUDE USING gist ((pg_catalog.host(ip)) WITH =, valid WITH &&);
COMMENT ON CONSTRAINT ip_asn_history_ranges_do_not_overlap ON ipintel.ip_asn_history IS
    'One IP''s ranges never overlap. Keyed on host(ip) (btree_gist text opclass), not on ip: btree_gist''s inet opclass is lossy and deprecated upstream, and queries on ip cannot pick this GiST index (they use ip_asn_history_ip_idx), so only the constraint check reads it.';

-- Lookups and joins by ip (snapshots, asn_moves, the foreign key from ip_inventory), formerly
-- served by the old exclusion index; built under the lock already held on ip_asn_history.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX ip_asn_history_ip_idx ON ipintel.ip_asn_history (ip);
COMMENT ON INDEX ipintel.ip_asn_history_ip_idx IS 'Every range of an IP (=, joins, the foreign key to ip_inventory): a btree, so lookups by ip never go through GiST.';

-- Replaced by ip_inventory_pkey; dropped under lock_timeout (no CONCURRENTLY inside a revision).
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX ipintel.ip_inventory_ip_gist_idx;
COMMENT ON INDEX ipintel.ip_inventory_pkey IS
    'The one index on ip: serves = (and the foreign-key checks) and network containment (ip <<= ''198.51.100.0/22'' becomes a btree range scan). No GiST index on ip: GiST scans lost live rows (issue 9).';
