-- From sql/090_attribution_views.sql
-- Views for analysts: attribution per session (point in time) and ASN moves over time.

CREATE VIEW ipintel.session_attribution AS
SELECT s.session_id,
       s.sensor,
       s.first_event_at,
       s.last_event_at,
       s.protocol,
       s.source_ip,
       CASE WHEN s.snapshot_asn_source IS NOT NULL THEN s.snapshot_asn ELSE i.current_asn END AS asn,
       a.as_name,
       CASE WHEN s.snapshot_country_source IS NOT NULL THEN s.snapshot_country ELSE i.geo_country END AS country,
       CASE WHEN s.snapshot_ip_type_source IS NOT NULL THEN s.snapshot_ip_type ELSE i.ip_type END AS ip_type,
       CASE WHEN s.snapshot_is_scanner_source IS NOT NULL THEN s.snapshot_is_scanner ELSE i.is_scanner END AS is_scanner,
       s.snapshot_complete_at IS NOT NULL AS from_snapshot,
       s.login_attempts,
       s.login_successes,
       s.command_count,
       s.download_count
FROM ipintel.session_summaries s
JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
LEFT JOIN ipintel.asn_inventory a
       ON a.asn = CASE WHEN s.snapshot_asn_source IS NOT NULL THEN s.snapshot_asn ELSE i.current_asn END;
COMMENT ON VIEW ipintel.session_attribution IS
    'One row per session with who it came from: each field is the point-in-time snapshot once known, else what ip_inventory knows now.';
COMMENT ON COLUMN ipintel.session_attribution.asn IS 'snapshot_asn once known (snapshot_asn_source set), else current_asn.';
COMMENT ON COLUMN ipintel.session_attribution.as_name IS 'Name of that AS (asn_inventory, current name).';
COMMENT ON COLUMN ipintel.session_attribution.country IS 'snapshot_country once known, else geo_country.';
COMMENT ON COLUMN ipintel.session_attribution.ip_type IS 'snapshot_ip_type once known, else ip_type.';
COMMENT ON COLUMN ipintel.session_attribution.is_scanner IS 'snapshot_is_scanner once known, else is_scanner.';
COMMENT ON COLUMN ipintel.session_attribution.from_snapshot IS 'true: the snapshot is complete and every attribution column comes from it.';

CREATE VIEW ipintel.asn_moves AS
SELECT h.ip,
       prev.asn AS from_asn,
       h.asn AS to_asn,
       lower(h.valid) AS moved_at,
       h.source
FROM ipintel.ip_asn_history h
JOIN ipintel.ip_asn_history prev
  ON prev.ip = h.ip AND upper(prev.valid) = lower(h.valid);
COMMENT ON VIEW ipintel.asn_moves IS
    'Every observed change of an IP''s origin ASN: from_asn until moved_at, to_asn from then on (NULL: allocated but unrouted).';
