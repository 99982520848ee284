-- From migrations/versions/0058_snapshot_waits_per_ip_first.upgrade.sql (sql/075_snapshots.sql)
-- snapshot_waits finds the awaited sources of each IP once (snapshot_pending_sources, grouped so
-- the planner keeps it apart) and then joins them to the IP's incomplete sessions. Flattened
-- into one join, the planner paired every incomplete session with every enabled source first
-- and ran the per-IP checks (answers, failures, thresholds) on each pair: 2M sessions, 6M pairs,
-- about 20 s of take_snapshots' 130 s (issue 15). The same columns and rows; a filter on
-- source_ip (take_snapshots of an ingest chunk's IPs) still reaches the inventory's key.
-- Locks: CREATE OR REPLACE VIEW: an AccessExclusiveLock on the view snapshot_waits only (no
-- table); no scan. Grants and comments stay.
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
-- The awaited sources of each IP, found once per IP and then joined to its sessions (revision
-- 0058). Grouped (each (ip, source) is one row already), so the planner plans them apart and a
-- filter on source_ip, a grouping column, still reaches the inventory's key. Flattened into one
-- join, the planner paired every incomplete session with every enabled source first and ran the
-- per-IP checks on each pair (2M sessions: 6M pairs, about a sixth of take_snapshots).
JOIN (SELECT p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank, p.ip_type_rank,
             p.is_known_attacker_rank
      FROM ipintel.snapshot_pending_sources p
      GROUP BY p.ip, p.source, p.snapshot_window, p.asn_rank, p.country_rank, p.is_scanner_rank, p.ip_type_rank,
               p.is_known_attacker_rank) w ON w.ip = s.source_ip
WHERE s.snapshot_complete_at IS NULL
  AND s.created_at + w.snapshot_window > now()
GROUP BY s.session_id, w.ip;
