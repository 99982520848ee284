-- From migrations/versions/0024_offline_sources.upgrade.sql (the ipinfo and dbip sections and the
-- shared pieces of sql/080_sources.sql, the registry rows of sql/070_enrichment.sql and
-- snapshot_pending_sources of sql/075_snapshots.sql, as of this revision)
-- IPinfo Lite and DB-IP Lite as registered offline sources (issue 11), MaxMind's AS-name merge
-- through the helper they share, Team Cymru's registration country ranked after geolocation,
-- and snapshots that do not wait for an offline database that is not installed.
-- Two registry rows, one rank, new functions; merge_maxmind and a view replaced (no lock on the tiers).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- The facts of an answer that says an ASN and a country and nothing else (an offline file of
-- ASN and geolocation): the ASN is an observation when the file's record names one (a JSON
-- number); a record without one says nothing about the ASN.
CREATE FUNCTION ipintel.asn_country_facts(p_asn jsonb, p_country text)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text)
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    SELECT CASE WHEN jsonb_typeof(p_asn) = 'number' THEN p_asn::text::bigint END,
           coalesce(jsonb_typeof(p_asn) = 'number', false),
           CASE WHEN p_country ~ '^[A-Z]{2}$' THEN p_country END,
           NULL::boolean,
           NULL::boolean,
           NULL::text;
END;
COMMENT ON FUNCTION ipintel.asn_country_facts(jsonb, text) IS
    'Facts of an answer that gives at most an ASN (observed when it is a JSON number) and a country (when it is an ISO 3166-1 alpha-2 code): the shared body of the facts functions of offline ASN and geolocation files.';

-- A merge step's AS names: the ASN (result ->> 'asn') and name (result ->> p_name_key) of each
-- answer of the batch, under p_source's key in asn_inventory.sources; as_name is the
-- first-ranked source's (ranked_as_name). Rows that would not change are skipped here in the
-- SELECT (ON CONFLICT ... WHERE would still lock every conflicting row).
CREATE FUNCTION ipintel.record_as_names(p_source text, p_batch_id bigint, p_name_key text)
    RETURNS void
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, sources)
    SELECT n.asn, n.facts ->> 'as_name', jsonb_build_object(p_source, n.facts)
    FROM (
        SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
               (r.result ->> 'asn')::bigint AS asn,
               jsonb_build_object('as_name', r.result ->> p_name_key) AS facts
        FROM ipintel_staging.enrichment_results r
        WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL
        ORDER BY (r.result ->> 'asn')::bigint, r.fetched_at DESC
    ) n
    LEFT JOIN ipintel.asn_inventory cur ON cur.asn = n.asn
    WHERE cur.asn IS NULL OR cur.sources -> p_source IS DISTINCT FROM n.facts
    ORDER BY n.asn
    ON CONFLICT (asn) DO UPDATE SET
        as_name = coalesce(ipintel.ranked_as_name(a.sources || excluded.sources), a.as_name),
        sources = a.sources || excluded.sources,
        updated_at = now();
END;
COMMENT ON FUNCTION ipintel.record_as_names(text, bigint, text) IS
    'The AS names of a staged batch (result ->> ''asn'', result ->> p_name_key) into asn_inventory.sources -> p_source -> ''as_name'', as_name by rank (ranked_as_name): the merge step of sources whose only AS fact is a name. Unchanged rows are not written.';

-- The merge step of a source whose answers give their AS as asn and as_name (IPinfo Lite, DB-IP
-- Lite): their AS names under the run's source.
CREATE FUNCTION ipintel.merge_as_names(p_run_id bigint, p_batch_id bigint)
    RETURNS void
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    SELECT ipintel.record_as_names(r.source, p_batch_id, 'as_name') FROM ipintel.enrichment_runs r WHERE r.run_id = p_run_id;
END;
COMMENT ON FUNCTION ipintel.merge_as_names(bigint, bigint) IS
    'A shared merge step (enrichment_policy.merge_function) for sources whose answers give asn and as_name: the AS names of the batch under the run''s source in asn_inventory.sources (record_as_names). Unchanged rows are not written.';

CREATE OR REPLACE FUNCTION ipintel.merge_maxmind(p_run_id bigint, p_batch_id bigint)
    RETURNS void
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    -- The AS names of the ASN file (as_org in the answer).
    SELECT ipintel.record_as_names('maxmind', p_batch_id, 'as_org');
END;

CREATE FUNCTION ipintel.ipinfo_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text)
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    -- The answer keeps IPinfo's field names: country_code is the ISO code (country, the name).
    SELECT * FROM ipintel.asn_country_facts(p_result -> 'asn', p_result ->> 'country_code');
END;
COMMENT ON FUNCTION ipintel.ipinfo_facts(jsonb) IS
    'Facts of an IPinfo Lite answer: the ASN (observed when the file''s record names one) and the geolocation country (country_code).';

-- dbip: DB-IP Lite (offline .mmdb: Country or City, and ASN; CC BY 4.0)
CREATE FUNCTION ipintel.dbip_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text)
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    SELECT * FROM ipintel.asn_country_facts(p_result -> 'asn', p_result ->> 'country');
END;
COMMENT ON FUNCTION ipintel.dbip_facts(jsonb) IS
    'Facts of a DB-IP Lite answer: the ASN (observed when the ASN file knows the IP) and the geolocation country.';

-- Geolocation first: Cymru's country is where the AS registered, not where the IP is.
UPDATE ipintel.enrichment_policy SET country_rank = 4 WHERE source = 'cymru' AND country_rank = 2;
INSERT INTO ipintel.enrichment_policy (source, ttl, skip_when_asn_known, kind, pass_order, merge_function,
                                       facts_function, asn_rank, country_rank, is_scanner_rank, is_riot_rank,
                                       ip_type_rank, as_name_rank) VALUES
    ('ipinfo', interval '7 days', false, 'offline_database', 12, 'ipintel.merge_as_names', 'ipintel.ipinfo_facts',
     3, 2, NULL, NULL, NULL, 3),
    ('dbip', interval '7 days', false, 'offline_database', 14, 'ipintel.merge_as_names', 'ipintel.dbip_facts',
     4, 3, NULL, NULL, NULL, 4);

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
  -- an offline database is not installed when its last pass was skipped (never run: awaited)
  AND (p.kind <> 'offline_database'
       OR (SELECT r.status FROM ipintel.enrichment_runs r WHERE r.source = p.source
           ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1) IS DISTINCT FROM 'skipped')
  AND NOT i.is_bogon
  -- never answered, or its answer is stale (due again): a new session waits for a fresh one
  AND (e.ip IS NULL OR ipintel.answer_is_stale(p, e.fetched_at))
  AND f.ip IS NULL
  -- the policy's filters (as ips_due reads them); the session threshold is looked at only when set
  AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
  AND NOT (p.min_session_count IS NOT NULL AND ipintel.below_session_threshold(p, i))
  AND i.ip IN (SELECT s.source_ip FROM ipintel.session_summaries s WHERE s.snapshot_complete_at IS NULL);
COMMENT ON VIEW ipintel.snapshot_pending_sources IS
    'IPs with an incomplete snapshot and the enabled sources that have neither answered them (freshly) nor declined them, with each source''s snapshot_window and field ranks. An offline database whose last pass was skipped (none of its files installed) is not waited for.';

COMMENT ON COLUMN ipintel.enrichment_policy.kind IS
    'offline_database (local files, e.g. MaxMind, IPinfo Lite or DB-IP Lite .mmdb), remote_service (asked over the network, e.g. Team Cymru, GreyNoise) or reference_list (ranges or lists loaded from files).';
COMMENT ON COLUMN ipintel.enrichment_policy.country_rank IS
    'Precedence of this source for geo_country (1 first; NULL: it gives none). By default the geolocation databases come first and Team Cymru''s registration country last.';
COMMENT ON COLUMN ipintel.enrichment_policy.source IS 'Source name (lower case), e.g. maxmind, ipinfo, dbip, cymru, greynoise: the key every other table refers to.';
COMMENT ON COLUMN ipintel.enrichment_runs.status IS
    'running, succeeded, finished_with_failures, stopped (quota or budget spent: the rest stays due), failed (pass aborted, e.g. a broken database file), interrupted (killed; set by the next run) or skipped (not configured: no API key, or an offline database with none of its files installed, which snapshots then do not wait for).';
COMMENT ON COLUMN ipintel.snapshot_backlog.waiting_for IS
    'Enabled (and, for offline databases, installed) sources that have neither answered nor declined for the IP while their window is open.';
