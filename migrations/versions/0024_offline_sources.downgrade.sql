-- From migrations/versions/0024_offline_sources.downgrade.sql: back to 0023. IPinfo Lite and DB-IP
-- Lite leave the registry with their runs and failures. Their answers cannot leave without a
-- trace (ASN history, resolved columns, AS names): a database that recorded any refuses, in one line.
-- squawk-ignore-file ban-drop-function
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DO $$
DECLARE
    v_ips bigint;
BEGIN
    SELECT count(DISTINCT x.ip) INTO v_ips
    FROM (SELECT e.ip FROM ipintel.enrichment_state e WHERE e.source IN ('ipinfo', 'dbip')
          UNION ALL
          SELECT h.ip FROM ipintel.ip_asn_history h WHERE h.source IN ('ipinfo', 'dbip')) x;
    IF v_ips > 0 THEN
        RAISE EXCEPTION 'cannot downgrade below 0024: IPinfo Lite or DB-IP Lite answers are recorded for % IPs (enrichment_state, ip_asn_history), which 0023 cannot hold; restore a backup taken before 0024 instead', v_ips
            USING ERRCODE = 'dependent_objects_still_exist';
    END IF;
END;
$$;
DELETE FROM ipintel_staging.enrichment_results WHERE source IN ('ipinfo', 'dbip');
DELETE FROM ipintel_staging.enrichment_failures WHERE source IN ('ipinfo', 'dbip');
DELETE FROM ipintel.enrichment_failures WHERE source IN ('ipinfo', 'dbip');
DELETE FROM ipintel.api_budget WHERE source IN ('ipinfo', 'dbip');
DELETE FROM ipintel.enrichment_runs WHERE source IN ('ipinfo', 'dbip');
DELETE FROM ipintel.enrichment_policy WHERE source IN ('ipinfo', 'dbip');
UPDATE ipintel.enrichment_policy SET country_rank = 2 WHERE source = 'cymru' AND country_rank = 4;

CREATE OR REPLACE VIEW ipintel.snapshot_pending_sources AS
SELECT i.ip,
       p.source,
       p.snapshot_window,
       p.asn_rank,
       p.country_rank,
       p.is_scanner_rank,
       p.ip_type_rank
FROM ipintel.ip_inventory i
CROSS JOIN ipintel.enrichment_policy p
LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
-- an open failure that asking again cannot fix: the source declines the IP
LEFT JOIN ipintel.enrichment_failures f
       ON f.source = p.source AND f.ip = i.ip AND f.resolved_at IS NULL AND NOT f.retryable
WHERE p.enabled
  AND NOT i.is_bogon
  -- never answered, or its answer is stale (due again): a new session waits for a fresh one
  AND (e.ip IS NULL OR ipintel.answer_is_stale(p, e.fetched_at))
  AND f.ip IS NULL
  -- the policy's filters (as ips_due reads them); the session threshold is looked at only when set
  AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
  AND NOT (p.min_session_count IS NOT NULL AND ipintel.below_session_threshold(p, i))
  AND i.ip IN (SELECT s.source_ip FROM ipintel.session_summaries s WHERE s.snapshot_complete_at IS NULL);
COMMENT ON COLUMN ipintel.enrichment_policy.kind IS
    'offline_database (a local file, e.g. MaxMind .mmdb), remote_service (asked over the network, e.g. Team Cymru, GreyNoise) or reference_list (ranges or lists loaded from files).';
COMMENT ON COLUMN ipintel.enrichment_policy.country_rank IS 'Precedence of this source for geo_country (1 first; NULL: it gives none).';
COMMENT ON COLUMN ipintel.enrichment_policy.source IS 'Source name (lower case), e.g. maxmind, cymru, greynoise: the key every other table refers to.';
COMMENT ON COLUMN ipintel.enrichment_runs.status IS
    'running, succeeded, finished_with_failures, stopped (quota or budget spent: the rest stays due), failed (pass aborted, e.g. a broken database file), interrupted (killed; set by the next run) or skipped (not configured).';
COMMENT ON VIEW ipintel.snapshot_pending_sources IS
    'IPs with an incomplete snapshot and the enabled sources that have neither answered them (freshly) nor declined them, with each source''s snapshot_window and field ranks.';
COMMENT ON COLUMN ipintel.snapshot_backlog.waiting_for IS 'Enabled sources that have neither answered nor declined for the IP while their window is open.';

CREATE OR REPLACE FUNCTION ipintel.merge_maxmind(p_run_id bigint, p_batch_id bigint)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    -- The AS names of the ASN file, under this source's key in asn_inventory.sources; as_name is
    -- the first-ranked source's (ranked_as_name). Rows that would not change are skipped here in
    -- the SELECT (ON CONFLICT ... WHERE would still lock every conflicting row).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, sources)
    SELECT n.asn, n.facts ->> 'as_name', jsonb_build_object('maxmind', n.facts)
    FROM (
        SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
               (r.result ->> 'asn')::bigint AS asn,
               jsonb_build_object('as_name', r.result ->> 'as_org') AS facts
        FROM ipintel_staging.enrichment_results r
        WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL
        ORDER BY (r.result ->> 'asn')::bigint, r.fetched_at DESC
    ) n
    LEFT JOIN ipintel.asn_inventory cur ON cur.asn = n.asn
    WHERE cur.asn IS NULL OR cur.sources -> 'maxmind' IS DISTINCT FROM n.facts
    ORDER BY n.asn
    ON CONFLICT (asn) DO UPDATE SET
        as_name = coalesce(ipintel.ranked_as_name(a.sources || excluded.sources), a.as_name),
        sources = a.sources || excluded.sources,
        updated_at = now();
END;
$$;

DROP FUNCTION ipintel.dbip_facts(jsonb);
DROP FUNCTION ipintel.ipinfo_facts(jsonb);
DROP FUNCTION ipintel.merge_as_names(bigint, bigint);
DROP FUNCTION ipintel.record_as_names(text, bigint, text);
DROP FUNCTION ipintel.asn_country_facts(jsonb, text);
