-- From migrations/versions/0025_analyst_views.concurrently.sql (sql/095_analyst_views.sql's index)
-- The window index of attribution queries, built CONCURRENTLY: session_summaries may hold tens of
-- millions of rows, and a plain CREATE INDEX would block ingest for the whole build. Run by
-- 0025_analyst_views.py outside the revision's transaction (alembic's autocommit_block), one
-- statement at a time, BEFORE the revision's transactional script: if the build fails it leaves
-- an INVALID index and nothing else, and running the revision again drops it and builds anew.
-- No lock_timeout (squawk's require-lock-timeout): the SHARE UPDATE EXCLUSIVE lock that
-- CONCURRENTLY takes blocks no reader or writer, and its waits for the transactions older than
-- it would time out too. No statement_timeout: the build takes as long as the table needs.
-- Rerunnable without IF NOT EXISTS (squawk's prefer-robust-stmts): the DROP before it removes
-- what a failed build left, which IF NOT EXISTS would keep, INVALID.
-- squawk-ignore-file ban-concurrent-index-creation-in-transaction, require-lock-timeout, prefer-robust-stmts
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS ipintel.session_summaries_window_idx;
CREATE INDEX CONCURRENTLY session_summaries_window_idx ON ipintel.session_summaries (first_event_at)
    INCLUDE (snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, source_ip,
             last_event_at);
COMMENT ON INDEX ipintel.session_summaries_window_idx IS
    'Window queries on the snapshot columns (top ASNs / countries in a time range): first_event_at with the snapshot ASN and country and the source IP, so session_attribution''s window aggregates are index-only scans; with last_event_at, verify_counts'' recount per IP reads this index instead of the table.';
RESET statement_timeout;
