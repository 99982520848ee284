-- From migrations/versions/0004_ingest.downgrade.sql
-- squawk-ignore-file ban-drop-table, ban-drop-function, ban-drop-sequence
-- Downgrading 0004 is the explicit request to forget ingest bookkeeping; the tiers keep
-- every session already merged.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP FUNCTION ipintel.merge_cowrie_events(bigint);
DROP FUNCTION ipintel.refresh_asn_counts(bigint[]);
DROP SEQUENCE ipintel_staging.batch_id_seq;
DROP TABLE ipintel_staging.cowrie_sessions;
DROP TABLE ipintel_staging.cowrie_events;
DROP TABLE ipintel.ingest_rejects;
DROP TABLE ipintel.ingest_files;
DROP TABLE ipintel.ingest_runs;
