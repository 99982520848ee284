-- From migrations/versions/0082_routing_lookups_by_spgist.concurrently.sql (sql/072_routing.sql's SP-GiST index)
-- prefix_origins' SP-GiST on the prefix (inet_ops), built CONCURRENTLY: routing history may be
-- large, and a plain CREATE INDEX would block routing loads for the whole build (about 1.5 s per
-- 1.2M rows here; the GiST it replaces took 9.6 s). Run by 0082_routing_lookups_by_spgist.py
-- outside the revision's transaction (alembic's autocommit_block), one statement at a time, BEFORE
-- the revision's transactional script (whose functions use it): a failed build leaves an INVALID
-- index and nothing else, and running it again drops it and builds anew. No lock_timeout (squawk's
-- require-lock-timeout): the SHARE UPDATE EXCLUSIVE lock CONCURRENTLY takes blocks no reader or
-- writer. No statement_timeout: the build takes as long as the table needs. Rerunnable without IF
-- NOT EXISTS (squawk's prefer-robust-stmts): the DROP before it removes what a failed build left,
-- which IF NOT EXISTS would keep, INVALID.
-- squawk-ignore-file ban-concurrent-index-creation-in-transaction, require-lock-timeout, prefer-robust-stmts
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS ipintel.prefix_origins_prefix_idx;
CREATE INDEX CONCURRENTLY prefix_origins_prefix_idx ON ipintel.prefix_origins USING spgist (prefix inet_ops);
COMMENT ON INDEX ipintel.prefix_origins_prefix_idx IS
    'Which prefixes contain an address (prefix >>= ip; the day is checked on the rows found): SP-GiST inet_ops, a radix tree (revision 0082; no GiST on inet: issue 9).';
RESET statement_timeout;
