-- From migrations/versions/0008_bookkeeping_comments.downgrade.sql
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

COMMENT ON COLUMN ipintel.ingest_runs.run_id IS NULL;
COMMENT ON COLUMN ipintel.ingest_runs.started_at IS NULL;
COMMENT ON COLUMN ipintel.ingest_runs.finished_at IS NULL;
COMMENT ON COLUMN ipintel.ingest_files.file_id IS NULL;
COMMENT ON COLUMN ipintel.ingest_files.first_run_id IS NULL;
COMMENT ON COLUMN ipintel.ingest_files.last_run_id IS NULL;
COMMENT ON COLUMN ipintel.ingest_files.first_ingested_at IS NULL;
COMMENT ON COLUMN ipintel.ingest_files.last_ingested_at IS NULL;
COMMENT ON COLUMN ipintel.ingest_rejects.reject_id IS NULL;
COMMENT ON COLUMN ipintel.ingest_rejects.run_id IS NULL;
COMMENT ON COLUMN ipintel.ingest_rejects.file_id IS NULL;
COMMENT ON COLUMN ipintel.ingest_rejects.path IS NULL;
COMMENT ON COLUMN ipintel.enrichment_policy.source IS NULL;
COMMENT ON COLUMN ipintel.enrichment_runs.run_id IS NULL;
COMMENT ON COLUMN ipintel.enrichment_runs.source IS NULL;
COMMENT ON COLUMN ipintel.enrichment_runs.started_at IS NULL;
COMMENT ON COLUMN ipintel.enrichment_runs.finished_at IS NULL;
COMMENT ON COLUMN ipintel.enrichment_failures.failure_id IS NULL;
COMMENT ON COLUMN ipintel.enrichment_failures.run_id IS NULL;
COMMENT ON COLUMN ipintel.enrichment_failures.source IS NULL;
COMMENT ON COLUMN ipintel.enrichment_failures.ip IS NULL;
COMMENT ON COLUMN ipintel.api_budget.source IS NULL;
COMMENT ON COLUMN ipintel.api_budget.day IS NULL;
