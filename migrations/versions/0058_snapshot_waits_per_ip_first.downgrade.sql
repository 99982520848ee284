-- From migrations/versions/0058_snapshot_waits_per_ip_first.downgrade.sql
-- Back to revision 0042's snapshot_waits: the sessions joined to snapshot_pending_sources in one
-- join. The same columns and rows.
-- Locks: CREATE OR REPLACE VIEW: an AccessExclusiveLock on the view snapshot_waits only; no scan.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE VIEW ipintel.snapshot_waits AS
SELECT s.session_id,
       array_agg(w.source ORDER BY w.source) AS waiting_for,
       max(s.created_at + w.snapshot_window) AS window_closes_at,
       min(w.asn_rank) AS asn_wait_rank,
       min(w.country_rank) AS country_wait_rank,
       min(w.is_scanner_rank) AS is_scanner_wait_rank,
       min(w.ip_type_rank) AS ip_type_wait_rank,
       min(w.is_known_attacker_rank) AS is_known_attacker_wait_rank,
       -- added by revision 0042 (a view's new column goes last): a grouping column, so that a
       -- filter on it (take_snapshots of a few IPs) is applied before the grouping, to the
       -- awaited sources' IPs (w.ip, not s.source_ip: the same value, but read from
       -- ip_inventory by its key rather than found by a scan of it)
       w.ip AS source_ip
FROM ipintel.session_summaries s
JOIN ipintel.snapshot_pending_sources w ON w.ip = s.source_ip
WHERE s.snapshot_complete_at IS NULL
  AND s.created_at + w.snapshot_window > now()
GROUP BY s.session_id, w.ip;
