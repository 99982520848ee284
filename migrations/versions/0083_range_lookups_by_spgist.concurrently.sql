-- From migrations/versions/0083_range_lookups_by_spgist.concurrently.sql (sql/073_range_lists.sql's SP-GiST index)
-- listed_ranges' SP-GiST on the prefix (inet_ops), built CONCURRENTLY, as 0082 builds
-- prefix_origins': a plain CREATE INDEX would block range list loads for the whole build. Run by
-- 0083_range_lookups_by_spgist.py outside the revision's transaction (alembic's autocommit_block),
-- one statement at a time, BEFORE the revision's transactional script (whose functions use it): a
-- failed build leaves an INVALID index and nothing else, and running it again drops it and builds
-- anew. No lock_timeout (squawk's require-lock-timeout): the SHARE UPDATE EXCLUSIVE lock
-- CONCURRENTLY takes blocks no reader or writer. No statement_timeout: the build takes as long as
-- the table needs. Rerunnable without IF NOT EXISTS (squawk's prefer-robust-stmts): the DROP before
-- it removes what a failed build left, which IF NOT EXISTS would keep, INVALID.
-- squawk-ignore-file ban-concurrent-index-creation-in-transaction, require-lock-timeout, prefer-robust-stmts
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS ipintel.listed_ranges_prefix_idx;
CREATE INDEX CONCURRENTLY listed_ranges_prefix_idx ON ipintel.listed_ranges USING spgist (prefix inet_ops);
COMMENT ON INDEX ipintel.listed_ranges_prefix_idx IS
    'Which ranges contain an address (prefix >>= ip; the day is checked on the rows found): SP-GiST inet_ops, as prefix_origins (revision 0083; no GiST on inet: issue 9).';
RESET statement_timeout;
