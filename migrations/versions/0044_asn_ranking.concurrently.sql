-- From migrations/versions/0044_asn_ranking.concurrently.sql (sql/077_attribution.sql's index)
-- attribution_asn_daily's (day, sessions DESC) INCLUDE (asn) index, which asn_ranking reads, built
-- CONCURRENTLY before the revision's transactional script: the rollup holds one row per day and
-- ASN (1.35M rows, 244 MB for a year of the bench's 2M sessions) and a plain CREATE INDEX would
-- block roll_up_attribution for the whole build. Run by 0044_asn_ranking.py outside the
-- revision's transaction (alembic's autocommit_block): a failed build leaves an INVALID index,
-- which the DROP of the next attempt removes. No lock_timeout (squawk's require-lock-timeout): the
-- SHARE UPDATE EXCLUSIVE lock of CONCURRENTLY blocks no reader or writer. No statement_timeout:
-- the build takes as long as the table needs. Rerunnable without IF NOT EXISTS (squawk's
-- prefer-robust-stmts): the DROP before it removes what a failed build left.
-- squawk-ignore-file ban-concurrent-index-creation-in-transaction, require-lock-timeout, prefer-robust-stmts
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS ipintel.attribution_asn_daily_day_sessions_idx;
-- asn_ranking's first and second steps: a day's ASNs, most sessions first (index only).
CREATE INDEX CONCURRENTLY attribution_asn_daily_day_sessions_idx ON ipintel.attribution_asn_daily (day, sessions DESC) INCLUDE (asn);
COMMENT ON INDEX ipintel.attribution_asn_daily_day_sessions_idx IS
    'A day''s ASNs, most sessions first: asn_ranking reads each day''s leaders and the ASNs above its bar from it, without the heap.';
RESET statement_timeout;
