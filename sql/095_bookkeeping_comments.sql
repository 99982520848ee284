-- From sql/095_bookkeeping_comments.sql
-- COMMENT ON for the bookkeeping columns of ingest and enrichment (added after their tables).
COMMENT ON COLUMN ipintel.ingest_runs.run_id IS 'Ingest run number (ingest_rejects.run_id, ingest_files.first_run_id / last_run_id).';
COMMENT ON COLUMN ipintel.ingest_runs.started_at IS 'When `ipintel ingest` started.';
COMMENT ON COLUMN ipintel.ingest_runs.finished_at IS 'When it ended; NULL while running (or if killed).';
COMMENT ON COLUMN ipintel.ingest_files.file_id IS 'File number (ingest_rejects.file_id).';
COMMENT ON COLUMN ipintel.ingest_files.first_run_id IS 'Ingest run that first read this file.';
COMMENT ON COLUMN ipintel.ingest_files.last_run_id IS 'Ingest run that last read new lines of this file.';
COMMENT ON COLUMN ipintel.ingest_files.first_ingested_at IS 'When the file was first read.';
COMMENT ON COLUMN ipintel.ingest_files.last_ingested_at IS 'When new lines of the file were last loaded.';
COMMENT ON COLUMN ipintel.ingest_rejects.reject_id IS 'Reject number.';
COMMENT ON COLUMN ipintel.ingest_rejects.run_id IS 'Ingest run that rejected the line.';
COMMENT ON COLUMN ipintel.ingest_rejects.file_id IS 'File the line is in (ingest_files).';
COMMENT ON COLUMN ipintel.ingest_rejects.path IS 'Path of that file when the line was read.';
COMMENT ON COLUMN ipintel.enrichment_policy.source IS 'Source name (lower case), e.g. maxmind, cymru, greynoise: the key every other table refers to.';
COMMENT ON COLUMN ipintel.enrichment_runs.run_id IS 'Enrichment run number (one per source pass).';
COMMENT ON COLUMN ipintel.enrichment_runs.source IS 'The source of this pass (enrichment_policy).';
COMMENT ON COLUMN ipintel.enrichment_runs.started_at IS 'When the pass started.';
COMMENT ON COLUMN ipintel.enrichment_runs.finished_at IS 'When the pass ended; NULL while running.';
COMMENT ON COLUMN ipintel.enrichment_failures.failure_id IS 'Failure number.';
COMMENT ON COLUMN ipintel.enrichment_failures.run_id IS 'Run that recorded the failure.';
COMMENT ON COLUMN ipintel.enrichment_failures.source IS 'Source that could not answer.';
COMMENT ON COLUMN ipintel.enrichment_failures.ip IS 'The IP it could not answer for.';
COMMENT ON COLUMN ipintel.api_budget.source IS 'Source whose lookups are counted (enrichment_policy), e.g. greynoise.';
COMMENT ON COLUMN ipintel.api_budget.day IS 'UTC day.';
