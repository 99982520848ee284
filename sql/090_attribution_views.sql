-- From sql/090_attribution_views.sql
-- Views for analysts: attribution per session (point in time) and ASN moves over time.

-- Each field is the snapshot's once known; the IP's current row is looked up only for the
-- sessions whose snapshot does not know that field yet (a function call in the CASE's other
-- branch, not a join of every session): a query that reads only snapshot-known fields never
-- touches ip_inventory, and one that does not read as_name never touches asn_inventory (the
-- planner drops that LEFT JOIN). The lookup is a function of declared COST 1, not a subquery:
-- the planner costs a CASE's every branch as if it ran for every row, and a subquery's index
-- scan, counted once per session, made big windows look expensive enough to JIT-compile.
CREATE FUNCTION ipintel.ip_inventory_row(p_ip inet)
    RETURNS ipintel.ip_inventory
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
    COST 1
RETURN (SELECT i FROM ipintel.ip_inventory i WHERE i.ip = p_ip);
COMMENT ON FUNCTION ipintel.ip_inventory_row(inet) IS
    'The ip_inventory row of p_ip (NULL when none): session_attribution''s fallback for the fields a snapshot does not know yet.';

CREATE VIEW ipintel.session_attribution AS
SELECT s.session_id,
       s.sensor,
       s.first_event_at,
       s.last_event_at,
       s.protocol,
       s.source_ip,
       x.asn,
       a.as_name,
       x.country,
       x.ip_type,
       x.is_scanner,
       s.snapshot_complete_at IS NOT NULL AS from_snapshot,
       s.login_attempts,
       s.login_successes,
       s.command_count,
       s.download_count
FROM ipintel.session_summaries s
CROSS JOIN LATERAL (
    SELECT CASE WHEN s.snapshot_asn_source IS NOT NULL THEN s.snapshot_asn
                ELSE (ipintel.ip_inventory_row(s.source_ip)).current_asn END AS asn,
           CASE WHEN s.snapshot_country_source IS NOT NULL THEN s.snapshot_country
                ELSE (ipintel.ip_inventory_row(s.source_ip)).geo_country END AS country,
           CASE WHEN s.snapshot_ip_type_source IS NOT NULL THEN s.snapshot_ip_type
                ELSE (ipintel.ip_inventory_row(s.source_ip)).ip_type END AS ip_type,
           CASE WHEN s.snapshot_is_scanner_source IS NOT NULL THEN s.snapshot_is_scanner
                ELSE (ipintel.ip_inventory_row(s.source_ip)).is_scanner END AS is_scanner) x
LEFT JOIN ipintel.asn_inventory a ON a.asn = x.asn;
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

-- Where the sources disagree about a session's origin AS: routing history at its day, the
-- ip_asn_history range at its time, and what each source last said of the IP.
CREATE VIEW ipintel.asn_disagreements AS
SELECT s.session_id,
       s.source_ip,
       s.first_event_at,
       r.asn AS routing_asn,
       r.dataset || ':' || r.taken_on::text AS routing_snapshot,
       h.asn AS history_asn,
       h.source AS history_source,
       e.source_asns,
       s.snapshot_asn,
       s.snapshot_asn_source
FROM ipintel.session_summaries s
LEFT JOIN LATERAL ipintel.routing_asns(ARRAY[s.source_ip], ARRAY[(s.first_event_at AT TIME ZONE 'UTC')::date]) r ON true
LEFT JOIN ipintel.ip_asn_history h ON h.ip = s.source_ip AND h.valid @> s.first_event_at
LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(st.source, st.asn ORDER BY st.source) AS source_asns,
           array_agg(DISTINCT st.asn) FILTER (WHERE st.asn IS NOT NULL) AS asns
    FROM ipintel.enrichment_state st
    WHERE st.ip = s.source_ip AND st.asn_observed) e ON true
WHERE (SELECT count(DISTINCT x.asn)
       FROM unnest(array_cat(ARRAY[r.asn, h.asn], e.asns)) AS x(asn)
       WHERE x.asn IS NOT NULL) > 1;
COMMENT ON VIEW ipintel.asn_disagreements IS
    'Sessions whose origin AS differs between routing history (at the session''s day), ip_asn_history (at its time) and what the sources last observed for the IP. Filter by first_event_at or source_ip: it looks up routing history per session.';
COMMENT ON COLUMN ipintel.asn_disagreements.routing_asn IS 'Origin AS in routing history at the session''s day (routing_asns).';
COMMENT ON COLUMN ipintel.asn_disagreements.routing_snapshot IS 'The routing snapshot that gave it: dataset:day.';
COMMENT ON COLUMN ipintel.asn_disagreements.history_asn IS 'ip_asn_history''s ASN at the session''s time.';
COMMENT ON COLUMN ipintel.asn_disagreements.history_source IS 'The source whose observation opened that range.';
COMMENT ON COLUMN ipintel.asn_disagreements.source_asns IS 'What each source last observed for the IP: {source: asn} (null: allocated, not routed).';
COMMENT ON COLUMN ipintel.asn_disagreements.snapshot_asn IS 'What the session''s snapshot says.';
COMMENT ON COLUMN ipintel.asn_disagreements.snapshot_asn_source IS 'Where the snapshot''s ASN came from.';

-- The enrichment document each session's snapshot took (issue 15, revision 0035): stored once per
-- distinct document in enrichment_documents, read back here per session.
CREATE VIEW ipintel.session_documents AS
SELECT s.session_id,
       s.first_event_at,
       s.source_ip,
       s.snapshot_at,
       s.snapshot_complete_at,
       s.snapshot_document,
       d.document AS snapshot_enrichment
FROM ipintel.session_summaries s
LEFT JOIN ipintel.enrichment_documents d ON d.document_id = s.snapshot_document
WHERE s.snapshot_at IS NOT NULL;
COMMENT ON VIEW ipintel.session_documents IS
    'One row per session with a snapshot: the full ip_inventory.enrichment document as it was when its snapshot was last filled (the snapshot_* columns of session_summaries hold what was taken from it). The document is stored once per distinct version in enrichment_documents and shared by the sessions that took it; join on session_id for the rest of the session (session_attribution, session_summaries).';
COMMENT ON COLUMN ipintel.session_documents.snapshot_document IS 'session_summaries.snapshot_document: the document''s number in enrichment_documents (equal numbers, equal documents).';
COMMENT ON COLUMN ipintel.session_documents.snapshot_enrichment IS
    'The document as it was: every source''s answer then, keyed by source (ip_inventory.enrichment''s form). What session_summaries.snapshot_enrichment held before revision 0036.';
