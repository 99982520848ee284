-- From migrations/versions/0029_geo_builds.concurrently.sql (sql/072_routing.sql's GiST index)
-- prefix_origins' GiST on the prefix's range alone, built CONCURRENTLY, then the old one on
-- (prefix_range, valid) dropped CONCURRENTLY: with the day in the key, loading a first full table
-- (1.15M pairs, in prefix order) spent ~30 s of ~40 s in that index. With the range alone
-- (`python -m bench --only routing`, 2 shared vCPUs) the first table took 21 to 31 s instead of
-- 40 to 44, the 1M attack-time lookups 25 to 32 s instead of 34 to 35, daily loads the same (the
-- day is checked on the few runs of each prefix found), 6% less space. The routing history may be large: a plain CREATE INDEX
-- would block routing loads for the whole build, and a drop first would leave the lookups without
-- an index meanwhile. Run by 0029_geo_builds.py outside the revision's transaction (alembic's
-- autocommit_block), one statement at a time, BEFORE the revision's transactional script: if the
-- build fails it leaves an INVALID index and nothing else, and running the revision again drops
-- it and builds anew. No lock_timeout (squawk's require-lock-timeout): the SHARE UPDATE EXCLUSIVE
-- lock that CONCURRENTLY takes blocks no reader or writer. No statement_timeout: the build takes
-- as long as the table needs. Rerunnable without IF NOT EXISTS (squawk's prefer-robust-stmts): the
-- DROP before it removes what a failed build left, which IF NOT EXISTS would keep, INVALID.
-- squawk-ignore-file ban-concurrent-index-creation-in-transaction, require-lock-timeout, prefer-robust-stmts
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS ipintel.prefix_origins_prefix_range_idx;
CREATE INDEX CONCURRENTLY prefix_origins_prefix_range_idx ON ipintel.prefix_origins USING gist (prefix_range);
COMMENT ON INDEX ipintel.prefix_origins_prefix_range_idx IS
    'Which prefixes contain an address (the day is checked on the rows found): ip4r''s own GiST operator class (not btree_gist''s inet one, which lost rows: issue 9).';
DROP INDEX CONCURRENTLY IF EXISTS ipintel.prefix_origins_lookup_idx;
RESET statement_timeout;
