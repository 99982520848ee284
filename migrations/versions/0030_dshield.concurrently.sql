-- From migrations/versions/0030_dshield.concurrently.sql (the ip_inventory columns of sql/030_tiers.sql
-- and the foreign key of sql/070_enrichment.sql, as of this revision)
-- ip_inventory's new columns and the foreign key of is_known_attacker_source to the registry, like
-- every other *_source column's. Run by 0030_dshield.py outside the revision's transaction
-- (alembic's autocommit_block), one statement at a time, BEFORE the transactional script, so that
-- the validation, a scan of all of ip_inventory, runs under SHARE UPDATE EXCLUSIVE (ingest, merges
-- and analysts go on) and not under the ACCESS EXCLUSIVE lock the ADD COLUMN takes for an
-- instant. The column is NULL on every row, so the validation finds nothing; it only reads.
-- Rerunnable: if a statement fails (a lock timeout), running the revision again adds what is
-- missing, drops the key a failed run left NOT VALID and adds and validates it anew.
-- squawk runs every file as one transaction; here each statement commits on its own, and the
-- key dropped is only ever one a failed run left:
-- squawk-ignore-file constraint-missing-not-valid, ban-drop-constraint
SET lock_timeout = '5s';
SET statement_timeout = '1min';
ALTER TABLE ipintel.ip_inventory
    ADD COLUMN IF NOT EXISTS is_known_attacker boolean,
    ADD COLUMN IF NOT EXISTS is_known_attacker_source text,
    ADD COLUMN IF NOT EXISTS threatfeeds text[];
ALTER TABLE ipintel.ip_inventory DROP CONSTRAINT IF EXISTS ip_inventory_is_known_attacker_source_fkey;
ALTER TABLE ipintel.ip_inventory
    ADD CONSTRAINT ip_inventory_is_known_attacker_source_fkey FOREIGN KEY (is_known_attacker_source)
        REFERENCES ipintel.enrichment_policy (source) NOT VALID;
SET statement_timeout = 0;
ALTER TABLE ipintel.ip_inventory VALIDATE CONSTRAINT ip_inventory_is_known_attacker_source_fkey;
RESET statement_timeout;
RESET lock_timeout;
