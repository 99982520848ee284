-- From migrations/versions/0005_enrichment.downgrade.sql
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-view
-- Downgrading 0005 removes the engine's bookkeeping; merged enrichment stays in ip_inventory.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP VIEW ipintel.enrichment_coverage;
DROP TRIGGER session_summaries_snapshot_is_immutable ON ipintel.session_summaries;
DROP FUNCTION ipintel.protect_snapshot();
DROP FUNCTION ipintel.take_snapshots(text[], interval);
DROP FUNCTION ipintel.merge_maxmind(bigint, bigint);
DROP FUNCTION ipintel.finish_batch(text, bigint, bigint, bigint, bigint[]);
DROP FUNCTION ipintel.record_asn_history(text, inet[], bigint[], timestamptz[]);
DROP FUNCTION ipintel.record_failures(bigint);
DROP FUNCTION ipintel.ips_due(text, bigint, boolean, inet[], bigint);
DROP TABLE ipintel_staging.enrichment_failures;
DROP TABLE ipintel_staging.maxmind_results;
DROP TABLE ipintel.enrichment_failures;
DROP TABLE ipintel.enrichment_runs;
DROP TABLE ipintel.enrichment_policy;
