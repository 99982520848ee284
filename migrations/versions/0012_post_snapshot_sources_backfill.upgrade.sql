-- From migrations/versions/0012_post_snapshot_sources_backfill.upgrade.sql
-- Post step of 0009, in a transaction of its own: it only writes rows (no DDL lock is held while
-- it runs) and validates 0009's constraints, which takes SHARE UPDATE EXCLUSIVE only.
-- The UPDATE rewrites every session that has a snapshot: on a large table it takes a while
-- (measure it with the DBA runbook's numbers); concurrent ingest of those rows waits for it.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '0';

-- Snapshots taken before 0009 were frozen whatever the sources had answered. What they knew
-- stays known (a source is recorded for it); what was unknown (NULL, XX, or a class decided
-- without GreyNoise) becomes fillable, so the next `ipintel enrich` completes them.
UPDATE ipintel.session_summaries s
SET snapshot_asn_source = CASE
        WHEN s.snapshot_ip_type = 'bogon' THEN 'bogon'
        WHEN s.snapshot_asn IS NOT NULL AND s.snapshot_enrichment #>> '{cymru,found}' = 'true' THEN 'cymru'
        WHEN s.snapshot_asn IS NOT NULL THEN 'maxmind'
        WHEN s.snapshot_enrichment #>> '{cymru,found}' = 'true' THEN 'cymru' END,
    snapshot_country_source = CASE
        WHEN s.snapshot_ip_type = 'bogon' THEN 'bogon'
        WHEN s.snapshot_country <> 'XX' AND s.snapshot_enrichment #>> '{maxmind,country}' IS NOT NULL THEN 'maxmind'
        WHEN s.snapshot_country <> 'XX' THEN 'cymru' END,
    snapshot_is_scanner_source = CASE
        WHEN s.snapshot_ip_type = 'bogon' THEN 'bogon'
        WHEN s.snapshot_is_scanner IS NOT NULL THEN 'greynoise' END,
    snapshot_ip_type_source = CASE
        WHEN s.snapshot_ip_type = 'bogon' THEN 'bogon'
        WHEN s.snapshot_ip_type IN ('riot', 'scanner') THEN 'greynoise' END,
    snapshot_complete_at = CASE WHEN s.snapshot_ip_type = 'bogon' THEN s.snapshot_at END
WHERE s.snapshot_at IS NOT NULL
  AND s.snapshot_complete_at IS NULL
  AND s.snapshot_asn_source IS NULL AND s.snapshot_country_source IS NULL
  AND s.snapshot_ip_type_source IS NULL AND s.snapshot_is_scanner_source IS NULL;

-- Before 0009, MaxMind recorded "not in my ASN file" as an unrouted range, and Team Cymru's
-- first answer then showed as a move. Those ranges were never observations.
DELETE FROM ipintel.ip_asn_history h WHERE h.source = 'maxmind' AND h.asn IS NULL;

ALTER TABLE ipintel.session_summaries VALIDATE CONSTRAINT session_summaries_snapshot_is_consistent;
ALTER TABLE ipintel.enrichment_policy VALIDATE CONSTRAINT enrichment_policy_snapshot_window_is_not_negative;
