-- From migrations/versions/0083_range_lookups_by_spgist.downgrade-concurrently.sql (0082's GiST on prefix_range)
-- The GiST that 0082's ip_classes probes, built CONCURRENTLY again before the downgrade's
-- transaction puts that function back. Run by 0083_range_lookups_by_spgist.py outside the
-- revision's transaction (alembic's autocommit_block), one statement at a time, BEFORE the
-- downgrade's transactional script: a failed build leaves an INVALID index and nothing else, and
-- running it again drops it and builds anew. No lock_timeout (squawk's require-lock-timeout): the
-- SHARE UPDATE EXCLUSIVE lock CONCURRENTLY takes blocks no reader or writer. No statement_timeout:
-- the build takes as long as the table needs. Rerunnable without IF NOT EXISTS (squawk's
-- prefer-robust-stmts): the DROP before it removes what a failed build left, which IF NOT EXISTS
-- would keep, INVALID.
-- squawk-ignore-file ban-concurrent-index-creation-in-transaction, require-lock-timeout, prefer-robust-stmts
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS ipintel.listed_ranges_prefix_range_idx;
CREATE INDEX CONCURRENTLY listed_ranges_prefix_range_idx ON ipintel.listed_ranges USING gist (prefix_range);
COMMENT ON INDEX ipintel.listed_ranges_prefix_range_idx IS
    'Which ranges contain an address (the day is checked on the rows found): ip4r''s own GiST operator class, as prefix_origins.';
RESET statement_timeout;
