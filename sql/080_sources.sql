-- From sql/080_sources.sql
-- Each source's own SQL: its facts function (what one answer document says, in typed columns:
-- enrichment_policy.facts_function) and, when it has one, its own merge step
-- (enrichment_policy.merge_function). Everything else is generic (sql/070_enrichment.sql):
-- merge_batch records the answers, calls the merge step, and resolves the facts across sources
-- by the registry's ranks. Adding a source: a registry row, functions like these, a Python pass
-- class and a test fake; see the README, "Adding a source".

------------------------------------------------------------------------------------------
-- Pieces several sources share (they name no source: the caller passes its own)
------------------------------------------------------------------------------------------
-- The facts of an answer that says an ASN and a country and nothing else (an offline file of
-- ASN and geolocation): the ASN is an observation when the file's record names one (a JSON
-- number); a record without one says nothing about the ASN.
CREATE FUNCTION ipintel.asn_country_facts(p_asn jsonb, p_country text)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text,
                   is_known_attacker boolean, threatfeeds text[])
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    SELECT CASE WHEN jsonb_typeof(p_asn) = 'number' THEN p_asn::text::bigint END,
           coalesce(jsonb_typeof(p_asn) = 'number', false),
           CASE WHEN p_country ~ '^[A-Z]{2}$' THEN p_country END,
           NULL::boolean,
           NULL::boolean,
           NULL::text,
           NULL::boolean,
           NULL::text[];
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

------------------------------------------------------------------------------------------
-- maxmind: offline GeoIP2 / GeoLite2 City (or Country) and ASN databases
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.maxmind_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text,
                   is_known_attacker boolean, threatfeeds text[])
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    -- An ASN is observed only when an ASN database was read and knows the IP: the City file
    -- alone, or "not in the ASN file", says nothing about routing.
    SELECT (p_result ->> 'asn')::bigint,
           jsonb_typeof(p_result -> 'asn_db') = 'object' AND jsonb_typeof(p_result -> 'asn') = 'number',
           CASE WHEN p_result ->> 'country' ~ '^[A-Z]{2}$' THEN p_result ->> 'country' END,
           NULL::boolean,
           NULL::boolean,
           CASE WHEN (p_result ->> 'is_anonymous_proxy')::boolean THEN 'anonymizer' END,
           NULL::boolean,
           NULL::text[];
END;
COMMENT ON FUNCTION ipintel.maxmind_facts(jsonb) IS
    'Facts of a MaxMind answer: the ASN (observed only when an ASN database was read and knows the IP), the geolocation country, anonymizer for an anonymous proxy.';

CREATE FUNCTION ipintel.merge_maxmind(p_run_id bigint, p_batch_id bigint)
    RETURNS void
    LANGUAGE sql
    SET search_path = ''
BEGIN ATOMIC
    -- The AS names of the ASN file (as_org in the answer).
    SELECT ipintel.record_as_names('maxmind', p_batch_id, 'as_org');
END;
COMMENT ON FUNCTION ipintel.merge_maxmind(bigint, bigint) IS
    'MaxMind''s own merge step (called by merge_batch): the AS names of the ASN database into asn_inventory.sources -> maxmind (as_name by rank). Unchanged rows are not written.';

------------------------------------------------------------------------------------------
-- ipinfo: IPinfo Lite (one offline .mmdb: country and ASN; CC BY-SA 4.0). Its merge step is the
-- shared merge_as_names.
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.ipinfo_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text,
                   is_known_attacker boolean, threatfeeds text[])
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    -- The answer keeps IPinfo's field names: country_code is the ISO code (country, the name).
    SELECT * FROM ipintel.asn_country_facts(p_result -> 'asn', p_result ->> 'country_code');
END;
COMMENT ON FUNCTION ipintel.ipinfo_facts(jsonb) IS
    'Facts of an IPinfo Lite answer: the ASN (observed when the file''s record names one) and the geolocation country (country_code).';

------------------------------------------------------------------------------------------
-- dbip: DB-IP Lite (offline .mmdb: Country or City, and ASN; CC BY 4.0). Its merge step is the
-- shared merge_as_names.
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.dbip_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text,
                   is_known_attacker boolean, threatfeeds text[])
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    SELECT * FROM ipintel.asn_country_facts(p_result -> 'asn', p_result ->> 'country');
END;
COMMENT ON FUNCTION ipintel.dbip_facts(jsonb) IS
    'Facts of a DB-IP Lite answer: the ASN (observed when the ASN file knows the IP) and the geolocation country.';

------------------------------------------------------------------------------------------
-- cymru: Team Cymru IP-to-ASN bulk whois (live BGP origin, RIR registration)
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.cymru_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text,
                   is_known_attacker boolean, threatfeeds text[])
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    -- An answer is an observation unless Cymru had no match at all (found: false): an origin
    -- ASN, or NA (allocated but not announced), which is "unrouted".
    SELECT (p_result ->> 'asn')::bigint,
           coalesce((p_result ->> 'found')::boolean, true),
           CASE WHEN upper(p_result ->> 'registered_country') ~ '^[A-Z]{2}$'
                THEN upper(p_result ->> 'registered_country') END,
           NULL::boolean,
           NULL::boolean,
           CASE WHEN coalesce((p_result ->> 'found')::boolean, true)
                     AND jsonb_typeof(p_result -> 'asn') IS DISTINCT FROM 'number' THEN 'unrouted' END,
           NULL::boolean,
           NULL::text[];
END;
COMMENT ON FUNCTION ipintel.cymru_facts(jsonb) IS
    'Facts of a Team Cymru answer: the origin ASN (an observation unless there was no match; NA = allocated but not announced = unrouted) and the registration country.';

CREATE FUNCTION ipintel.merge_cymru(p_run_id bigint, p_batch_id bigint)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    -- One row per origin ASN seen in the batch; rows whose facts did not change are skipped here
    -- in the SELECT (ON CONFLICT ... WHERE would still lock every conflicting row).
    INSERT INTO ipintel.asn_inventory AS a (asn, as_name, as_country, rir, allocated, sources)
    SELECT n.asn, nullif(n.facts ->> 'as_name', ''), n.as_country, n.rir, n.allocated,
           jsonb_build_object('cymru', n.facts)
    FROM (
        SELECT DISTINCT ON ((r.result ->> 'asn')::bigint)
               (r.result ->> 'asn')::bigint AS asn,
               CASE WHEN upper(r.result ->> 'registered_country') ~ '^[A-Z]{2}$'
                    THEN upper(r.result ->> 'registered_country') END AS as_country,
               CASE WHEN lower(r.result ->> 'registry') ~ '^[a-z]+$' THEN lower(r.result ->> 'registry') END AS rir,
               (r.result ->> 'allocated')::date AS allocated,
               jsonb_build_object('as_name', r.result ->> 'as_name',
                                  'registered_country', r.result ->> 'registered_country',
                                  'registry', r.result ->> 'registry',
                                  'allocated', r.result ->> 'allocated') AS facts
        FROM ipintel_staging.enrichment_results r
        WHERE r.batch_id = p_batch_id AND r.result ->> 'asn' IS NOT NULL
        ORDER BY (r.result ->> 'asn')::bigint, r.fetched_at DESC
    ) n
    LEFT JOIN ipintel.asn_inventory cur ON cur.asn = n.asn
    WHERE cur.asn IS NULL
       OR (cur.as_country, cur.rir, cur.allocated, cur.sources -> 'cymru')
          IS DISTINCT FROM (n.as_country, n.rir, n.allocated, n.facts)
    ORDER BY n.asn
    ON CONFLICT (asn) DO UPDATE SET
        as_name = coalesce(ipintel.ranked_as_name(a.sources || excluded.sources), a.as_name),
        as_country = excluded.as_country,
        rir = excluded.rir,
        allocated = excluded.allocated,
        sources = a.sources || excluded.sources,
        updated_at = now();
END;
$$;
COMMENT ON FUNCTION ipintel.merge_cymru(bigint, bigint) IS
    'Team Cymru''s own merge step (called by merge_batch): the AS facts of the batch (name, registration country, RIR, allocation date) into asn_inventory (as_name by rank). Unchanged rows are not written.';

------------------------------------------------------------------------------------------
-- greynoise: GreyNoise community / v3 API (internet scanners, benign business services)
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.greynoise_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text,
                   is_known_attacker boolean, threatfeeds text[])
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    SELECT NULL::bigint,
           false,
           NULL::text,
           (p_result ->> 'noise')::boolean,
           (p_result ->> 'riot')::boolean,
           CASE WHEN (p_result ->> 'riot')::boolean THEN 'riot'
                WHEN (p_result ->> 'noise')::boolean THEN 'scanner' END,
           NULL::boolean,
           NULL::text[];
END;
COMMENT ON FUNCTION ipintel.greynoise_facts(jsonb) IS
    'Facts of a GreyNoise answer: noise (is_scanner), riot (a known benign business service) and the classification riot or scanner. An answer without them (e.g. IPv6 not supported) says nothing.';

------------------------------------------------------------------------------------------
-- dshield: SANS Internet Storm Center / DShield IP API (attack reports, threat feeds). Its merge
-- step is the shared merge_as_names: its answers give the AS as asn and as_name.
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.dshield_facts(p_result jsonb)
    RETURNS TABLE (asn bigint, asn_observed boolean, country text, is_scanner boolean, is_riot boolean, ip_type text,
                   is_known_attacker boolean, threatfeeds text[])
    LANGUAGE sql
    IMMUTABLE
BEGIN ATOMIC
    -- The AS DShield reports and that AS's country are ranked after every other source's: a
    -- fallback. An answer (it has "count", null when DShield holds no report) says whether the
    -- IP is a known attacker; its threat feeds are the keys of "threatfeeds" (an empty list or
    -- object: none).
    SELECT a.asn, a.asn_observed, a.country, a.is_scanner, a.is_riot, a.ip_type,
           CASE WHEN jsonb_typeof(p_result -> 'count') = 'number' THEN (p_result ->> 'count')::numeric > 0
                WHEN p_result ? 'count' THEN false END,
           CASE WHEN p_result ? 'count'
                THEN ARRAY(SELECT f.feed FROM jsonb_object_keys(CASE jsonb_typeof(p_result -> 'threatfeeds')
                                                                     WHEN 'object' THEN p_result -> 'threatfeeds'
                                                                     ELSE '{}'::jsonb END) AS f(feed)
                           ORDER BY f.feed) END
    FROM ipintel.asn_country_facts(p_result -> 'asn', upper(p_result ->> 'as_country')) a;
END;
COMMENT ON FUNCTION ipintel.dshield_facts(jsonb) IS
    'Facts of a DShield answer: is_known_attacker (reports > 0; false when DShield holds no report) and the names of the threat feeds listing the IP; the ASN it reports (observed when a number) and that AS''s country, ranked last. An answer without a count says nothing.';
