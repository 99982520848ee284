-- From migrations/versions/0029_range_lists.upgrade.sql (sql/071_dated_runs.sql, sql/073_range_lists.sql,
-- ip_types of sql/030_tiers.sql and load_routing_snapshot of sql/072_routing.sql, as of this revision)
-- Range lists (issue 12): the cloud, CDN and Tor lists and the curated hosting-ASN list as dated
-- snapshots, run-length like routing history, whose merge both now share; the classes of
-- ip_type with their precedence. New tables and functions, load_routing_snapshot replaced:
-- no lock on an existing table beyond reads.
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

-- Merges the staged entries of one snapshot (rows of p_staging with batch_id p_batch_id) as the
-- snapshot of p_dataset taken on p_taken_on into the run table p_runs. p_prev and p_next are the
-- days of the dataset's snapshots just before and just after it (NULL: none). An entry is the
-- tuple of columns p_key, which both tables have and which are NOT NULL (so that = matches and
-- the unique index on the runs serves every lookup); p_dataset_column names the dataset in p_runs.
-- With P = p_prev and N = p_next, an entry of the snapshot extends or joins the runs ending at P
-- and starting at N, or opens a run; an entry absent from it whose run spans its day is split
-- around it (or, for the newest snapshot, closed after P). Every step is one set-based
-- statement; the caller records the snapshot, holds the dataset's lock and empties the batch.
CREATE FUNCTION ipintel.merge_dated_runs(p_runs regclass, p_dataset_column text, p_dataset text, p_staging regclass,
                                         p_key text[], p_batch_id bigint, p_taken_on date, p_prev date,
                                         p_next date)
    RETURNS TABLE (opened bigint, closed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    -- The key columns, quoted once: as a list for the run (o.), the staged row (r.), a cut run
    -- (c.) and a target column list, and as the match of a run with a staged row.
    v_o text := (SELECT string_agg(format('o.%I', k), ', ') FROM unnest(p_key) k);
    v_r text := (SELECT string_agg(format('r.%I', k), ', ') FROM unnest(p_key) k);
    v_c text := (SELECT string_agg(format('c.%I', k), ', ') FROM unnest(p_key) k);
    v_cols text := (SELECT string_agg(format('%I', k), ', ') FROM unnest(p_key) k);
    v_match text := (SELECT string_agg(format('o.%1$I = r.%1$I', k), ' AND ') FROM unnest(p_key) k);
    v_fresh text;
    v_opened bigint := 0;
    v_closed bigint := 0;
    v_split bigint := 0;
BEGIN
    -- Entries of this snapshot not inside a run yet ("fresh"; an entry inside one was shown by
    -- the snapshots on both sides). $1 dataset, $2 batch, $3 day, $4 P, $5 N.
    v_fresh := format('SELECT DISTINCT %2$s FROM %3$s r WHERE r.batch_id = $2 AND NOT EXISTS ('
                      'SELECT 1 FROM %4$s o WHERE o.%5$I = $1 AND %1$s AND o.valid @> $3)',
                      v_match, v_r, p_staging, p_runs, p_dataset_column);

    -- 1. Entries absent from this snapshot whose run spans its day: split around it (a run
    --    reaching past the newest snapshot is open; it now ends after P).
    EXECUTE format('WITH spanning AS ('
                   '  SELECT o.ctid AS row_id, %1$s, o.valid FROM %3$s o'
                   '  WHERE o.%5$I = $1 AND o.valid @> $3 AND lower(o.valid) < $3'
                   '    AND NOT EXISTS (SELECT 1 FROM %4$s r WHERE r.batch_id = $2 AND %6$s)'
                   '), cut AS ('
                   '  UPDATE %3$s o SET valid = daterange(lower(s.valid), $4 + 1)'
                   '  FROM spanning s WHERE o.ctid = s.row_id'
                   '  RETURNING %7$s, s.valid) '
                   'INSERT INTO %3$s (%5$I, %2$s, valid) '
                   'SELECT $1, %8$s, daterange($5, upper(c.valid)) FROM cut c WHERE $5 IS NOT NULL',
                   v_o, v_cols, p_runs, p_staging, p_dataset_column, v_match,
                   (SELECT string_agg(format('s.%I', k), ', ') FROM unnest(p_key) k), v_c)
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;
    GET DIAGNOSTICS v_split = ROW_COUNT;
    EXECUTE format('SELECT count(*) FROM %1$s o WHERE o.%2$I = $1 AND upper(o.valid) = $2 + 1 AND $3 IS NULL',
                   p_runs, p_dataset_column)
    INTO v_closed USING p_dataset, p_prev, p_next;

    -- 2. Fresh entries: join the run ending at P and the one starting at N, else extend one of
    --    them, else open a run. Each statement leaves the entries it handled inside a run, so the
    --    next one no longer sees them as fresh.
    EXECUTE format('WITH fresh AS (%1$s), joined AS ('
                   '  DELETE FROM %2$s a USING fresh f, %2$s b'
                   '  WHERE a.%3$I = $1 AND %4$s AND lower(a.valid) = $5'
                   '    AND b.%3$I = $1 AND %5$s AND upper(b.valid) = $4 + 1'
                   '  RETURNING b.ctid AS before_row, a.valid) '
                   'UPDATE %2$s o SET valid = daterange(lower(o.valid), upper(j.valid)) '
                   'FROM joined j WHERE o.ctid = j.before_row',
                   v_fresh, p_runs, p_dataset_column,
                   (SELECT string_agg(format('a.%1$I = f.%1$I', k), ' AND ') FROM unnest(p_key) k),
                   (SELECT string_agg(format('b.%1$I = f.%1$I', k), ' AND ') FROM unnest(p_key) k))
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;

    EXECUTE format('WITH fresh AS (%1$s) '
                   'UPDATE %2$s o SET valid = daterange(lower(o.valid), CASE WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END) '
                   'FROM fresh f WHERE o.%3$I = $1 AND %4$s AND upper(o.valid) = $4 + 1',
                   v_fresh, p_runs, p_dataset_column,
                   (SELECT string_agg(format('o.%1$I = f.%1$I', k), ' AND ') FROM unnest(p_key) k))
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;

    EXECUTE format('WITH fresh AS (%1$s) '
                   'UPDATE %2$s o SET valid = daterange($3, upper(o.valid)) '
                   'FROM fresh f WHERE o.%3$I = $1 AND %4$s AND lower(o.valid) = $5',
                   v_fresh, p_runs, p_dataset_column,
                   (SELECT string_agg(format('o.%1$I = f.%1$I', k), ' AND ') FROM unnest(p_key) k))
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;

    EXECUTE format('INSERT INTO %1$s (%2$I, %3$s, valid) '
                   'SELECT DISTINCT $1, %4$s, daterange($3, CASE WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END) '
                   'FROM %5$s r WHERE r.batch_id = $2 AND NOT EXISTS ('
                   'SELECT 1 FROM %1$s o WHERE o.%2$I = $1 AND %6$s AND o.valid @> $3) '
                   'ORDER BY %4$s',
                   p_runs, p_dataset_column, v_cols, v_r, p_staging, v_match)
    USING p_dataset, p_batch_id, p_taken_on, p_prev, p_next;
    GET DIAGNOSTICS v_opened = ROW_COUNT;

    RETURN QUERY SELECT v_opened, v_closed + v_split;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_dated_runs(regclass, text, text, regclass, text[], bigint, date, date, date) IS
    'The run-length merge shared by dated snapshots (load_routing_snapshot, load_range_snapshot): the entries (columns p_key, NOT NULL) staged in p_staging batch p_batch_id, as p_dataset''s snapshot of p_taken_on between its snapshots of p_prev and p_next, into p_runs (valid daterange per run; p_dataset_column names the dataset). Any load order gives the same table. Returns the runs opened and closed (split included).';

CREATE OR REPLACE FUNCTION ipintel.load_routing_snapshot(p_dataset text, p_taken_on date, p_file text, p_batch_id bigint)
    RETURNS TABLE (snapshot_id bigint, loaded boolean, prefixes bigint, origins_opened bigint, origins_closed bigint,
                   rejects bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_snapshot bigint;
    v_prev date;
    v_next date;
    v_prefixes bigint;
    v_opened bigint;
    v_closed bigint;
    v_rejects bigint;
BEGIN
    INSERT INTO ipintel.routing_datasets (dataset, rank)
    SELECT p_dataset, coalesce(max(d.rank), 0) + 1 FROM ipintel.routing_datasets d
    ON CONFLICT (dataset) DO NOTHING;
    -- One load of a dataset at a time (the runs of a dataset are read, then written).
    PERFORM 1 FROM ipintel.routing_datasets d WHERE d.dataset = p_dataset FOR UPDATE;

    INSERT INTO ipintel.routing_snapshots (dataset, taken_on, file)
    VALUES (p_dataset, p_taken_on, p_file)
    ON CONFLICT (dataset, taken_on) DO NOTHING
    RETURNING routing_snapshots.snapshot_id INTO v_snapshot;
    IF v_snapshot IS NULL THEN
        -- Loaded before: nothing changes.
        DELETE FROM ipintel_staging.routing_prefixes r WHERE r.batch_id = p_batch_id;
        DELETE FROM ipintel_staging.routing_rejects r WHERE r.batch_id = p_batch_id;
        RETURN QUERY SELECT s.snapshot_id, false, s.prefixes, 0::bigint, 0::bigint, s.rejects
                     FROM ipintel.routing_snapshots s WHERE s.dataset = p_dataset AND s.taken_on = p_taken_on;
        RETURN;
    END IF;

    SELECT max(s.taken_on) FILTER (WHERE s.taken_on < p_taken_on), min(s.taken_on) FILTER (WHERE s.taken_on > p_taken_on)
    INTO v_prev, v_next
    FROM ipintel.routing_snapshots s WHERE s.dataset = p_dataset;

    SELECT count(*) INTO v_prefixes
    FROM (SELECT DISTINCT r.prefix, r.asn FROM ipintel_staging.routing_prefixes r WHERE r.batch_id = p_batch_id) p;

    -- The runs: the merge every dated snapshot shares (sql/071_dated_runs.sql).
    SELECT m.opened, m.closed INTO v_opened, v_closed
    FROM ipintel.merge_dated_runs('ipintel.prefix_origins', 'dataset', p_dataset, 'ipintel_staging.routing_prefixes',
                                  ARRAY['prefix', 'asn'], p_batch_id, p_taken_on, v_prev, v_next) m;

    INSERT INTO ipintel.routing_rejects (snapshot_id, line_no, reason, excerpt)
    SELECT DISTINCT ON (r.line_no) v_snapshot, r.line_no, r.reason, r.excerpt
    FROM ipintel_staging.routing_rejects r WHERE r.batch_id = p_batch_id
    ORDER BY r.line_no;
    GET DIAGNOSTICS v_rejects = ROW_COUNT;
    UPDATE ipintel.routing_snapshots s SET prefixes = v_prefixes, rejects = v_rejects WHERE s.snapshot_id = v_snapshot;

    DELETE FROM ipintel_staging.routing_prefixes r WHERE r.batch_id = p_batch_id;
    DELETE FROM ipintel_staging.routing_rejects r WHERE r.batch_id = p_batch_id;
    -- The lookups join every session's IP against this table: the planner must know its size
    -- right after a load (a GiST probe per IP, never a scan per IP).
    ANALYZE ipintel.prefix_origins;
    RETURN QUERY SELECT v_snapshot, true, v_prefixes, v_opened, v_closed, v_rejects;
END;
$$;
COMMENT ON FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) IS
    'Merges the staged (prefix, origin) pairs of one routing-table file (ipintel_staging.routing_prefixes, batch p_batch_id) as the snapshot of p_dataset taken on p_taken_on into prefix_origins (run-length; any load order gives the same table), with its rejected lines. Loaded before: nothing changes (loaded = false).';

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
CREATE INDEX listed_ranges_lookup_idx ON ipintel.listed_ranges USING gist (prefix_range, valid);
COMMENT ON INDEX ipintel.listed_ranges_lookup_idx IS 'Which ranges contain an address on a day: ip4r''s GiST operator class, as prefix_origins.';

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
            FROM ipintel.merge_dated_runs('ipintel.listed_asns', 'list', p_list, 'ipintel_staging.listed_asns',
                                          ARRAY['asn', 'name', 'source'], p_batch_id, p_taken_on, v_prev, v_next) m;
        ELSE
            SELECT count(*) INTO v_entries
            FROM (SELECT DISTINCT r.prefix, r.service, r.region FROM ipintel_staging.listed_ranges r
                  WHERE r.batch_id = p_batch_id) e;
            SELECT m.opened, m.closed INTO v_opened, v_closed
            FROM ipintel.merge_dated_runs('ipintel.listed_ranges', 'list', p_list, 'ipintel_staging.listed_ranges',
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

------------------------------------------------------------------------------------------
-- Grants (sql/099_roles.sql)
------------------------------------------------------------------------------------------
-- CREATE OR REPLACE resets a function's attributes: the loader's entry point stays SECURITY DEFINER.
ALTER FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.load_range_snapshot(text, date, text, bigint) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION ipintel.merge_dated_runs(regclass, text, text, regclass, text[], bigint, date, date, date),
    ipintel.load_range_snapshot(text, date, text, bigint), ipintel.range_snapshot_on(text, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.load_range_snapshot(text, date, text, bigint) TO ipintel_loader;
GRANT SELECT, INSERT ON ipintel_staging.listed_ranges, ipintel_staging.listed_asns TO ipintel_loader;
GRANT SELECT ON ipintel.ip_types, ipintel.range_lists, ipintel.range_snapshots, ipintel.listed_ranges,
    ipintel.listed_asns TO ipintel_loader, ipintel_reader;
GRANT EXECUTE ON FUNCTION ipintel.range_snapshot_on(text, date) TO ipintel_reader, ipintel_loader;
