-- From migrations/versions/0052_threshold_waits_for_ingest.downgrade.sql
-- squawk-ignore-file ban-drop-function
-- Back to 0030's snapshot_pending_sources: a session-count threshold declines an IP whether or
-- not an ingest is running; ingest_is_running is dropped (nothing else uses it). Locks:
-- AccessExclusive on the view for the instant of the swap; no table is scanned.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE VIEW ipintel.snapshot_pending_sources AS
SELECT i.ip,
       p.source,
       p.snapshot_window,
       p.asn_rank,
       p.country_rank,
       p.is_scanner_rank,
       p.ip_type_rank,
       -- added by revision 0028 (a view's new column goes last)
       p.is_known_attacker_rank
FROM ipintel.ip_inventory i
CROSS JOIN ipintel.enrichment_policy p
LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
-- an open failure that asking again cannot fix: the source declines the IP
LEFT JOIN ipintel.enrichment_failures f
       ON f.source = p.source AND f.ip = i.ip AND f.resolved_at IS NULL AND NOT f.retryable
WHERE p.enabled
  -- a source whose last pass was skipped (an offline database without its files, a service
  -- without its key or contact) will not answer until an operator sets it up (never run: awaited)
  AND (SELECT r.status FROM ipintel.enrichment_runs r WHERE r.source = p.source
       ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1) IS DISTINCT FROM 'skipped'
  AND NOT i.is_bogon
  -- never answered, or its answer is stale (due again): a new session waits for a fresh one
  AND (e.ip IS NULL OR ipintel.answer_is_stale(p, e.fetched_at, t.ttl))
  AND f.ip IS NULL
  -- the policy's filters (as ips_due reads them); the session threshold is looked at only when set
  AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
  AND NOT (p.min_session_count IS NOT NULL AND ipintel.below_session_threshold(p, i))
  AND i.ip IN (SELECT s.source_ip FROM ipintel.session_summaries s WHERE s.snapshot_complete_at IS NULL);
COMMENT ON VIEW ipintel.snapshot_pending_sources IS
    'IPs with an incomplete snapshot and the enabled sources that have neither answered them (freshly) nor declined them, with each source''s snapshot_window and field ranks. A source whose last pass was skipped (an offline database without its files, a service without its key or contact) is not waited for.';

DROP FUNCTION ipintel.ingest_is_running();
