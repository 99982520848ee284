-- From sql/073_range_lists.sql
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
COMMENT ON COLUMN ipintel.listed_ranges.prefix_range IS 'Generated: the prefix as an ip4r iprange. Indexed for the containment lookups until revision 0083, which looks ranges up by prefix itself (listed_ranges_prefix_idx); kept for queries that use it.';
CREATE UNIQUE INDEX listed_ranges_run_key ON ipintel.listed_ranges (list, prefix, service, region, lower(valid));
COMMENT ON INDEX ipintel.listed_ranges_run_key IS 'One run per entry and first day.';
-- Which ranges contain an address: an SP-GiST radix tree on the prefix itself (revision 0083, as
-- prefix_origins' since 0082), the day a filter on the few runs of each range found. Until 0083 a
-- GiST on prefix_range: the same answers, ip_classes' one probe per IP about three times slower
-- (300,000 IPs against the bench's 14,732 ranges: 2.5 s against 0.8 s).
CREATE INDEX listed_ranges_prefix_idx ON ipintel.listed_ranges USING spgist (prefix inet_ops);
COMMENT ON INDEX ipintel.listed_ranges_prefix_idx IS
    'Which ranges contain an address (prefix >>= ip; the day is checked on the rows found): SP-GiST inet_ops, as prefix_origins (revision 0083; no GiST on inet: issue 9).';

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
            SELECT m.opened, m.closed, m.entries INTO v_opened, v_closed, v_entries
            FROM ipintel.merge_dated_runs('ipintel.listed_asns', 'ipintel_staging.listed_asns', 'list', p_list,
                                          ARRAY['asn', 'name', 'source'], p_batch_id, p_taken_on, v_prev, v_next) m;
        ELSE
            SELECT m.opened, m.closed, m.entries INTO v_opened, v_closed, v_entries
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
