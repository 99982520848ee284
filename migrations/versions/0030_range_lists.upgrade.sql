-- From migrations/versions/0030_range_lists.upgrade.sql (sql/073_range_lists.sql,
-- sql/074_ip_classes.sql, ip_types and the new columns of sql/030_tiers.sql; apply_answers,
-- answer_is_stale, ips_due and enrichment_coverage of sql/070_enrichment.sql; the snapshot
-- functions of sql/075_snapshots.sql; verify_snapshots and verify_integrity of
-- sql/095_analyst_views.sql, as of this revision)
-- Range lists (issue 12): the cloud, CDN and Tor lists and the curated hosting-ASN list as dated
-- snapshots, run-length like routing history and geolocation builds (merge_dated_runs); the
-- classes of ip_type with their precedence, decided in SQL (ip_classes) by every merge and after
-- every load; ip_provider and ip_class_basis on ip_inventory, snapshot_ip_provider on the
-- sessions. New tables and functions, merges replaced; then new nullable columns (metadata only)
-- and a CHECK NOT VALID: brief locks. No foreign key on the class columns (the merge path's
-- policy since 0026): verify_integrity checks them. The backfill of the classes is 0031 (post).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- The classes of ip_inventory.ip_type, in the order that decides between them: an IP that
-- qualifies for several gets the one with the lowest precedence (ipintel.ip_classes). Cloud and
-- CDN share a level: between them the most specific range wins.
CREATE TABLE ipintel.ip_types (
    ip_type     text     NOT NULL,
    precedence  bigint   NOT NULL,
    ttl         interval,
    description text     NOT NULL,
    CONSTRAINT ip_types_pkey PRIMARY KEY (ip_type),
    CONSTRAINT ip_types_name_is_a_lower_case_name CHECK (ip_type ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT ip_types_ttl_is_positive CHECK (ttl > interval '0')
);
COMMENT ON TABLE ipintel.ip_types IS
    'The infrastructure classes of ip_inventory.ip_type: what each means, which wins when an IP qualifies for several (precedence), and how soon the IPs of a class are asked again (ttl). Edit ttl to change the freshness policy.';
COMMENT ON COLUMN ipintel.ip_types.ip_type IS 'Class name, the value of ip_inventory.ip_type and session_summaries.snapshot_ip_type.';
COMMENT ON COLUMN ipintel.ip_types.precedence IS
    'Lower wins: an IP in several classes gets the one with the lowest precedence; within one level, the most specific range (then the list''s rank).';
COMMENT ON COLUMN ipintel.ip_types.ttl IS
    'When set, the answers of every remote source for an IP of this class are stale after ttl instead of the source''s own (enrichment_policy.ttl): volatile infrastructure (rented cloud machines, VPN exits) is asked again sooner, residential lines later. NULL: the source''s ttl.';
COMMENT ON COLUMN ipintel.ip_types.description IS 'What the class means and what decides it.';
INSERT INTO ipintel.ip_types (ip_type, precedence, ttl, description) VALUES
    ('bogon', 1, NULL, 'Special-purpose or not globally routable address (RFC 6890): never sent to a source.'),
    ('tor', 2, interval '7 days', 'A Tor exit relay, in a Tor exit list of the day.'),
    ('cloud', 3, interval '7 days', 'In a cloud provider''s published ranges (AWS, Google Cloud, Azure, Oracle, DigitalOcean...): a rented machine.'),
    ('cdn', 3, interval '7 days', 'In a CDN''s published ranges (Cloudflare): a proxy or worker of the CDN.'),
    ('hosting', 4, interval '7 days', 'Announced by an AS in the curated hosting-ASN list: a hosting or VPS provider.'),
    ('riot', 5, NULL, 'A known benign business service, by a source that says (GreyNoise RIOT).'),
    ('scanner', 6, NULL, 'Seen scanning the internet, by a source that says (GreyNoise noise).'),
    ('anonymizer', 7, interval '7 days', 'An anonymous proxy or VPN, by a source that says (MaxMind).'),
    ('residential', 8, interval '30 days', 'Announced by an AS whose name reads as a consumer access network (ipintel.as_name_looks_residential): a guess from the name.'),
    ('unrouted', 9, NULL, 'Allocated but not announced in BGP, by a source that says (Team Cymru NA).'),
    ('routed', 10, NULL, 'Announced by a known AS, nothing more specific known.'),
    ('unknown', 11, NULL, 'No source has said anything yet.');

-- Dated range lists: the address ranges cloud and CDN providers publish (AWS ip-ranges.json,
-- Google Cloud cloud.json, Azure Service Tags, Cloudflare ips-v4/ips-v6, Oracle
-- public_ip_ranges.json, DigitalOcean geo/google.csv), the Tor exit lists, and the curated
-- hosting-ASN list kept with ipintel. Each file loaded by `ipintel ranges load` is the snapshot
-- of its list on its day, stored run-length like routing history (merge_dated_runs,
-- sql/072_routing.sql), so an IP is classified as of any day a snapshot covers: today for
-- ip_inventory, the session's day for the snapshots.

------------------------------------------------------------------------------------------
-- The lists, their snapshots and entries
------------------------------------------------------------------------------------------
CREATE TABLE ipintel.range_lists (
    list        text     NOT NULL,
    ip_type     text     NOT NULL,
    provider    text,
    holds       text     NOT NULL DEFAULT 'ranges',
    max_age     interval,
    rank        bigint   NOT NULL,
    CONSTRAINT range_lists_pkey PRIMARY KEY (list),
    CONSTRAINT range_lists_rank_key UNIQUE (rank),
    CONSTRAINT range_lists_ip_type_fkey FOREIGN KEY (ip_type) REFERENCES ipintel.ip_types (ip_type),
    CONSTRAINT range_lists_name_is_a_lower_case_name CHECK (list ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT range_lists_holds_ranges_or_asns CHECK (holds IN ('ranges', 'asns')),
    CONSTRAINT range_lists_max_age_is_positive CHECK (max_age > interval '0')
);
COMMENT ON TABLE ipintel.range_lists IS
    'The range lists ipintel reads (one per publisher and file kind: `ipintel ranges load --kind`), with the class their entries give, the provider they name, how old a snapshot may be to classify a day, and which list wins a tie.';
COMMENT ON COLUMN ipintel.range_lists.list IS 'List name: the kind of file `ipintel ranges load` reads (aws, gcp, azure, cloudflare_ipv4, ...).';
COMMENT ON COLUMN ipintel.range_lists.ip_type IS 'The class an IP in the list gets (ip_types): tor, cloud, cdn, hosting.';
COMMENT ON COLUMN ipintel.range_lists.provider IS
    'ip_inventory.ip_provider of an IP in the list (aws, gcp, azure, oracle, digitalocean, cloudflare, tor); NULL for an ASN list, whose entries name their AS.';
COMMENT ON COLUMN ipintel.range_lists.holds IS
    'ranges: address ranges (listed_ranges), an IP in one is in the list; asns: AS numbers (listed_asns), an IP announced by one is.';
COMMENT ON COLUMN ipintel.range_lists.max_age IS
    'A snapshot taken more than this before a day does not classify that day (a list nobody refreshes stops counting); NULL: no limit (the curated hosting-ASN list).';
COMMENT ON COLUMN ipintel.range_lists.rank IS 'Between two entries of equal class and prefix length, the list ranked first wins (1 first).';
INSERT INTO ipintel.range_lists (list, ip_type, provider, holds, max_age, rank) VALUES
    ('tor_exit_addresses', 'tor', 'tor', 'ranges', interval '7 days', 1),
    ('tor_bulk_exit_list', 'tor', 'tor', 'ranges', interval '7 days', 2),
    ('aws', 'cloud', 'aws', 'ranges', interval '30 days', 3),
    ('gcp', 'cloud', 'gcp', 'ranges', interval '30 days', 4),
    ('azure', 'cloud', 'azure', 'ranges', interval '30 days', 5),
    ('oracle', 'cloud', 'oracle', 'ranges', interval '30 days', 6),
    ('digitalocean', 'cloud', 'digitalocean', 'ranges', interval '30 days', 7),
    ('cloudflare_ipv4', 'cdn', 'cloudflare', 'ranges', interval '30 days', 8),
    ('cloudflare_ipv6', 'cdn', 'cloudflare', 'ranges', interval '30 days', 9),
    ('hosting_asns', 'hosting', NULL, 'asns', NULL, 10);

CREATE TABLE ipintel.range_snapshots (
    snapshot_id  bigint      GENERATED ALWAYS AS IDENTITY,
    list         text        NOT NULL,
    taken_on     date        NOT NULL,
    file         text        NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT now(),
    entries      bigint      NOT NULL DEFAULT 0,
    CONSTRAINT range_snapshots_pkey PRIMARY KEY (snapshot_id),
    CONSTRAINT range_snapshots_list_taken_on_key UNIQUE (list, taken_on),
    CONSTRAINT range_snapshots_list_fkey FOREIGN KEY (list) REFERENCES ipintel.range_lists (list),
    CONSTRAINT range_snapshots_entries_are_not_negative CHECK (entries >= 0)
);
COMMENT ON TABLE ipintel.range_snapshots IS 'Every range-list snapshot loaded: one per list and day.';
COMMENT ON COLUMN ipintel.range_snapshots.snapshot_id IS 'Snapshot number.';
COMMENT ON COLUMN ipintel.range_snapshots.list IS 'The list it belongs to (range_lists).';
COMMENT ON COLUMN ipintel.range_snapshots.taken_on IS
    'The day the list was published (from the file: AWS createDate, Google creationTime, Oracle last_updated_timestamp, the latest Tor Published; else the file name or --date).';
COMMENT ON COLUMN ipintel.range_snapshots.file IS 'The file it was loaded from (as given to ipintel ranges load).';
COMMENT ON COLUMN ipintel.range_snapshots.loaded_at IS 'When ipintel ranges load merged it.';
COMMENT ON COLUMN ipintel.range_snapshots.entries IS 'Distinct entries (ranges, or ASNs) in the snapshot.';

-- Entries are NOT NULL to the last column ('' = not given): the run-length merge matches them
-- with =, which the unique index serves.
CREATE TABLE ipintel.listed_ranges (
    list         text      NOT NULL,
    prefix       cidr      NOT NULL,
    service      text      NOT NULL DEFAULT '',
    region       text      NOT NULL DEFAULT '',
    valid        daterange NOT NULL,
    prefix_range public.iprange NOT NULL GENERATED ALWAYS AS (public.iprange(prefix)) STORED,
    CONSTRAINT listed_ranges_list_fkey FOREIGN KEY (list) REFERENCES ipintel.range_lists (list),
    CONSTRAINT listed_ranges_valid_is_bounded_below CHECK (NOT lower_inf(valid) AND NOT isempty(valid))
);
COMMENT ON TABLE ipintel.listed_ranges IS
    'Range-list history, run-length: the range (with its service and region) was in every snapshot of the list taken on a day in valid. A range listed for several services has one row per service.';
COMMENT ON COLUMN ipintel.listed_ranges.list IS 'The list (range_lists).';
COMMENT ON COLUMN ipintel.listed_ranges.prefix IS 'The published range (IPv4 or IPv6; a Tor exit is a /32 or /128).';
COMMENT ON COLUMN ipintel.listed_ranges.service IS
    'The provider''s service for the range (AWS service, Google Cloud service, Azure systemService, Oracle tag); '''' when the list names none (or only the provider, as AWS''s AMAZON).';
COMMENT ON COLUMN ipintel.listed_ranges.region IS
    'The provider''s region (AWS region, Google scope, Azure region, Oracle region, DigitalOcean region code); '''' when the list names none.';
COMMENT ON COLUMN ipintel.listed_ranges.valid IS
    'The days of the consecutive snapshots that listed it: from the first to the last (upper bound exclusive); unbounded above while the list''s latest snapshot still has it.';
COMMENT ON COLUMN ipintel.listed_ranges.prefix_range IS 'Generated: the prefix as an ip4r iprange, for the GiST containment lookups.';
CREATE UNIQUE INDEX listed_ranges_run_key ON ipintel.listed_ranges (list, prefix, service, region, lower(valid));
COMMENT ON INDEX ipintel.listed_ranges_run_key IS 'One run per entry and first day.';
-- The range alone, the day a filter on the few runs of each range found, as prefix_origins'
-- (revision 0029: with `valid` in the key the GiST was slower to load and no faster to probe).
CREATE INDEX listed_ranges_prefix_range_idx ON ipintel.listed_ranges USING gist (prefix_range);
COMMENT ON INDEX ipintel.listed_ranges_prefix_range_idx IS
    'Which ranges contain an address (the day is checked on the rows found): ip4r''s own GiST operator class, as prefix_origins.';

CREATE TABLE ipintel.listed_asns (
    list    text      NOT NULL,
    asn     bigint    NOT NULL,
    name    text      NOT NULL,
    source  text      NOT NULL,
    valid   daterange NOT NULL,
    CONSTRAINT listed_asns_list_fkey FOREIGN KEY (list) REFERENCES ipintel.range_lists (list),
    CONSTRAINT listed_asns_asn_is_32_bit CHECK (asn BETWEEN 0 AND 4294967295),
    CONSTRAINT listed_asns_valid_is_bounded_below CHECK (NOT lower_inf(valid) AND NOT isempty(valid))
);
COMMENT ON TABLE ipintel.listed_asns IS
    'ASN-list history, run-length (the curated hosting-ASN list): the AS, with the name and source given, was in every snapshot of the list taken on a day in valid.';
COMMENT ON COLUMN ipintel.listed_asns.list IS 'The list (range_lists, holds = asns).';
COMMENT ON COLUMN ipintel.listed_asns.asn IS 'The AS number.';
COMMENT ON COLUMN ipintel.listed_asns.name IS 'Who runs the AS, as the list names it: ip_inventory.ip_provider of its IPs.';
COMMENT ON COLUMN ipintel.listed_asns.source IS 'Where the list''s maintainers found that the AS is a hosting provider (a URL).';
COMMENT ON COLUMN ipintel.listed_asns.valid IS 'The days of the consecutive snapshots that listed it (upper bound exclusive; unbounded above while the latest does).';
CREATE UNIQUE INDEX listed_asns_run_key ON ipintel.listed_asns (list, asn, name, source, lower(valid));
COMMENT ON INDEX ipintel.listed_asns_run_key IS 'One run per entry and first day.';
CREATE INDEX listed_asns_asn_idx ON ipintel.listed_asns (asn);

CREATE UNLOGGED TABLE ipintel_staging.listed_ranges (
    batch_id bigint NOT NULL,
    prefix   cidr   NOT NULL,
    service  text   NOT NULL,
    region   text   NOT NULL
);
COMMENT ON TABLE ipintel_staging.listed_ranges IS 'Staging for load_range_snapshot: the ranges of one file.';
CREATE INDEX listed_ranges_batch_id_idx ON ipintel_staging.listed_ranges (batch_id);

CREATE UNLOGGED TABLE ipintel_staging.listed_asns (
    batch_id bigint NOT NULL,
    asn      bigint NOT NULL,
    name     text   NOT NULL,
    source   text   NOT NULL
);
COMMENT ON TABLE ipintel_staging.listed_asns IS 'Staging for load_range_snapshot: the ASNs of one file (an ASN list).';
CREATE INDEX listed_asns_batch_id_idx ON ipintel_staging.listed_asns (batch_id);

-- Merges one staged file as the snapshot of p_list taken on p_taken_on: its entries into the
-- runs (merge_dated_runs), its count. A snapshot loaded before changes nothing.
CREATE FUNCTION ipintel.load_range_snapshot(p_list text, p_taken_on date, p_file text, p_batch_id bigint)
    RETURNS TABLE (snapshot_id bigint, loaded boolean, entries bigint, opened bigint, closed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_holds text;
    v_snapshot bigint;
    v_prev date;
    v_next date;
    v_entries bigint;
    v_opened bigint;
    v_closed bigint;
BEGIN
    -- One load of a list at a time (its runs are read, then written).
    SELECT l.holds INTO v_holds FROM ipintel.range_lists l WHERE l.list = p_list FOR UPDATE;
    IF v_holds IS NULL THEN
        RAISE EXCEPTION 'unknown range list %', p_list USING ERRCODE = 'invalid_parameter_value',
            HINT = 'the lists are the rows of ipintel.range_lists';
    END IF;

    INSERT INTO ipintel.range_snapshots (list, taken_on, file)
    VALUES (p_list, p_taken_on, p_file)
    ON CONFLICT (list, taken_on) DO NOTHING
    RETURNING range_snapshots.snapshot_id INTO v_snapshot;
    IF v_snapshot IS NOT NULL THEN
        SELECT max(s.taken_on) FILTER (WHERE s.taken_on < p_taken_on), min(s.taken_on) FILTER (WHERE s.taken_on > p_taken_on)
        INTO v_prev, v_next
        FROM ipintel.range_snapshots s WHERE s.list = p_list;
        IF v_holds = 'asns' THEN
            SELECT count(*) INTO v_entries
            FROM (SELECT DISTINCT a.asn, a.name, a.source FROM ipintel_staging.listed_asns a WHERE a.batch_id = p_batch_id) e;
            SELECT m.opened, m.closed INTO v_opened, v_closed
            FROM ipintel.merge_dated_runs('ipintel.listed_asns', 'ipintel_staging.listed_asns', 'list', p_list,
                                          ARRAY['asn', 'name', 'source'], p_batch_id, p_taken_on, v_prev, v_next) m;
        ELSE
            SELECT count(*) INTO v_entries
            FROM (SELECT DISTINCT r.prefix, r.service, r.region FROM ipintel_staging.listed_ranges r
                  WHERE r.batch_id = p_batch_id) e;
            SELECT m.opened, m.closed INTO v_opened, v_closed
            FROM ipintel.merge_dated_runs('ipintel.listed_ranges', 'ipintel_staging.listed_ranges', 'list', p_list,
                                          ARRAY['prefix', 'service', 'region'], p_batch_id, p_taken_on, v_prev,
                                          v_next) m;
        END IF;
        UPDATE ipintel.range_snapshots s SET entries = v_entries WHERE s.snapshot_id = v_snapshot;
    END IF;

    DELETE FROM ipintel_staging.listed_ranges r WHERE r.batch_id = p_batch_id;
    DELETE FROM ipintel_staging.listed_asns a WHERE a.batch_id = p_batch_id;
    IF v_snapshot IS NULL THEN
        -- Loaded before: nothing changes.
        RETURN QUERY SELECT s.snapshot_id, false, s.entries, 0::bigint, 0::bigint
                     FROM ipintel.range_snapshots s WHERE s.list = p_list AND s.taken_on = p_taken_on;
        RETURN;
    END IF;
    -- Every IP is classified by joining against these tables: the planner must know their size
    -- right after a load.
    ANALYZE ipintel.listed_ranges;
    ANALYZE ipintel.listed_asns;
    RETURN QUERY SELECT v_snapshot, true, v_entries, v_opened, v_closed;
END;
$$;
COMMENT ON FUNCTION ipintel.load_range_snapshot(text, date, text, bigint) IS
    'Merges the staged entries of one range-list file (ipintel_staging.listed_ranges, or listed_asns for an ASN list; batch p_batch_id) as the snapshot of p_list taken on p_taken_on into listed_ranges / listed_asns (run-length; any load order gives the same table; a range missing from it closes at its day). Loaded before: nothing changes (loaded = false). Does not reclassify ip_inventory: call classify_inventory after the loads.';

-- The snapshot of a list that classifies day p_day: the latest taken on or before that day, and
-- not older than the list's max_age.
CREATE FUNCTION ipintel.range_snapshot_on(p_list text, p_day date)
    RETURNS date
    LANGUAGE sql
    STABLE
RETURN (SELECT max(s.taken_on)
        FROM ipintel.range_snapshots s
        JOIN ipintel.range_lists l ON l.list = s.list
        WHERE s.list = p_list AND s.taken_on <= p_day
          AND (l.max_age IS NULL OR s.taken_on >= (p_day - l.max_age)::date));
COMMENT ON FUNCTION ipintel.range_snapshot_on(text, date) IS
    'The day of the list''s latest snapshot taken on or before p_day and not older than its max_age; NULL when none.';

COMMENT ON FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date) IS
    'The run-length merge of one dated snapshot (routing history, geolocation builds): the keys (p_key_columns) staged in p_staged under p_batch_id, as the snapshot of series p_series (p_runs.p_series_column) taken on p_day, between its snapshots p_prev and p_next, into the runs of p_runs (valid daterange). Any merge order of the same snapshots gives the same table. Returns the runs opened and closed. Called by load_routing_snapshot, load_geo_build and load_range_snapshot.';

------------------------------------------------------------------------------------------
-- The classes (sql/074_ip_classes.sql), and the merge that keeps them (apply_answers)
------------------------------------------------------------------------------------------
-- The infrastructure class of an IP (ip_inventory.ip_type, ip_provider, ip_class_basis; the
-- snapshots' snapshot_ip_type, snapshot_ip_provider), decided in one set-based function from
-- everything that can say it: the address itself (bogon), the range lists of the day (tor,
-- cloud, cdn), the hosting-ASN list (hosting), what the sources said (riot, scanner, anonymizer,
-- unrouted), the AS name (residential), the ASN (routed). Of the classes an IP qualifies for,
-- the one of lowest ip_types.precedence wins; within one level the most specific range, then
-- the list's rank.

-- The residential heuristic. No registered source says what kind of network an AS is (PeeringDB's
-- info_type and IPinfo's AS type are not among the free sources), so this reads the AS name:
-- words consumer access networks put in their names (broadband, DSL, cable, fibre, FTTH, mobile,
-- wireless, cellular, telecom, a few large consumer ISPs' brands), and none of the words hosting
-- and cloud networks use (hosting, server, cloud, data centre, VPS, colocation, dedicated, CDN).
-- A guess: ip_class_basis says it is one (rule residential, with the AS name it read).
CREATE FUNCTION ipintel.as_name_looks_residential(p_as_name text)
    RETURNS boolean
    LANGUAGE sql
    IMMUTABLE PARALLEL SAFE
RETURN p_as_name ~* '(broadband|\m[av]?dsl\M|\mcable|fib(er|re)|\mftth\M|residential|\mhome\M|mobile|wireless|cellular|\mlte\M|\m[345]g\M|telecom|telekom|telecomunica|telefonica|telkom|vodafone|comcast|charter|\mspectrum\M|verizon|\mcox\M|\misp\M)'
    AND p_as_name !~* '(hosting|\mhost\M|server|cloud|data ?cent(er|re)|datacenter|\mvps\M|\mcolo|dedicated|\mcdn\M)';
COMMENT ON FUNCTION ipintel.as_name_looks_residential(text) IS
    'The residential heuristic: true when an AS name has a word consumer access networks use (broadband, DSL, cable, fibre, FTTH, mobile, wireless, cellular, LTE, telecom, a few consumer ISP brands) and none that hosting or cloud networks use (hosting, host, server, cloud, data centre, VPS, colocation, dedicated, CDN). A guess from the name only: no free source types ASes.';

-- Set-based: the class of each (ip, day, asn) tuple, as of that UTC day: the range lists by
-- their snapshot of the day (range_snapshot_on, once per day and list), one GiST probe per IP;
-- the hosting-ASN list and the AS name by the ASN given (the caller's: the current one, or the
-- session's); the sources' last answers (enrichment_state). p_asn_sources names where each ASN
-- came from: the ip_type_source of the classes that rest on the ASN.
CREATE FUNCTION ipintel.ip_classes(p_ips inet[], p_days date[], p_asns bigint[], p_asn_sources text[])
    RETURNS TABLE (ip inet, day date, asn bigint, ip_type text, ip_provider text, ip_type_source text,
                   ip_class_basis jsonb)
    LANGUAGE sql
    STABLE
    -- Also keeps the function from being inlined into its caller: the planner cannot see how
    -- many IPs the arrays hold, and inlined into a join it re-ran the whole classification once
    -- per row of the other side (50,000 IPs: hours, and tens of GB of temporary files). Called,
    -- it runs once and its rows are kept.
    SET search_path = ''
BEGIN ATOMIC
    WITH q AS MATERIALIZED (
        SELECT row_number() OVER () AS n, d.ip, d.day, d.asn, d.asn_source
        FROM (SELECT DISTINCT ON (u.ip, u.day, u.asn) u.ip, u.day, u.asn, u.asn_source
              FROM unnest(p_ips, p_days, p_asns, p_asn_sources) AS u(ip, day, asn, asn_source)
              ORDER BY u.ip, u.day, u.asn, u.asn_source) d
    ), lists AS MATERIALIZED (  -- once per day and list, not once per IP
        SELECT x.day, l.list, l.ip_type, l.provider, l.holds, l.rank, ipintel.range_snapshot_on(l.list, x.day) AS taken_on
        FROM (SELECT DISTINCT q.day FROM q) x
        CROSS JOIN ipintel.range_lists l
    ), candidates AS (
        -- Narrow rows (the basis is built for the winner only): the class, its provider and
        -- registered source, what orders it within its level (prefix length, rank, detail: 0
        -- when the range names service and region), and the facts of its basis.
        SELECT q.n, 'bogon'::text AS ip_type, NULL::text AS provider, NULL::text AS source, NULL::bigint AS specificity,
               NULL::bigint AS rank, 0 AS detail, 'bogon'::text AS rule, NULL::text AS list, NULL::date AS snapshot,
               NULL::cidr AS prefix, NULL::text AS service, NULL::text AS region, NULL::text AS name, NULL::text AS reference
        FROM q WHERE ipintel.is_bogon(q.ip)
        UNION ALL
        SELECT q.n, w.ip_type, w.provider, NULL, masklen(r.prefix), w.rank, (r.service = '')::int + (r.region = '')::int,
               'range', w.list, w.taken_on, r.prefix, nullif(r.service, ''), nullif(r.region, ''), NULL, NULL
        FROM q
        -- one GiST probe per IP by containment alone (OFFSET 0 keeps it a probe: joined with the
        -- lists first, the planner would scan the index by day once per IP and list instead)
        CROSS JOIN LATERAL (SELECT o.list, o.prefix, o.service, o.region, o.valid FROM ipintel.listed_ranges o
                            WHERE o.prefix_range OPERATOR(public.>>=) public.iprange(q.ip::cidr) OFFSET 0) r
        JOIN lists w ON w.day = q.day AND w.list = r.list AND r.valid @> w.taken_on
        UNION ALL
        SELECT q.n, w.ip_type, a.name, q.asn_source, NULL, w.rank, 0, 'hosting_asn', w.list, w.taken_on, NULL, NULL, NULL,
               a.name, a.source
        FROM q
        JOIN lists w ON w.day = q.day AND w.holds = 'asns' AND w.taken_on IS NOT NULL
        JOIN ipintel.listed_asns a ON a.list = w.list AND a.asn = q.asn AND a.valid @> w.taken_on
        UNION ALL
        -- what the sources said, by their ip_type_rank within a level
        SELECT q.n, e.ip_type, NULL, e.source, NULL, p.ip_type_rank, 0, 'source', NULL, NULL, NULL, NULL, NULL, NULL,
               e.source
        FROM q
        JOIN ipintel.enrichment_state e ON e.ip = q.ip AND e.ip_type IS NOT NULL
        JOIN ipintel.enrichment_policy p ON p.source = e.source AND p.ip_type_rank IS NOT NULL
        UNION ALL
        SELECT q.n, 'residential', a.as_name, q.asn_source, NULL, NULL, 0, 'residential', NULL, NULL, NULL, NULL, NULL,
               a.as_name, NULL
        FROM q
        JOIN ipintel.asn_inventory a ON a.asn = q.asn
        WHERE ipintel.as_name_looks_residential(a.as_name)
        UNION ALL
        SELECT q.n, CASE WHEN q.asn IS NOT NULL THEN 'routed' ELSE 'unknown' END, NULL,
               CASE WHEN q.asn IS NOT NULL THEN q.asn_source END, NULL, NULL, 0,
               CASE WHEN q.asn IS NOT NULL THEN 'routed' ELSE 'unknown' END, NULL, NULL, NULL, NULL, NULL, NULL, NULL
        FROM q
    ), best AS (
        SELECT DISTINCT ON (c.n) c.*
        FROM candidates c
        JOIN ipintel.ip_types t ON t.ip_type = c.ip_type
        ORDER BY c.n, t.precedence, c.specificity DESC NULLS LAST, c.rank NULLS LAST, c.detail, c.list, c.prefix,
                 c.service, c.region, c.reference
    )
    SELECT q.ip, q.day, q.asn, b.ip_type, b.provider, b.source,
           jsonb_strip_nulls(jsonb_build_object(
               'rule', b.rule, 'list', b.list, 'snapshot', b.snapshot, 'prefix', b.prefix, 'service', b.service,
               'region', b.region,
               'asn', CASE WHEN b.rule IN ('hosting_asn', 'residential', 'routed') THEN q.asn END,
               'name', CASE WHEN b.rule = 'hosting_asn' THEN b.name END,
               'as_name', CASE WHEN b.rule = 'residential' THEN b.name END,
               'source', b.reference))
    FROM q
    JOIN best b ON b.n = q.n;
END;
COMMENT ON FUNCTION ipintel.ip_classes(inet[], date[], bigint[], text[]) IS
    'The infrastructure class of each (ip, day, asn) of the parallel arrays (p_asn_sources: where each ASN came from), as of that UTC day: of bogon, the range lists'' classes (their snapshot of the day; most specific range first), hosting (the ASN in the hosting-ASN list of the day), the sources'' classes (enrichment_state), residential (as_name_looks_residential of the AS name), routed (an ASN) and unknown, the one of lowest ip_types.precedence. With its provider, its registered source (the source that said it; for hosting, residential and routed, the ASN''s) and its basis (ip_inventory.ip_class_basis).';

-- ip_inventory's class kept by SQL, one batch at a time: the next p_limit IPs after p_after (ip
-- order; NULL: from the first; p_limit NULL: all), locked in ip order (the one lock order of the
-- tiers, so it runs beside ingest and merges), classified as of today (UTC) with their current
-- ASN, and written where the class changed. Callers commit between batches (a long table is
-- not held at once) until last_ip is NULL.
CREATE FUNCTION ipintel.classify_inventory(p_after inet, p_limit bigint)
    RETURNS TABLE (last_ip inet, classified bigint, changed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_ips inet[];
    v_asns bigint[];
    v_sources text[];
    v_changed bigint;
BEGIN
    SELECT array_agg(b.ip ORDER BY b.ip), array_agg(b.current_asn ORDER BY b.ip),
           array_agg(b.current_asn_source ORDER BY b.ip)
    INTO v_ips, v_asns, v_sources
    FROM (SELECT i.ip, i.current_asn, i.current_asn_source
          FROM ipintel.ip_inventory i
          WHERE p_after IS NULL OR i.ip > p_after
          ORDER BY i.ip
          LIMIT p_limit
          FOR NO KEY UPDATE) b;
    IF v_ips IS NULL THEN
        RETURN QUERY SELECT NULL::inet, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    UPDATE ipintel.ip_inventory i
    SET ip_type = c.ip_type, ip_type_source = c.ip_type_source, ip_provider = c.ip_provider,
        ip_class_basis = c.ip_class_basis, updated_at = now()
    FROM ipintel.ip_classes(v_ips, array_fill((now() AT TIME ZONE 'UTC')::date, ARRAY[cardinality(v_ips)]), v_asns,
                            v_sources) c
    WHERE i.ip = c.ip
      AND (i.ip_type, i.ip_type_source, i.ip_provider, i.ip_class_basis)
          IS DISTINCT FROM (c.ip_type, c.ip_type_source, c.ip_provider, c.ip_class_basis);
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN QUERY SELECT v_ips[cardinality(v_ips)], cardinality(v_ips)::bigint, v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.classify_inventory(inet, bigint) IS
    'Classifies the next p_limit ip_inventory rows after p_after (ip order; NULLs: from the first, all) as of today (ip_classes with their current ASN), writing ip_type, ip_type_source, ip_provider and ip_class_basis where they change. Returns the last IP of the batch (NULL: none left), how many were classified and how many changed. Called after range lists are loaded, one committed batch at a time.';

CREATE OR REPLACE FUNCTION ipintel.apply_answers(p_source text, p_batch_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
    v_moved_sources text[];
    v_moved_ips inet[];
    v_moved_asns bigint[];
    v_moved_at timestamptz[];
    v_asns bigint[];
BEGIN
    WITH n AS MATERIALIZED (
        -- The IP's new values (v), and whether they change any fact but the class: only then
        -- is the IP classified again (c).
        SELECT v.*,
               ((v.old_enrichment, v.old_asn, v.old_asn_source, v.old_geo_country, v.old_geo_country_source,
                 v.old_is_scanner, v.old_is_scanner_source, v.old_is_riot, v.old_is_known_attacker,
                 v.old_is_known_attacker_source, v.old_threatfeeds)
                IS DISTINCT FROM
                (v.enrichment, v.current_asn, v.current_asn_source, v.geo_country, v.geo_country_source,
                 v.is_scanner, v.is_scanner_source, v.is_riot, v.is_known_attacker, v.is_known_attacker_source,
                 v.threatfeeds)
                OR v.kept_ip_class_basis IS NULL) AS facts_change
        FROM (
            SELECT r.ip, r.fetched_at, cur.current_asn AS old_asn, cur.current_asn_source AS old_asn_source,
                   f.asn AS observed_asn, f.asn_source AS observed_asn_source,
                   CASE WHEN cur.enrichment -> p_source IS DISTINCT FROM r.result
                        THEN cur.enrichment || jsonb_build_object(p_source, r.result) ELSE cur.enrichment END AS enrichment,
                   -- No ASN observation at all ("not in the file") keeps the last one.
                   CASE WHEN f.asn_source IS NOT NULL THEN f.asn ELSE cur.current_asn END AS current_asn,
                   coalesce(f.asn_source, cur.current_asn_source) AS current_asn_source,
                   coalesce(f.country, 'XX') AS geo_country, f.country_source AS geo_country_source,
                   f.is_scanner, f.is_scanner_source, f.is_riot,
                   f.is_known_attacker, f.is_known_attacker_source, f.threatfeeds,
                   cur.enrichment AS old_enrichment, cur.geo_country AS old_geo_country,
                   cur.geo_country_source AS old_geo_country_source, cur.is_scanner AS old_is_scanner,
                   cur.is_scanner_source AS old_is_scanner_source, cur.is_riot AS old_is_riot,
                   cur.is_known_attacker AS old_is_known_attacker,
                   cur.is_known_attacker_source AS old_is_known_attacker_source, cur.threatfeeds AS old_threatfeeds,
                   cur.ip_type AS kept_ip_type, cur.ip_type_source AS kept_ip_type_source,
                   cur.ip_provider AS kept_ip_provider, cur.ip_class_basis AS kept_ip_class_basis
            FROM ipintel_staging.enrichment_results r
            JOIN ipintel.ip_inventory cur ON cur.ip = r.ip
            CROSS JOIN LATERAL ipintel.resolved_facts(r.ip) f
            WHERE r.batch_id = p_batch_id
        ) v
    ), c AS MATERIALIZED (
        -- The class as of today, once for the whole batch (ip_classes is never inlined: its
        -- arrays come from scalar subqueries, so no join re-runs it per row), and only for the IPs
        -- whose facts or ASN change here: the class of the others cannot change by this merge (a
        -- re-fetch of unchanged answers classified every IP again: about 9% of a re-merge's time).
        -- A new range list or AS name reaches them through classify_inventory (ranges load/fetch).
        SELECT x.*
        FROM ipintel.ip_classes(ARRAY(SELECT n.ip FROM n WHERE n.facts_change ORDER BY n.ip),
                                ARRAY(SELECT (now() AT TIME ZONE 'UTC')::date FROM n WHERE n.facts_change),
                                ARRAY(SELECT n.current_asn FROM n WHERE n.facts_change ORDER BY n.ip),
                                ARRAY(SELECT n.current_asn_source FROM n WHERE n.facts_change ORDER BY n.ip)) x
    ), written AS (
        UPDATE ipintel.ip_inventory i
        SET enrichment = n.enrichment, current_asn = n.current_asn, current_asn_source = n.current_asn_source,
            geo_country = n.geo_country, geo_country_source = n.geo_country_source,
            is_scanner = n.is_scanner, is_scanner_source = n.is_scanner_source, is_riot = n.is_riot,
            ip_type = n.ip_type, ip_type_source = n.ip_type_source, ip_provider = n.ip_provider,
            ip_class_basis = n.ip_class_basis, is_known_attacker = n.is_known_attacker,
            is_known_attacker_source = n.is_known_attacker_source, threatfeeds = n.threatfeeds, updated_at = now()
        FROM (SELECT n.*,
                     -- classified now, or the class it has (its facts do not change)
                     CASE WHEN n.facts_change THEN c.ip_type ELSE n.kept_ip_type END AS ip_type,
                     CASE WHEN n.facts_change THEN c.ip_type_source ELSE n.kept_ip_type_source END AS ip_type_source,
                     CASE WHEN n.facts_change THEN c.ip_provider ELSE n.kept_ip_provider END AS ip_provider,
                     CASE WHEN n.facts_change THEN c.ip_class_basis ELSE n.kept_ip_class_basis END AS ip_class_basis
              FROM n
              LEFT JOIN c ON c.ip = n.ip) n
        WHERE i.ip = n.ip
          AND (i.enrichment, i.current_asn, i.current_asn_source, i.geo_country, i.geo_country_source, i.is_scanner,
               i.is_scanner_source, i.is_riot, i.ip_type, i.ip_type_source, i.ip_provider, i.ip_class_basis,
               i.is_known_attacker, i.is_known_attacker_source, i.threatfeeds)
              IS DISTINCT FROM
              (n.enrichment, n.current_asn, n.current_asn_source, n.geo_country, n.geo_country_source, n.is_scanner,
               n.is_scanner_source, n.is_riot, n.ip_type, n.ip_type_source, n.ip_provider, n.ip_class_basis,
               n.is_known_attacker, n.is_known_attacker_source, n.threatfeeds)
        RETURNING n.ip, n.fetched_at, n.old_asn, n.old_asn_source, n.observed_asn, n.observed_asn_source,
                  n.current_asn
    ), moved AS (
        -- A new ASN observation (a value, or a better-ranked source) becomes current and goes to
        -- the history as of this answer: when a better-ranked source stops observing, the
        -- fallback becomes current now, not when it was observed.
        SELECT w.* FROM written w
        WHERE w.observed_asn_source IS NOT NULL
          AND (w.old_asn, w.old_asn_source) IS DISTINCT FROM (w.observed_asn, w.observed_asn_source)
    )
    SELECT (SELECT count(*) FROM written),
           (SELECT array_agg(m.observed_asn_source) FROM moved m), (SELECT array_agg(m.ip) FROM moved m),
           (SELECT array_agg(m.observed_asn) FROM moved m), (SELECT array_agg(m.fetched_at) FROM moved m),
           -- the ASNs whose counts change: old and new current_asn where it changed
           ARRAY(SELECT DISTINCT a.asn FROM written w CROSS JOIN LATERAL (VALUES (w.old_asn), (w.current_asn)) AS a(asn)
                 WHERE w.old_asn IS DISTINCT FROM w.current_asn AND a.asn IS NOT NULL)
    INTO v_changed, v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at, v_asns;

    IF v_moved_ips IS NOT NULL THEN
        PERFORM ipintel.record_asn_history(v_moved_sources, v_moved_ips, v_moved_asns, v_moved_at);
    END IF;
    PERFORM ipintel.refresh_asn_counts(v_asns);
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.apply_answers(text, bigint) IS
    'The generic half of merge_batch: writes the staged documents under p_source in ip_inventory.enrichment, resolves current_asn (recording ip_asn_history), geo_country, is_scanner, is_riot and is_known_attacker (with threatfeeds) with their *_source from enrichment_state by the registry''s ranks (resolved_facts), classifies as of today the IPs whose facts or ASN change (ip_classes, once per batch: ip_type, ip_type_source, ip_provider, ip_class_basis; the others keep their class until classify_inventory), and refreshes the ASN counts. Writes only rows that change; returns how many.';
COMMENT ON FUNCTION ipintel.resolved_facts(inet) IS
    'The facts of one IP resolved across sources: for each fact the value of the first-ranked source (enrichment_policy *_rank) whose last answer gives it, with that source (and, for the ASN, when it was observed). ip_type here is what the sources say (falling back to routed when an ASN is known); ip_inventory.ip_type weighs it with the range lists and rules (ip_classes). threatfeeds are those of the source is_known_attacker came from. One row, NULLs when no source answered.';

------------------------------------------------------------------------------------------
-- Staleness by class (sql/070_enrichment.sql, snapshot_pending_sources of sql/075_snapshots.sql):
-- an IP's class may carry its own TTL (ip_types.ttl), which answer_is_stale now takes; the
-- function's callers read it, then the old two-argument form goes.
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.answer_is_stale(p_policy ipintel.enrichment_policy, p_fetched_at timestamptz,
                                        p_class_ttl interval)
    RETURNS boolean
    LANGUAGE sql
    STABLE
RETURN p_policy.kind <> 'offline_database' AND p_fetched_at < now() - coalesce(p_class_ttl, p_policy.ttl);
COMMENT ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz, interval) IS
    'True when an answer fetched at p_fetched_at is older than its TTL: p_class_ttl (the ip_types.ttl of the IP''s class) when given, else the source''s ttl; never for an offline_database source (due again only for a newer build). NULL when p_fetched_at is NULL (never fetched).';

CREATE OR REPLACE FUNCTION ipintel.ips_due(
    p_source text,
    p_limit bigint DEFAULT NULL,
    p_force boolean DEFAULT false,
    p_ips inet[] DEFAULT NULL,
    p_current_build bigint DEFAULT NULL)
    RETURNS TABLE (ip inet, last_seen timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT i.ip, i.last_seen
    FROM ipintel.ip_inventory i
    CROSS JOIN ipintel.enrichment_policy p
    LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
    LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
    WHERE p.source = p_source
      AND NOT i.is_bogon
      AND (p_ips IS NULL OR i.ip = ANY (p_ips))
      AND (p_force OR (
          -- never fetched, stale, or fetched from an older database build
          (e.ip IS NULL
           OR ipintel.answer_is_stale(p, e.fetched_at, t.ttl)
           OR e.build < p_current_build)
          AND NOT (e.ip IS NULL AND ipintel.skipped_for_known_asn(p, i))
          AND NOT ipintel.below_session_threshold(p, i)
          -- a failure that asking again cannot fix, or one asked to wait
          AND NOT EXISTS (
              SELECT 1 FROM ipintel.enrichment_failures f
              WHERE f.source = p_source AND f.ip = i.ip AND f.resolved_at IS NULL
                AND (NOT f.retryable OR f.retry_after > now()))))
    ORDER BY i.last_seen DESC NULLS LAST, i.ip
    LIMIT p_limit;
END;
COMMENT ON FUNCTION ipintel.ips_due(text, bigint, boolean, inet[], bigint) IS
    'IPs due for a source, most recently seen first: never fetched (no enrichment_state row), older than the TTL (the IP''s class''s, ip_types.ttl, else the policy''s; never for an offline_database source), or fetched from an older data build than p_current_build; never bogons. p_ips restricts to those IPs; p_force ignores freshness and policy filters.';

CREATE OR REPLACE VIEW ipintel.enrichment_coverage AS
SELECT p.source,
       p.enabled,
       p.ttl,
       count(*) FILTER (WHERE NOT i.is_bogon) AS ips,
       count(*) FILTER (WHERE NOT i.is_bogon AND e.ip IS NOT NULL AND NOT ipintel.answer_is_stale(p, e.fetched_at, t.ttl))
           AS fresh,
       count(*) FILTER (WHERE NOT i.is_bogon AND ipintel.answer_is_stale(p, e.fetched_at, t.ttl)) AS stale,
       count(*) FILTER (WHERE NOT i.is_bogon AND e.ip IS NULL) AS never_fetched,
       (SELECT count(DISTINCT f.ip) FROM ipintel.enrichment_failures f
        WHERE f.source = p.source AND f.resolved_at IS NULL) AS failed,
       count(*) FILTER (WHERE i.is_bogon) AS bogons_never_sent,
       max(e.fetched_at) AS last_fetched_at
FROM ipintel.enrichment_policy p
LEFT JOIN ipintel.ip_inventory i ON true
LEFT JOIN ipintel.enrichment_state e ON e.ip = i.ip AND e.source = p.source
LEFT JOIN ipintel.ip_types t ON t.ip_type = i.ip_type
GROUP BY p.source, p.enabled, p.ttl;
COMMENT ON VIEW ipintel.enrichment_coverage IS
    'Per source: IPs (bogons excluded) with a fresh answer, a stale one (older than the TTL: the IP''s class''s, ip_types.ttl, else the source''s ttl; an offline database''s answers never go stale by time), none yet, open failures; bogons are never sent. Freshness from enrichment_state.';

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

-- squawk-ignore ban-drop-function
DROP FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz);
COMMENT ON COLUMN ipintel.enrichment_policy.ttl IS
    'An answer older than this (enrichment_state.fetched_at) is stale and fetched again, unless the IP''s class has a TTL of its own (ip_types.ttl, which then applies to every source). Not for an offline_database source: re-reading the same build cannot say anything new, so its answers are due again only when a newer build is installed.';

------------------------------------------------------------------------------------------
-- The columns that carry the class: added last, so ip_inventory's brief ACCESS EXCLUSIVE lock
-- (new nullable columns: metadata only, no rewrite) is held only until the commit right after.
-- The CHECK is added NOT VALID (no scan); 0031 validates it after its backfill. No foreign key
-- from ip_type to ip_types: verify_integrity checks it, as the *_source columns since 0026.
------------------------------------------------------------------------------------------
ALTER TABLE ipintel.ip_inventory ADD COLUMN ip_provider text, ADD COLUMN ip_class_basis jsonb;
ALTER TABLE ipintel.ip_inventory
    ADD CONSTRAINT ip_inventory_ip_class_basis_is_object CHECK (jsonb_typeof(ip_class_basis) = 'object') NOT VALID;
ALTER TABLE ipintel.session_summaries ADD COLUMN snapshot_ip_provider text;
COMMENT ON COLUMN ipintel.ip_inventory.ip_type IS
    'Infrastructure class as of today (ipintel.ip_types, ipintel.ip_classes): of the classes the IP qualifies for, the one of lowest precedence: bogon, tor, cloud or cdn (range lists; the most specific range wins), hosting (its AS in a hosting-ASN list), riot, scanner, anonymizer (what sources say), residential (its AS name), unrouted, routed (an ASN is known), unknown. Kept by SQL: every merge, range-list load and ipintel.classify_inventory. No foreign key to ip_types (written by every merge): ipintel.verify_integrity checks it.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_type_source IS
    'The registered source ip_type came from: the one that said riot, scanner, anonymizer or unrouted; for hosting, residential and routed, the source of current_asn. NULL for bogon, unknown and the range-list classes (tor, cloud, cdn): ip_class_basis says which list.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_provider IS
    'Who runs the infrastructure, for the classes that say: aws, gcp, azure, oracle, digitalocean, cloudflare, tor (range lists), the hosting AS''s name (hosting), the AS name (residential). NULL otherwise.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_class_basis IS
    'Why ip_type is what it is: {"rule": bogon | range | hosting_asn | source | residential | routed | unknown, ...}: for range, the list, its snapshot day, the prefix, service and region; for hosting_asn, the list, its snapshot day, the ASN, its name and the entry''s source; for source, the source; for residential and routed, the ASN (and AS name). NULL: not classified yet (an IP ingested since the last merge or range load that saw it).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type IS
    'Snapshot: the infrastructure class as of the session''s day (ipintel.ip_classes: the range lists of that day, the snapshot''s ASN, what sources said when the field was filled; only once no source is still awaited). Known once snapshot_ip_type_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_provider IS
    'Snapshot: who ran the infrastructure as of the session''s day (ip_inventory.ip_provider''s meaning), filled with snapshot_ip_type. NULL: the class names none, or not known yet.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type_source IS
    'What decided snapshot_ip_type: list:<list>:<snapshot day> (tor, cloud, cdn, hosting: the range or hosting-ASN list of that day), a source (riot, scanner, anonymizer, unrouted: greynoise, maxmind, cymru), the ASN''s source as in snapshot_asn_source (residential, routed), bogon, none (unknown). Before revision 0030 the bare source for routed too. NULL: not known yet (filled only once no source is awaited).';

------------------------------------------------------------------------------------------
-- Snapshots: the class and its provider as of the session's day (sql/075_snapshots.sql; the
-- change to take_snapshots is its `classes` step), kept from being rewritten like the other
-- fields, reset by a redo; verify_snapshots knows the new forms of snapshot_ip_type_source and
-- verify_integrity checks the class columns.
------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION ipintel.take_snapshots()
    RETURNS bigint
    LANGUAGE plpgsql
    -- One big set-based statement: compiling it (JIT) costs more than it saves.
    SET jit = off
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
    v_ips inet[];
    v_days date[];
BEGIN
    -- Routing history and the dated geolocation builds are asked only about sessions whose ASN
    -- or country is still unknown, once per IP and day.
    SELECT array_agg(x.ip), array_agg(x.day) INTO v_ips, v_days
    FROM (SELECT DISTINCT s.source_ip AS ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day
          FROM ipintel.session_summaries s
          WHERE s.snapshot_complete_at IS NULL
            AND (s.snapshot_asn_source IS NULL OR s.snapshot_country_source IS NULL)) x;

    WITH todo AS (
        SELECT s.session_id, s.source_ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day,
               s.snapshot_ip_type_source IS NULL AS ip_type_unknown, r.*,
               -- the ASN: routing history at the session's day, else ip_asn_history at its time,
               -- else a dated geolocation build (g), else the current ASN; its source says which
               -- (routing:<dataset>:<snapshot day>, <source>:history, <source>:build:<day>,
               -- <source>:current)
               CASE WHEN rt.asn IS NOT NULL THEN rt.asn WHEN h.ip IS NOT NULL THEN h.asn
                    WHEN g.asn_from_build THEN gb.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || rt.taken_on::text
                    WHEN h.ip IS NOT NULL THEN h.source || ':history'
                    WHEN g.asn_from_build THEN gb.asn_build
                    ELSE coalesce(i.current_asn_source || ':current', 'none') END AS asn_source,
               -- the country: a dated geolocation build (g), else the current one
               CASE WHEN g.country_from_build THEN gb.country ELSE i.geo_country END AS country,
               CASE WHEN i.is_bogon THEN 'bogon' WHEN g.country_from_build THEN gb.country_build
                    ELSE coalesce(i.geo_country_source, 'none') END AS country_source,
               i.is_scanner,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_scanner_source, 'none') END AS is_scanner_source,
               -- the registered source of that ASN (for the classes resting on it), or its routing
               -- snapshot or geolocation build
               CASE WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || rt.taken_on::text
                    WHEN h.ip IS NOT NULL THEN h.source WHEN g.asn_from_build THEN gb.asn_build
                    ELSE i.current_asn_source END AS class_asn_source,
               -- known attacker and threat feeds: one field, filled together from one source (0028)
               i.is_known_attacker, i.threatfeeds,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_known_attacker_source, 'none') END
                   AS known_attacker_source,
               i.enrichment
        FROM ipintel.session_summaries s
        JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
        LEFT JOIN ipintel.snapshot_waits w ON w.session_id = s.session_id
        LEFT JOIN ipintel.enrichment_policy ka ON ka.source = i.current_asn_source
        LEFT JOIN ipintel.enrichment_policy kc ON kc.source = i.geo_country_source
        LEFT JOIN ipintel.enrichment_policy ks ON ks.source = i.is_scanner_source
        LEFT JOIN ipintel.enrichment_policy kt ON kt.source = i.ip_type_source
        LEFT JOIN ipintel.enrichment_policy kk ON kk.source = i.is_known_attacker_source
        LEFT JOIN ipintel.ip_asn_history h ON h.ip = s.source_ip AND h.valid @> s.first_event_at
        LEFT JOIN ipintel.routing_asns(v_ips, v_days) rt
               ON rt.ip = s.source_ip AND rt.day = (s.first_event_at AT TIME ZONE 'UTC')::date
        LEFT JOIN ipintel.geo_build_facts(v_ips, v_days) gb
               ON gb.ip = s.source_ip AND gb.day = (s.first_event_at AT TIME ZONE 'UTC')::date
        CROSS JOIN LATERAL (
            -- A dated build gives a field only for a session before ipintel's own observation of
            -- the IP's current value (observed_since: the enrichment_state row is read only where
            -- a build has a value), or when no source gives one.
            SELECT CASE WHEN i.is_bogon OR gb.country IS NULL THEN false
                        WHEN i.geo_country_source IS NULL THEN true
                        ELSE gb.day < coalesce(ipintel.observed_since(i.ip, i.geo_country_source), 'infinity') END
                       AS country_from_build,
                   CASE WHEN i.is_bogon OR gb.asn_build IS NULL THEN false
                        WHEN i.current_asn_source IS NULL THEN true
                        ELSE gb.day < coalesce(ipintel.observed_since(i.ip, i.current_asn_source), 'infinity') END
                       AS asn_from_build) g
        CROSS JOIN LATERAL (
            -- ready: no awaited source of the field, or the value's source is ranked before them
            SELECT w.session_id IS NULL AS all_ready,
                   -- routing history at the session's day needs no source
                   rt.asn IS NOT NULL OR w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false)
                       AS asn_ready,
                   w.country_wait_rank IS NULL OR coalesce(kc.country_rank < w.country_wait_rank, false)
                       AS country_ready,
                   w.is_scanner_wait_rank IS NULL OR coalesce(ks.is_scanner_rank < w.is_scanner_wait_rank, false)
                       AS scanner_ready,
                   -- ip_type also needs the ASN (an IP no source classified is routed once it has one)
                   (rt.asn IS NOT NULL OR w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false))
                   AND (w.ip_type_wait_rank IS NULL OR coalesce(kt.ip_type_rank < w.ip_type_wait_rank, false))
                       AS ip_type_ready,
                   w.is_known_attacker_wait_rank IS NULL
                   OR coalesce(kk.is_known_attacker_rank < w.is_known_attacker_wait_rank, false)
                       AS known_attacker_ready) r
        WHERE s.snapshot_complete_at IS NULL
          AND (r.all_ready
               OR (r.asn_ready AND s.snapshot_asn_source IS NULL)
               OR (r.country_ready AND s.snapshot_country_source IS NULL)
               OR (r.scanner_ready AND s.snapshot_is_scanner_source IS NULL)
               OR (r.ip_type_ready AND s.snapshot_ip_type_source IS NULL)
               OR (r.known_attacker_ready AND s.snapshot_is_known_attacker_source IS NULL))
        -- A session an ingest chunk is updating right now is left for the next run: snapshots
        -- never wait for ingest, so the two can never deadlock.
        FOR NO KEY UPDATE OF s SKIP LOCKED
    ), classes AS MATERIALIZED (
        -- ip_type and ip_provider as of the session's day (issue 12): the range lists of that day
        -- and the snapshot's ASN, weighed with what the sources said (ip_classes), for the
        -- sessions whose ip_type is filled now. One call for them all.
        SELECT c.*
        FROM ipintel.ip_classes(
            ARRAY(SELECT t.source_ip FROM todo t WHERE t.ip_type_ready AND t.ip_type_unknown ORDER BY t.session_id),
            ARRAY(SELECT t.day FROM todo t WHERE t.ip_type_ready AND t.ip_type_unknown ORDER BY t.session_id),
            ARRAY(SELECT t.asn FROM todo t WHERE t.ip_type_ready AND t.ip_type_unknown ORDER BY t.session_id),
            ARRAY(SELECT t.class_asn_source FROM todo t WHERE t.ip_type_ready AND t.ip_type_unknown
                  ORDER BY t.session_id)) c
    ), filled AS (
        UPDATE ipintel.session_summaries s
        SET snapshot_asn = CASE WHEN s.snapshot_asn_source IS NULL AND t.asn_ready THEN t.asn ELSE s.snapshot_asn END,
            snapshot_asn_source = CASE WHEN s.snapshot_asn_source IS NULL AND t.asn_ready THEN t.asn_source
                                       ELSE s.snapshot_asn_source END,
            snapshot_country = CASE WHEN s.snapshot_country_source IS NULL AND t.country_ready THEN t.country
                                    ELSE s.snapshot_country END,
            snapshot_country_source = CASE WHEN s.snapshot_country_source IS NULL AND t.country_ready THEN t.country_source
                                           ELSE s.snapshot_country_source END,
            snapshot_is_scanner = CASE WHEN s.snapshot_is_scanner_source IS NULL AND t.scanner_ready THEN t.is_scanner
                                       ELSE s.snapshot_is_scanner END,
            snapshot_is_scanner_source = CASE WHEN s.snapshot_is_scanner_source IS NULL AND t.scanner_ready
                                              THEN t.is_scanner_source ELSE s.snapshot_is_scanner_source END,
            snapshot_ip_type = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN c.ip_type
                                    ELSE s.snapshot_ip_type END,
            -- list:<list>:<day> for a class from a range or ASN list; else the source that said it
            -- (for routed and residential: the ASN's), bogon, none
            snapshot_ip_type_source = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready
                                           THEN CASE WHEN c.ip_class_basis ? 'list'
                                                     THEN 'list:' || (c.ip_class_basis ->> 'list') || ':'
                                                          || (c.ip_class_basis ->> 'snapshot')
                                                     WHEN c.ip_type = 'bogon' THEN 'bogon'
                                                     ELSE coalesce(c.ip_type_source, 'none') END
                                           ELSE s.snapshot_ip_type_source END,
            snapshot_is_known_attacker = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                              THEN t.is_known_attacker ELSE s.snapshot_is_known_attacker END,
            snapshot_threatfeeds = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                        THEN t.threatfeeds ELSE s.snapshot_threatfeeds END,
            snapshot_is_known_attacker_source = CASE WHEN s.snapshot_is_known_attacker_source IS NULL
                                                          AND t.known_attacker_ready
                                                     THEN t.known_attacker_source
                                                     ELSE s.snapshot_is_known_attacker_source END,
            snapshot_ip_provider = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN c.ip_provider
                                        ELSE s.snapshot_ip_provider END,
            snapshot_enrichment = t.enrichment,
            snapshot_at = coalesce(s.snapshot_at, now()),
            snapshot_complete_at = CASE WHEN t.all_ready THEN now() END,
            updated_at = now()
        FROM todo t
        LEFT JOIN classes c ON c.ip = t.source_ip AND c.day = t.day AND coalesce(c.asn, -1) = coalesce(t.asn, -1)
        WHERE s.session_id = t.session_id
        RETURNING 1)
    SELECT count(*) INTO v_changed FROM filled;
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.take_snapshots() IS
    'Fills the unknown snapshot_* fields of incomplete sessions that no better-ranked source is still awaited for (see ipintel.snapshot_waits), and marks a snapshot complete once no source is awaited. Never changes a known field. The ASN and the class (snapshot_ip_type, snapshot_ip_provider: ip_classes) are as of the session''s day. Linear in the incomplete sessions and their IPs. Returns the sessions changed.';

CREATE OR REPLACE FUNCTION ipintel.protect_snapshot()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    -- Inside redo_snapshots (which records itself in snapshot_redos first): allowed.
    IF EXISTS (SELECT 1 FROM ipintel.snapshot_redos r
               WHERE r.redo_id::text = current_setting('ipintel.snapshot_redo', true) AND r.finished_at IS NULL) THEN
        RETURN NEW;
    END IF;
    IF (OLD.snapshot_asn_source IS NOT NULL
        AND (NEW.snapshot_asn, NEW.snapshot_asn_source) IS DISTINCT FROM (OLD.snapshot_asn, OLD.snapshot_asn_source))
       OR (OLD.snapshot_country_source IS NOT NULL
           AND (NEW.snapshot_country, NEW.snapshot_country_source)
               IS DISTINCT FROM (OLD.snapshot_country, OLD.snapshot_country_source))
       OR (OLD.snapshot_ip_type_source IS NOT NULL
           AND (NEW.snapshot_ip_type, NEW.snapshot_ip_type_source, NEW.snapshot_ip_provider)
               IS DISTINCT FROM (OLD.snapshot_ip_type, OLD.snapshot_ip_type_source, OLD.snapshot_ip_provider))
       OR (OLD.snapshot_is_scanner_source IS NOT NULL
           AND (NEW.snapshot_is_scanner, NEW.snapshot_is_scanner_source)
               IS DISTINCT FROM (OLD.snapshot_is_scanner, OLD.snapshot_is_scanner_source))
       OR (OLD.snapshot_is_known_attacker_source IS NOT NULL
           AND (NEW.snapshot_is_known_attacker, NEW.snapshot_threatfeeds, NEW.snapshot_is_known_attacker_source)
               IS DISTINCT FROM
               (OLD.snapshot_is_known_attacker, OLD.snapshot_threatfeeds, OLD.snapshot_is_known_attacker_source))
       OR (OLD.snapshot_at IS NOT NULL AND NEW.snapshot_at IS DISTINCT FROM OLD.snapshot_at)
       OR (OLD.snapshot_complete_at IS NOT NULL
           AND (NEW.snapshot_complete_at, NEW.snapshot_enrichment)
               IS DISTINCT FROM (OLD.snapshot_complete_at, OLD.snapshot_enrichment)) THEN
        RAISE EXCEPTION 'snapshot of session %: a known snapshot field is never rewritten', OLD.session_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ipintel.protect_snapshot() IS
    'Trigger function: refuses to change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot, except inside redo_snapshots (audited in snapshot_redos). Unknown fields may be filled.';

DROP TRIGGER session_summaries_snapshot_is_immutable ON ipintel.session_summaries;
CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at, snapshot_is_known_attacker, snapshot_threatfeeds,
                     snapshot_is_known_attacker_source, snapshot_ip_provider
    ON ipintel.session_summaries
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

CREATE OR REPLACE FUNCTION ipintel.redo_snapshots(p_since timestamptz, p_until timestamptz, p_reason text)
    RETURNS TABLE (redo_id bigint, sessions_reset bigint, sessions_taken bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_redo bigint;
    v_reset bigint;
    v_taken bigint;
BEGIN
    INSERT INTO ipintel.snapshot_redos (since, until, reason) VALUES (p_since, p_until, p_reason)
    RETURNING snapshot_redos.redo_id INTO v_redo;
    PERFORM set_config('ipintel.snapshot_redo', v_redo::text, true);
    UPDATE ipintel.session_summaries s
    SET snapshot_asn = NULL, snapshot_asn_source = NULL, snapshot_country = NULL, snapshot_country_source = NULL,
        snapshot_ip_type = NULL, snapshot_ip_type_source = NULL, snapshot_ip_provider = NULL, snapshot_is_scanner = NULL,
        snapshot_is_scanner_source = NULL, snapshot_is_known_attacker = NULL, snapshot_threatfeeds = NULL,
        snapshot_is_known_attacker_source = NULL, snapshot_enrichment = NULL, snapshot_at = NULL,
        snapshot_complete_at = NULL, updated_at = now()
    WHERE s.first_event_at >= p_since AND s.first_event_at < p_until AND s.snapshot_at IS NOT NULL;
    GET DIAGNOSTICS v_reset = ROW_COUNT;
    PERFORM set_config('ipintel.snapshot_redo', '', true);
    v_taken := ipintel.take_snapshots();
    UPDATE ipintel.snapshot_redos r
    SET finished_at = clock_timestamp(), sessions_reset = v_reset, sessions_taken = v_taken
    WHERE r.redo_id = v_redo;
    RETURN QUERY SELECT v_redo, v_reset, v_taken;
END;
$$;
COMMENT ON FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) IS
    'Takes again the snapshots of the sessions that started in [p_since, p_until), recorded in snapshot_redos with p_reason and its counts: the one audited way a known snapshot is rewritten (e.g. after loading routing history for sessions snapshotted from the current ASN). Returns the redo and its counts.';

CREATE OR REPLACE FUNCTION ipintel.verify_snapshots()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH geo_build AS (  -- <source>:build:<day> of a loaded geolocation build (revision 0029)
        SELECT e.source || ':build:' || to_char(b.built_on, 'YYYY-MM-DD') AS build
        FROM ipintel.geo_builds b JOIN ipintel.geo_editions e ON e.edition = b.edition
    ), allowed_asn_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source || k.suffix FROM ipintel.enrichment_policy p
        CROSS JOIN (VALUES (':history'), (':current')) AS k(suffix)
        UNION
        SELECT 'routing:' || r.dataset || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.routing_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || r.taken_on::text FROM ipintel.routing_snapshots r
        UNION
        SELECT b.build FROM geo_build b
    ), allowed_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source FROM ipintel.enrichment_policy p
    ), allowed_ip_type_source AS (
        -- a class from a range or ASN list names the list's snapshot; hosting, residential and
        -- routed name the ASN's source, which may be a routing snapshot or a geolocation build
        -- (revision 0030)
        SELECT a.source FROM allowed_source a
        UNION
        SELECT 'list:' || r.list || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.range_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.routing_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || r.taken_on::text FROM ipintel.routing_snapshots r
        UNION
        SELECT b.build FROM geo_build b
    ), combos AS (
        -- the sessions grouped by what the rules read: a few groups, checked once each
        SELECT s.snapshot_asn_source AS asn_source, s.snapshot_country_source AS country_source,
               s.snapshot_ip_type_source AS ip_type_source, s.snapshot_is_scanner_source AS is_scanner_source,
               s.snapshot_complete_at IS NOT NULL AS complete, s.snapshot_at IS NOT NULL AS taken,
               -- revision 0022 made the ASN's source say how it was found (routing:, :history,
               -- :current); a bare source name is right only for snapshots taken before the first such
               s.snapshot_at < coalesce((SELECT min(x.snapshot_at) FROM ipintel.session_summaries x
                                         WHERE x.snapshot_asn_source LIKE '%:%'), 'infinity') AS before_0022_form,
               count(*) AS sessions, min(s.session_id) AS example
        FROM ipintel.session_summaries s
        WHERE s.snapshot_at IS NOT NULL OR s.snapshot_asn_source IS NOT NULL OR s.snapshot_country_source IS NOT NULL
           OR s.snapshot_ip_type_source IS NOT NULL OR s.snapshot_is_scanner_source IS NOT NULL
           OR s.snapshot_complete_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ), checked AS (
        SELECT r.n, r.rule, c.sessions, c.example
        FROM combos c
        CROSS JOIN LATERAL (VALUES
            (1, 'a complete snapshot names the source of every field',
             c.complete AND (c.asn_source IS NULL OR c.country_source IS NULL OR c.ip_type_source IS NULL
                             OR c.is_scanner_source IS NULL)),
            (2, 'a snapshot with a known field has snapshot_at',
             NOT c.taken),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded build, <source>:current, bogon or none (a bare source: before revision 0022)',
             c.asn_source IS NOT NULL
             AND c.asn_source NOT IN (SELECT a.source FROM allowed_asn_source a)
             AND NOT (c.before_0022_form AND c.asn_source IN (SELECT p.source FROM ipintel.enrichment_policy p))),
            (4, 'snapshot_country_source is a registered source, <source>:build:<day> of a loaded build, bogon or none',
             c.country_source IS NOT NULL AND c.country_source NOT IN (SELECT a.source FROM allowed_source a)
             AND c.country_source NOT IN (SELECT b.build FROM geo_build b)),
            (5, 'snapshot_ip_type_source is a registered source, list:<list>:<day> of a loaded range snapshot, routing:<dataset>:<day> of a loaded routing snapshot, <source>:build:<day> of a loaded build, bogon or none',
             c.ip_type_source IS NOT NULL AND c.ip_type_source NOT IN (SELECT a.source FROM allowed_ip_type_source a)),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none',
             c.is_scanner_source IS NOT NULL AND c.is_scanner_source NOT IN (SELECT a.source FROM allowed_source a))
        ) AS r(n, rule, violated)
        WHERE r.violated
    ), rules AS (
        SELECT r.n, r.rule FROM (VALUES
            (1, 'a complete snapshot names the source of every field'),
            (2, 'a snapshot with a known field has snapshot_at'),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded build, <source>:current, bogon or none (a bare source: before revision 0022)'),
            (4, 'snapshot_country_source is a registered source, <source>:build:<day> of a loaded build, bogon or none'),
            (5, 'snapshot_ip_type_source is a registered source, list:<list>:<day> of a loaded range snapshot, routing:<dataset>:<day> of a loaded routing snapshot, <source>:build:<day> of a loaded build, bogon or none'),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none')) AS r(n, rule)
    )
    SELECT x.rule, x.violations, x.examples
    FROM (
        SELECT r.n, r.rule, coalesce(sum(k.sessions), 0)::bigint AS violations,
               coalesce((array_agg(k.example ORDER BY k.example) FILTER (WHERE k.example IS NOT NULL))[1:3], '{}')
                   AS examples
        FROM rules r LEFT JOIN checked k ON k.n = r.n
        GROUP BY r.n, r.rule
        UNION ALL
        -- the guard: snapshot_redos is the only record of a rewrite only while the trigger refuses the others
        SELECT 7, 'the trigger that refuses unaudited rewrites (session_summaries_snapshot_is_immutable) is enabled',
               CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                 WHERE t.tgrelid = 'ipintel.session_summaries'::regclass
                                   AND t.tgname = 'session_summaries_snapshot_is_immutable' AND t.tgenabled <> 'D')
                    THEN 0 ELSE 1 END,
               '{}'::text[]
        UNION ALL
        -- an unfinished redo row would let anyone who names it rewrite snapshots unaudited
        SELECT 8, 'every redo in snapshot_redos is finished (an open one would allow rewrites)',
               count(*), coalesce((array_agg('redo ' || d.redo_id ORDER BY d.redo_id))[1:3], '{}')
        FROM ipintel.snapshot_redos d WHERE d.finished_at IS NULL
    ) x
    ORDER BY x.n;
END;
COMMENT ON FUNCTION ipintel.verify_snapshots() IS
    'The rules snapshots obey, each with its violations (sessions, or 1 for a rule about the schema) and up to three example session ids: complete snapshots name every field''s source, snapshot_at is set, every *_source is well-formed (the ASN''s: routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded geolocation build, <source>:current, bogon, none, or a bare registered source for snapshots taken before revision 0022; the country''s: a registered source, <source>:build:<day>, bogon or none; the class''s: a registered source, list:<list>:<day> of a loaded range snapshot, the ASN''s routing:<dataset>:<day> or <source>:build:<day>, bogon or none), the rewrite guard is enabled and no redo is left open (snapshot_redos is the only record of a rewrite). violations = 0 everywhere: the snapshots are sound.';

CREATE OR REPLACE FUNCTION ipintel.verify_integrity()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH ranges AS (
        SELECT h.ip, h.asn, h.source, h.valid,
               lag(h.valid) OVER (PARTITION BY h.ip ORDER BY lower(h.valid), upper(h.valid)) AS previous
        FROM ipintel.ip_asn_history h
    ), found AS (
        SELECT 1 AS n, r.ip AS example FROM ranges r WHERE r.previous && r.valid
        UNION ALL
        SELECT 2, r.ip FROM ranges r WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory i WHERE i.ip = r.ip)
        UNION ALL
        SELECT 3, r.ip FROM ranges r
        WHERE r.asn IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.asn_inventory a WHERE a.asn = r.asn)
        UNION ALL
        SELECT 4, r.ip FROM ranges r
        WHERE NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = r.source)
        UNION ALL
        SELECT 5, i.ip FROM ipintel.ip_inventory i
        CROSS JOIN LATERAL (VALUES (i.current_asn_source), (i.geo_country_source), (i.is_scanner_source),
                                   (i.ip_type_source), (i.is_known_attacker_source)) AS v(source)
        WHERE v.source IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = v.source)
        UNION ALL
        SELECT 6, e.ip FROM ipintel.enrichment_state e
        WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory i WHERE i.ip = e.ip)
           OR NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = e.source)
        UNION ALL
        -- the class columns (revision 0030), written by every merge without a foreign key
        SELECT 7, i.ip FROM ipintel.ip_inventory i
        WHERE i.ip_type IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.ip_types t WHERE t.ip_type = i.ip_type)
        UNION ALL
        SELECT 8, i.ip FROM ipintel.ip_inventory i
        WHERE i.ip_class_basis IS NOT NULL
          AND (coalesce(i.ip_class_basis ->> 'rule', '')
                   NOT IN ('bogon', 'range', 'hosting_asn', 'source', 'residential', 'routed', 'unknown')
               OR (i.ip_class_basis ->> 'rule' IN ('range', 'hosting_asn')
                   AND NOT EXISTS (SELECT 1 FROM ipintel.range_snapshots s
                                   JOIN ipintel.range_lists l ON l.list = s.list
                                   WHERE s.list = i.ip_class_basis ->> 'list'
                                     AND to_char(s.taken_on, 'YYYY-MM-DD') = i.ip_class_basis ->> 'snapshot'
                                     AND l.ip_type = i.ip_type)))
        UNION ALL
        SELECT 9, i.ip FROM ipintel.ip_inventory i
        LEFT JOIN ipintel.range_lists l ON l.list = i.ip_class_basis ->> 'list'
        WHERE i.ip_provider IS DISTINCT FROM
              CASE i.ip_class_basis ->> 'rule' WHEN 'range' THEN l.provider
                                               WHEN 'hosting_asn' THEN i.ip_class_basis ->> 'name'
                                               WHEN 'residential' THEN i.ip_class_basis ->> 'as_name' END
    )
    SELECT r.rule, count(DISTINCT f.example),
           coalesce((array_agg(DISTINCT host(f.example)) FILTER (WHERE f.example IS NOT NULL))[1:3], '{}')
    FROM (VALUES (1, 'no two ranges of one IP in ip_asn_history overlap'),
                 (2, 'every ip_asn_history IP is in ip_inventory'),
                 (3, 'every ip_asn_history ASN is in asn_inventory'),
                 (4, 'every ip_asn_history source is a registered source'),
                 (5, 'every ip_inventory *_source is a registered source'),
                 (6, 'every enrichment_state row is of an IP in ip_inventory and a registered source'),
                 (7, 'every ip_inventory ip_type is a class of ip_types'),
                 (8, 'every ip_inventory ip_class_basis names a rule, and a list basis a loaded snapshot of a list of that ip_type'),
                 (9, 'every ip_inventory ip_provider is the one its ip_class_basis names (the range list''s provider, the hosting or residential AS''s name), else NULL')) AS r(n, rule)
    LEFT JOIN found f ON f.n = r.n
    GROUP BY r.n, r.rule
    ORDER BY r.n;
END;
COMMENT ON FUNCTION ipintel.verify_integrity() IS
    'The rules kept without a per-row check on the merge path, checked from scratch: no two ranges of one IP in ip_asn_history overlap (an exclusion constraint covers closed ranges, statement triggers open ones), every history IP, ASN and source exists (ip_inventory, asn_inventory, enrichment_policy), every ip_inventory *_source is registered, every enrichment_state row is of a known IP and source, and the class columns agree with the registries (ip_type in ip_types; ip_class_basis names a rule and, for a list, a loaded snapshot of a list of that class; ip_provider is the one the basis names). violations: the IPs concerned, with up to three examples; 0 everywhere: sound.';

-- The functions that list the classes say the new ones.
COMMENT ON FUNCTION ipintel.activity_by_class(timestamptz, timestamptz) IS
    'Sessions that started in [p_since, p_until) by infrastructure class (ip_type: bogon, tor, cloud, cdn, hosting, riot, scanner, anonymizer, residential, unrouted, routed, unknown; see ipintel.ip_types) and scanner verdict (scanner, not a scanner, unknown: no source that says was asked), most sessions first: sessions, ips, logins, commands, downloads.';
COMMENT ON FUNCTION ipintel.report_ip_types(timestamptz, timestamptz, bigint) IS
    'Sessions that started in [p_since, p_until) by kind of source IP, attributed as of each session, at most p_top rows. Columns: ip_type (bogon, tor, cloud, cdn, hosting, riot, scanner, anonymizer, residential, unrouted, routed or unknown, as in ip_inventory.ip_type; see ipintel.ip_types), greynoise_scanner (true, false, or unknown when GreyNoise was never asked), sessions, ips (distinct source IPs).';

------------------------------------------------------------------------------------------
-- Grants (sql/099_roles.sql)
------------------------------------------------------------------------------------------
-- CREATE OR REPLACE resets a function's attributes: the loader's entry points stay SECURITY DEFINER.
ALTER FUNCTION ipintel.load_range_snapshot(text, date, text, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.classify_inventory(inet, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;
ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION ipintel.load_range_snapshot(text, date, text, bigint), ipintel.range_snapshot_on(text, date)
    FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ipintel.classify_inventory(inet, bigint), ipintel.ip_classes(inet[], date[], bigint[], text[]),
    ipintel.as_name_looks_residential(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.load_range_snapshot(text, date, text, bigint), ipintel.classify_inventory(inet, bigint)
    TO ipintel_loader;
GRANT SELECT, INSERT ON ipintel_staging.listed_ranges, ipintel_staging.listed_asns TO ipintel_loader;
GRANT SELECT ON ipintel.ip_types, ipintel.range_lists, ipintel.range_snapshots, ipintel.listed_ranges,
    ipintel.listed_asns TO ipintel_loader, ipintel_reader;
REVOKE EXECUTE ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz, interval),
    ipintel.range_snapshot_on(text, date), ipintel.as_name_looks_residential(text),
    ipintel.ip_classes(inet[], date[], bigint[], text[]) TO ipintel_reader, ipintel_loader;
