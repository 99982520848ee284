-- From migrations/versions/0052_threshold_waits_for_ingest.upgrade.sql (sql/070_enrichment.sql,
-- sql/075_snapshots.sql, sql/099_roles.sql)
-- A session-count threshold (enrichment_policy.min_session_count) no longer settles a snapshot
-- field while an ingest is running. Snapshots taken then (by an enrichment running beside the
-- ingest, or by the ingest's own chunks) saw a count the same ingest went on to exceed: the
-- field was settled 'none' for good, and the same logs gave other snapshots than when enrich ran
-- after the ingest (tests/faults/test_concurrency.py, one run in four). Locks: a new function,
-- CREATE OR REPLACE VIEW of snapshot_pending_sources (same columns): AccessExclusive on the view
-- only, for the instant of the swap; no table is scanned or rewritten.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE FUNCTION ipintel.ingest_is_running()
    RETURNS boolean
    LANGUAGE sql
    STABLE
    SET search_path = ''
RETURN EXISTS (
    SELECT 1 FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
      AND ((l.classid::bigint << 32) | l.objid::bigint) = pg_catalog.hashtextextended('ipintel.ingest', 0));
COMMENT ON FUNCTION ipintel.ingest_is_running() IS
    'True while an `ipintel ingest` runs against this database (it holds the advisory lock ''ipintel.ingest''). A session-count threshold (min_session_count, or_login_success) does not decline an IP for snapshots while it runs: the ingest may still add the IP''s sessions.';

GRANT EXECUTE ON FUNCTION ipintel.ingest_is_running() TO ipintel_reader, ipintel_loader;

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
  -- A session-count threshold declines the IP only once no ingest is running: a running ingest
  -- may still add the IP's sessions (revision 0052). Otherwise snapshots taken while an ingest
  -- runs (by an enrichment, or by the ingest's own chunks) would settle a field on a count the
  -- same ingest then exceeds, and the same logs would give other snapshots than when enrich runs
  -- after ingest. Read once per query (an InitPlan).
  AND NOT (p.min_session_count IS NOT NULL AND ipintel.below_session_threshold(p, i)
           AND NOT (SELECT ipintel.ingest_is_running()))
  AND i.ip IN (SELECT s.source_ip FROM ipintel.session_summaries s WHERE s.snapshot_complete_at IS NULL);
COMMENT ON VIEW ipintel.snapshot_pending_sources IS
    'IPs with an incomplete snapshot and the enabled sources that have neither answered them (freshly) nor declined them, with each source''s snapshot_window and field ranks. A source whose last pass was skipped (an offline database without its files, a service without its key or contact) is not waited for. A session-count threshold (min_session_count) declines an IP only while no ingest is running (ingest_is_running): a running ingest may still add its sessions.';
