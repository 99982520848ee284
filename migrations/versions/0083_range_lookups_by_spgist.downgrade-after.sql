-- From migrations/versions/0083_range_lookups_by_spgist.downgrade-after.sql
-- The SP-GiST index, which 0082's ip_classes does not read, dropped CONCURRENTLY after the
-- downgrade's transaction.
-- No lock_timeout (squawk's require-lock-timeout): CONCURRENTLY waits for the transactions that
-- read the table and blocks none of them; no statement_timeout: it waits as long as they run.
-- squawk-ignore-file require-lock-timeout
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS ipintel.listed_ranges_prefix_idx;
RESET statement_timeout;
