-- From migrations/versions/0015_post_validate_source_keys.upgrade.sql
-- Post step of 0013 in a transaction of its own: VALIDATE takes SHARE UPDATE EXCLUSIVE only
-- (reads and writes go on); ip_asn_history is the large one.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '0';

ALTER TABLE ipintel.enrichment_runs VALIDATE CONSTRAINT enrichment_runs_source_fkey;
ALTER TABLE ipintel.enrichment_failures VALIDATE CONSTRAINT enrichment_failures_source_fkey;
ALTER TABLE ipintel.api_budget VALIDATE CONSTRAINT api_budget_source_fkey;
ALTER TABLE ipintel.ip_asn_history VALIDATE CONSTRAINT ip_asn_history_source_fkey;
