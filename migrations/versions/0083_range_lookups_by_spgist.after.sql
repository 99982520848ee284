-- From migrations/versions/0083_range_lookups_by_spgist.after.sql
-- The GiST on prefix_range, which no query reads once the revision's function is committed,
-- dropped CONCURRENTLY (run by 0083_range_lookups_by_spgist.py after the revision's transaction,
-- in autocommit): every range list load maintained it, for nothing. A plain DROP INDEX would wait
-- for, and then block, every reader of listed_ranges.
-- No lock_timeout (squawk's require-lock-timeout): CONCURRENTLY waits for the transactions that
-- read the table and blocks none of them; no statement_timeout: it waits as long as they run.
-- squawk-ignore-file require-lock-timeout
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS ipintel.listed_ranges_prefix_range_idx;
RESET statement_timeout;
