-- From migrations/versions/0029_geo_builds.upgrade.sql (sql/073_geo_builds.sql; merge_dated_runs,
-- load_routing_snapshot and routing_snapshots.sha256 of sql/072_routing.sql; take_snapshots of
-- sql/075_snapshots.sql; verify_snapshots of sql/095_analyst_views.sql, as of this revision)
-- Dated geolocation builds (issue 11): several builds of each offline geolocation edition kept
-- run-length in geo_countries / geo_asns with the routing history's merge (now shared:
-- merge_dated_runs); snapshots of sessions older than ipintel's own observations take the
-- country (and ASN) of the build of their day. Routing snapshots record their file's sha256, so
-- `ipintel routing load` skips a file already loaded before reading it.
-- New tables and functions; a nullable column added to routing_snapshots (no rewrite, a small
-- table); take_snapshots, verify_snapshots and load_routing_snapshot replaced (no lock on the tiers).
-- squawk-ignore-file ban-drop-function
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

ALTER TABLE ipintel.routing_snapshots ADD COLUMN sha256 text;
COMMENT ON COLUMN ipintel.routing_snapshots.sha256 IS
    'SHA-256 of the file (hex): ipintel routing load skips a file whose snapshot is loaded, and says so when the file differs. NULL: loaded before revision 0029.';

-- The run-length merge of one dated snapshot, shared by routing history (prefix_origins) and
-- geolocation builds (sql/073_geo_builds.sql): p_runs holds, per series (p_series_column =
-- p_series, e.g. a dataset), runs of a key (p_key_columns, e.g. prefix and asn) over `valid`;
-- p_staged holds the keys of the snapshot taken on p_day (batch p_batch_id; rows whose key has a
-- NULL are not part of it). With p_prev the series' latest snapshot before p_day and p_next its
-- earliest after it (either may be NULL), a key of the snapshot extends or joins the runs ending
-- at p_prev and starting at p_next, or opens a run; a key absent from it whose run spans the day
-- is split around it (or, for a newest snapshot, closed after p_prev). Every step is one
-- set-based statement; the table depends only on the set of snapshots merged, in any order.
-- Returns the runs opened and closed (or split).
CREATE FUNCTION ipintel.merge_dated_runs(p_runs regclass, p_staged regclass, p_series_column text, p_series text,
                                         p_key_columns text[], p_batch_id bigint, p_day date, p_prev date,
                                         p_next date)
    RETURNS TABLE (opened bigint, closed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    -- In every statement: $1 p_series, $2 p_batch_id, $3 p_day, $4 p_prev, $5 p_next.
    v_keys text := (SELECT string_agg(format('%I', k), ', ') FROM unnest(p_key_columns) k);
    -- The staged rows of the snapshot, as r.
    v_staged text := format('%s r WHERE r.batch_id = $2 AND %s', p_staged,
                            (SELECT string_agg(format('r.%I IS NOT NULL', k), ' AND ') FROM unnest(p_key_columns) k));
    -- A format: the runs of the series (alias %2$s) with the key of the row aliased %3$s.
    v_run_of text := '%2$s.%1$I = $1 AND ' || (SELECT string_agg(format('%%2$s.%1$I = %%3$s.%1$I', k), ' AND ')
                                               FROM unnest(p_key_columns) k);
    -- The keys of the snapshot not inside a run yet (a key inside one was shown by the snapshots
    -- on both sides of p_day).
    v_fresh text := format('WITH fresh AS (SELECT DISTINCT %s FROM %s AND NOT EXISTS '
                           '(SELECT 1 FROM %s o WHERE %s AND o.valid @> $3))',
                           (SELECT string_agg(format('r.%I', k), ', ') FROM unnest(p_key_columns) k), v_staged, p_runs,
                           format(v_run_of, p_series_column, 'o', 'r'));
    v_opened bigint;
    v_closed bigint;
    v_split bigint;
BEGIN
    -- 1. Keys absent from this snapshot whose run spans its day: split around it (a run
    --    reaching past the newest snapshot is open; it now ends after p_prev).
    EXECUTE format($q$
        WITH spanning AS (
            SELECT o.ctid AS row_id, o.*
            FROM %1$s o
            WHERE o.%2$I = $1 AND o.valid @> $3 AND lower(o.valid) < $3
              AND NOT EXISTS (SELECT 1 FROM %3$s AND %4$s)
        ), cut AS (
            UPDATE %1$s o SET valid = daterange(lower(s.valid), $4 + 1)
            FROM spanning s WHERE o.ctid = s.row_id
            RETURNING s.*)
        INSERT INTO %1$s (%2$I, %5$s, valid)
        SELECT $1, %5$s, daterange($5, upper(cut.valid))
        FROM cut WHERE $5 IS NOT NULL$q$,
        p_runs, p_series_column, v_staged, format(v_run_of, p_series_column, 'o', 'r'), v_keys)
    USING p_series, p_batch_id, p_day, p_prev, p_next;
    GET DIAGNOSTICS v_split = ROW_COUNT;
    EXECUTE format('SELECT count(*) FROM %s o WHERE o.%I = $1 AND upper(o.valid) = $2 + 1 AND $3 IS NULL',
                   p_runs, p_series_column)
    INTO v_closed USING p_series, p_prev, p_next;

    -- 2. Fresh keys: join the run ending at p_prev and the one starting at p_next, else extend
    --    one of them, else open a run. Each statement leaves the keys it handled inside a run,
    --    so the next one no longer sees them as fresh.
    EXECUTE v_fresh || format($q$, joined AS (
            DELETE FROM %1$s a
            USING fresh f, %1$s b
            WHERE %2$s AND lower(a.valid) = $5
              AND %3$s AND upper(b.valid) = $4 + 1
            RETURNING b.ctid AS before_row, a.valid)
        UPDATE %1$s o SET valid = daterange(lower(o.valid), upper(j.valid))
        FROM joined j WHERE o.ctid = j.before_row$q$,
        p_runs, format(v_run_of, p_series_column, 'a', 'f'), format(v_run_of, p_series_column, 'b', 'f'))
    USING p_series, p_batch_id, p_day, p_prev, p_next;

    EXECUTE v_fresh || format($q$
        UPDATE %1$s o SET valid = daterange(lower(o.valid), CASE WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END)
        FROM fresh f
        WHERE %2$s AND upper(o.valid) = $4 + 1$q$,
        p_runs, format(v_run_of, p_series_column, 'o', 'f'))
    USING p_series, p_batch_id, p_day, p_prev, p_next;

    EXECUTE v_fresh || format($q$
        UPDATE %1$s o SET valid = daterange($3, upper(o.valid))
        FROM fresh f
        WHERE %2$s AND lower(o.valid) = $5$q$,
        p_runs, format(v_run_of, p_series_column, 'o', 'f'))
    USING p_series, p_batch_id, p_day, p_prev, p_next;

    EXECUTE v_fresh || format($q$
        INSERT INTO %1$s (%2$I, %3$s, valid)
        SELECT $1, %3$s, daterange($3, CASE WHEN $5 IS NULL THEN NULL ELSE $3 + 1 END)
        FROM fresh
        ORDER BY %3$s$q$,
        p_runs, p_series_column, v_keys)
    USING p_series, p_batch_id, p_day, p_prev, p_next;
    GET DIAGNOSTICS v_opened = ROW_COUNT;
    RETURN QUERY SELECT v_opened, v_closed + v_split;
END;
$$;
COMMENT ON FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date) IS
    'The run-length merge of one dated snapshot (routing history, geolocation builds): the keys (p_key_columns) staged in p_staged under p_batch_id, as the snapshot of series p_series (p_runs.p_series_column) taken on p_day, between its snapshots p_prev and p_next, into the runs of p_runs (valid daterange). Any merge order of the same snapshots gives the same table. Returns the runs opened and closed. Called by load_routing_snapshot and load_geo_build.';

-- The inverse for old snapshots: drops a series' snapshots before p_first (its earliest snapshot
-- kept; NULL: none is kept) from the runs of p_runs, leaving the table as if only the snapshots
-- from p_first on had been merged: a run that ends before p_first goes, one that reaches it now
-- starts there (it contains p_first only if p_first's snapshot had its key). Returns the runs
-- deleted and the runs cut.
CREATE FUNCTION ipintel.trim_dated_runs(p_runs regclass, p_series_column text, p_series text, p_first date)
    RETURNS TABLE (deleted bigint, cut bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_deleted bigint;
    v_cut bigint;
BEGIN
    EXECUTE format('DELETE FROM %s o WHERE o.%I = $1 AND ($2 IS NULL OR upper(o.valid) <= $2)', p_runs, p_series_column)
    USING p_series, p_first;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    EXECUTE format('UPDATE %s o SET valid = daterange($2, upper(o.valid)) WHERE o.%I = $1 AND lower(o.valid) < $2',
                   p_runs, p_series_column)
    USING p_series, p_first;
    GET DIAGNOSTICS v_cut = ROW_COUNT;
    RETURN QUERY SELECT v_deleted, v_cut;
END;
$$;
COMMENT ON FUNCTION ipintel.trim_dated_runs(regclass, text, text, date) IS
    'Drops the snapshots of series p_series taken before p_first (its earliest snapshot kept; NULL: all) from the runs of p_runs (merge_dated_runs), leaving the table as if only the later ones had been merged. Returns the runs deleted and cut. Called by forget_geo_builds.';

-- The new signature takes the file's sha256 (callers with four arguments still work: NULL).
DROP FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint);
-- Merges one staged file as the snapshot of p_dataset taken on p_taken_on (merge_dated_runs),
-- with its rejected lines, and records where it came from (p_file, its sha256).
CREATE FUNCTION ipintel.load_routing_snapshot(p_dataset text, p_taken_on date, p_file text, p_batch_id bigint,
                                              p_sha256 text DEFAULT NULL)
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

    INSERT INTO ipintel.routing_snapshots (dataset, taken_on, file, sha256)
    VALUES (p_dataset, p_taken_on, p_file, p_sha256)
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

    SELECT m.opened, m.closed INTO v_opened, v_closed
    FROM ipintel.merge_dated_runs('ipintel.prefix_origins', 'ipintel_staging.routing_prefixes', 'dataset', p_dataset,
                                  '{prefix,asn}', p_batch_id, p_taken_on, v_prev, v_next) m;

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
COMMENT ON FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint, text) IS
    'Merges the staged (prefix, origin) pairs of one routing-table file (ipintel_staging.routing_prefixes, batch p_batch_id) as the snapshot of p_dataset taken on p_taken_on into prefix_origins (run-length, merge_dated_runs; any load order gives the same table), with its rejected lines and the file''s sha256. Loaded before: nothing changes (loaded = false).';

CREATE TABLE ipintel.geo_editions (
    edition  text     NOT NULL,
    source   text     NOT NULL,
    max_age  interval NOT NULL DEFAULT interval '35 days',
    CONSTRAINT geo_editions_pkey PRIMARY KEY (edition),
    CONSTRAINT geo_editions_source_fkey FOREIGN KEY (source) REFERENCES ipintel.enrichment_policy (source),
    CONSTRAINT geo_editions_name_is_a_lower_case_name CHECK (edition ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT geo_editions_max_age_is_not_negative CHECK (max_age >= interval '0')
);
COMMENT ON TABLE ipintel.geo_editions IS
    'Offline geolocation editions whose dated builds are kept (one per kind of file, e.g. geolite2_country, ipinfo_lite, dbip_city_lite), with the source they belong to and how old a build may be to attribute a session. An edition is registered by its first build.';
COMMENT ON COLUMN ipintel.geo_editions.edition IS 'Edition name: the file''s database type in lower case, e.g. geolite2_country, geolite2_asn, ipinfo_lite, dbip_city_lite, dbip_asn_lite.';
COMMENT ON COLUMN ipintel.geo_editions.source IS
    'The registered source whose data it is (enrichment_policy): its country_rank and asn_rank decide between editions.';
COMMENT ON COLUMN ipintel.geo_editions.max_age IS
    'A build made more than this before a session does not attribute it (default 35 days: monthly builds and their publication delay).';

CREATE TABLE ipintel.geo_builds (
    build_id       bigint      GENERATED ALWAYS AS IDENTITY,
    edition        text        NOT NULL,
    built_on       date        NOT NULL,
    build_epoch    bigint      NOT NULL,
    database_type  text        NOT NULL,
    file           text        NOT NULL,
    sha256         text        NOT NULL,
    loaded_at      timestamptz NOT NULL DEFAULT now(),
    countries      bigint      NOT NULL DEFAULT 0,
    asns           bigint      NOT NULL DEFAULT 0,
    CONSTRAINT geo_builds_pkey PRIMARY KEY (build_id),
    CONSTRAINT geo_builds_edition_built_on_key UNIQUE (edition, built_on),
    CONSTRAINT geo_builds_edition_fkey FOREIGN KEY (edition) REFERENCES ipintel.geo_editions (edition),
    CONSTRAINT geo_builds_built_on_is_the_epoch_day
        CHECK (built_on = (to_timestamp(build_epoch) AT TIME ZONE 'UTC')::date),
    CONSTRAINT geo_builds_sha256_is_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT geo_builds_counts_are_not_negative CHECK (countries >= 0 AND asns >= 0)
);
COMMENT ON TABLE ipintel.geo_builds IS 'Every geolocation build loaded (ipintel geo load): one per edition and day.';
COMMENT ON COLUMN ipintel.geo_builds.build_id IS 'Build number.';
COMMENT ON COLUMN ipintel.geo_builds.edition IS 'The edition it is a build of (geo_editions).';
COMMENT ON COLUMN ipintel.geo_builds.built_on IS
    'The UTC day of its build time: a snapshot names it as <source>:build:<built_on>.';
COMMENT ON COLUMN ipintel.geo_builds.build_epoch IS 'The file''s build time (metadata build_epoch, seconds since 1970).';
COMMENT ON COLUMN ipintel.geo_builds.database_type IS 'The file''s database type (metadata), e.g. GeoLite2-Country.';
COMMENT ON COLUMN ipintel.geo_builds.file IS 'The file it was loaded from (as ipintel geo load found it).';
COMMENT ON COLUMN ipintel.geo_builds.sha256 IS 'SHA-256 of the file (hex).';
COMMENT ON COLUMN ipintel.geo_builds.loaded_at IS 'When ipintel geo load merged it.';
COMMENT ON COLUMN ipintel.geo_builds.countries IS 'Country ranges in the build (neighbouring networks of one country joined).';
COMMENT ON COLUMN ipintel.geo_builds.asns IS 'ASN ranges in the build (neighbouring networks of one AS joined).';

CREATE TABLE ipintel.geo_countries (
    edition        text           NOT NULL,
    first_ip       inet           NOT NULL,
    last_ip        inet           NOT NULL,
    country        text           NOT NULL,
    valid          daterange      NOT NULL,
    network_range  public.iprange NOT NULL
        GENERATED ALWAYS AS (public.iprange(public.ipaddress(first_ip), public.ipaddress(last_ip))) STORED,
    CONSTRAINT geo_countries_edition_fkey FOREIGN KEY (edition) REFERENCES ipintel.geo_editions (edition),
    CONSTRAINT geo_countries_range_is_ordered CHECK (family(first_ip) = family(last_ip) AND first_ip <= last_ip),
    CONSTRAINT geo_countries_country_is_iso_alpha2 CHECK (country ~ '^[A-Z]{2}$'),
    CONSTRAINT geo_countries_valid_is_bounded_below CHECK (NOT lower_inf(valid) AND NOT isempty(valid))
);
COMMENT ON TABLE ipintel.geo_countries IS
    'Geolocation history, run-length: every address from first_ip to last_ip is in country in every build of the edition made on a day in valid.';
COMMENT ON COLUMN ipintel.geo_countries.edition IS 'The edition whose builds say so (geo_editions).';
COMMENT ON COLUMN ipintel.geo_countries.first_ip IS 'First address of a range: neighbouring networks of the build with one country.';
COMMENT ON COLUMN ipintel.geo_countries.last_ip IS 'Last address of the range.';
COMMENT ON COLUMN ipintel.geo_countries.network_range IS 'Generated: the range as an ip4r iprange, for the GiST lookups.';
COMMENT ON COLUMN ipintel.geo_countries.country IS 'ISO 3166-1 alpha-2 country code.';
COMMENT ON COLUMN ipintel.geo_countries.valid IS
    'The days of the consecutive builds that said so: from the first to the last (upper bound exclusive); unbounded above while the edition''s latest build still says so.';
CREATE UNIQUE INDEX geo_countries_run_key ON ipintel.geo_countries (edition, first_ip, last_ip, country, lower(valid));
COMMENT ON INDEX ipintel.geo_countries_run_key IS 'One run per range, country and first day.';
CREATE INDEX geo_countries_network_range_idx ON ipintel.geo_countries USING gist (network_range);
COMMENT ON INDEX ipintel.geo_countries_network_range_idx IS
    'Which ranges contain an address (the day is checked on the rows found): ip4r''s GiST, as prefix_origins.';

CREATE TABLE ipintel.geo_asns (
    edition        text           NOT NULL,
    first_ip       inet           NOT NULL,
    last_ip        inet           NOT NULL,
    asn            bigint         NOT NULL,
    valid          daterange      NOT NULL,
    network_range  public.iprange NOT NULL
        GENERATED ALWAYS AS (public.iprange(public.ipaddress(first_ip), public.ipaddress(last_ip))) STORED,
    CONSTRAINT geo_asns_edition_fkey FOREIGN KEY (edition) REFERENCES ipintel.geo_editions (edition),
    CONSTRAINT geo_asns_range_is_ordered CHECK (family(first_ip) = family(last_ip) AND first_ip <= last_ip),
    CONSTRAINT geo_asns_asn_is_32_bit CHECK (asn BETWEEN 0 AND 4294967295),
    CONSTRAINT geo_asns_valid_is_bounded_below CHECK (NOT lower_inf(valid) AND NOT isempty(valid))
);
COMMENT ON TABLE ipintel.geo_asns IS
    'The ASNs of the geolocation builds that have one (GeoLite2-ASN, IPinfo Lite, DB-IP Lite ASN), run-length: every address from first_ip to last_ip is in asn in every build of the edition made on a day in valid.';
COMMENT ON COLUMN ipintel.geo_asns.edition IS 'The edition whose builds say so (geo_editions).';
COMMENT ON COLUMN ipintel.geo_asns.first_ip IS 'First address of a range: neighbouring networks of the build with one AS.';
COMMENT ON COLUMN ipintel.geo_asns.last_ip IS 'Last address of the range.';
COMMENT ON COLUMN ipintel.geo_asns.network_range IS 'Generated: the range as an ip4r iprange, for the GiST lookups.';
COMMENT ON COLUMN ipintel.geo_asns.asn IS 'The AS number the build gives.';
COMMENT ON COLUMN ipintel.geo_asns.valid IS
    'The days of the consecutive builds that said so: from the first to the last (upper bound exclusive); unbounded above while the edition''s latest build still says so.';
CREATE UNIQUE INDEX geo_asns_run_key ON ipintel.geo_asns (edition, first_ip, last_ip, asn, lower(valid));
COMMENT ON INDEX ipintel.geo_asns_run_key IS 'One run per range, AS and first day.';
CREATE INDEX geo_asns_network_range_idx ON ipintel.geo_asns USING gist (network_range);
COMMENT ON INDEX ipintel.geo_asns_network_range_idx IS
    'Which ranges contain an address (the day is checked on the rows found): ip4r''s GiST, as prefix_origins.';

CREATE UNLOGGED TABLE ipintel_staging.geo_ranges (
    batch_id  bigint NOT NULL,
    first_ip  inet   NOT NULL,
    last_ip   inet   NOT NULL,
    country   text,
    asn       bigint
);
COMMENT ON TABLE ipintel_staging.geo_ranges IS
    'Staging for load_geo_build: the country ranges (asn NULL) and ASN ranges (country NULL) of one build.';
CREATE INDEX geo_ranges_batch_id_idx ON ipintel_staging.geo_ranges (batch_id);

-- Merges one staged build of p_edition (a file of p_source's) made at p_build_epoch into
-- geo_countries and geo_asns (merge_dated_runs, as routing history), and records it.
CREATE FUNCTION ipintel.load_geo_build(p_edition text, p_source text, p_build_epoch bigint, p_database_type text,
                                       p_file text, p_sha256 text, p_batch_id bigint)
    RETURNS TABLE (build_id bigint, loaded boolean, countries bigint, asns bigint, runs_opened bigint,
                   runs_closed bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_built_on date := (to_timestamp(p_build_epoch) AT TIME ZONE 'UTC')::date;
    v_build bigint;
    v_prev date;
    v_next date;
    v_countries bigint;
    v_asns bigint;
    v_country_runs record;
    v_asn_runs record;
BEGIN
    INSERT INTO ipintel.geo_editions (edition, source) VALUES (p_edition, p_source) ON CONFLICT (edition) DO NOTHING;
    -- One load of an edition at a time (its runs are read, then written).
    PERFORM 1 FROM ipintel.geo_editions e WHERE e.edition = p_edition AND e.source = p_source FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'edition % belongs to source %, not %', p_edition,
            (SELECT e.source FROM ipintel.geo_editions e WHERE e.edition = p_edition), p_source
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;

    INSERT INTO ipintel.geo_builds (edition, built_on, build_epoch, database_type, file, sha256)
    VALUES (p_edition, v_built_on, p_build_epoch, p_database_type, p_file, p_sha256)
    ON CONFLICT (edition, built_on) DO NOTHING
    RETURNING geo_builds.build_id INTO v_build;
    IF v_build IS NULL THEN
        -- Loaded before: nothing changes.
        DELETE FROM ipintel_staging.geo_ranges r WHERE r.batch_id = p_batch_id;
        RETURN QUERY SELECT b.build_id, false, b.countries, b.asns, 0::bigint, 0::bigint
                     FROM ipintel.geo_builds b WHERE b.edition = p_edition AND b.built_on = v_built_on;
        RETURN;
    END IF;

    SELECT max(b.built_on) FILTER (WHERE b.built_on < v_built_on), min(b.built_on) FILTER (WHERE b.built_on > v_built_on)
    INTO v_prev, v_next
    FROM ipintel.geo_builds b WHERE b.edition = p_edition;
    SELECT count(DISTINCT (r.first_ip, r.last_ip, r.country)) FILTER (WHERE r.country IS NOT NULL),
           count(DISTINCT (r.first_ip, r.last_ip, r.asn)) FILTER (WHERE r.asn IS NOT NULL)
    INTO v_countries, v_asns
    FROM ipintel_staging.geo_ranges r WHERE r.batch_id = p_batch_id;

    SELECT * INTO v_country_runs
    FROM ipintel.merge_dated_runs('ipintel.geo_countries', 'ipintel_staging.geo_ranges', 'edition', p_edition,
                                  '{first_ip,last_ip,country}', p_batch_id, v_built_on, v_prev, v_next);
    SELECT * INTO v_asn_runs
    FROM ipintel.merge_dated_runs('ipintel.geo_asns', 'ipintel_staging.geo_ranges', 'edition', p_edition,
                                  '{first_ip,last_ip,asn}', p_batch_id, v_built_on, v_prev, v_next);
    UPDATE ipintel.geo_builds b SET countries = v_countries, asns = v_asns WHERE b.build_id = v_build;

    DELETE FROM ipintel_staging.geo_ranges r WHERE r.batch_id = p_batch_id;
    -- As for prefix_origins: the planner must know their size right after a load.
    ANALYZE ipintel.geo_countries;
    ANALYZE ipintel.geo_asns;
    RETURN QUERY SELECT v_build, true, v_countries, v_asns, v_country_runs.opened + v_asn_runs.opened,
                        v_country_runs.closed + v_asn_runs.closed;
END;
$$;
COMMENT ON FUNCTION ipintel.load_geo_build(text, text, bigint, text, text, text, bigint) IS
    'Merges the staged ranges of one geolocation build (ipintel_staging.geo_ranges, batch p_batch_id) as the build of p_edition (registered for p_source on its first build) made at p_build_epoch into geo_countries and geo_asns (run-length, merge_dated_runs; any load order gives the same tables), and records it in geo_builds with its file and sha256. A build of that edition and day loaded before: nothing changes (loaded = false).';

-- Forgets the builds of p_edition made before p_before (NULL: every build but the latest), as if
-- they had never been loaded (trim_dated_runs): for a licence that asks for old copies to be
-- deleted (GeoLite2's EULA). Snapshots taken from them keep their values and sources.
CREATE FUNCTION ipintel.forget_geo_builds(p_edition text, p_before date DEFAULT NULL)
    RETURNS TABLE (builds bigint, runs_deleted bigint, runs_cut bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_builds bigint;
    v_first date;
    v_countries record;
    v_asns record;
BEGIN
    -- One load or forget of an edition at a time.
    PERFORM 1 FROM ipintel.geo_editions e WHERE e.edition = p_edition FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no geolocation edition %', p_edition USING ERRCODE = 'no_data_found';
    END IF;
    DELETE FROM ipintel.geo_builds b
    WHERE b.edition = p_edition
      AND b.built_on < coalesce(p_before, (SELECT max(x.built_on) FROM ipintel.geo_builds x WHERE x.edition = p_edition));
    GET DIAGNOSTICS v_builds = ROW_COUNT;
    SELECT min(b.built_on) INTO v_first FROM ipintel.geo_builds b WHERE b.edition = p_edition;
    SELECT * INTO v_countries FROM ipintel.trim_dated_runs('ipintel.geo_countries', 'edition', p_edition, v_first);
    SELECT * INTO v_asns FROM ipintel.trim_dated_runs('ipintel.geo_asns', 'edition', p_edition, v_first);
    RETURN QUERY SELECT v_builds, v_countries.deleted + v_asns.deleted, v_countries.cut + v_asns.cut;
END;
$$;
COMMENT ON FUNCTION ipintel.forget_geo_builds(text, date) IS
    'Removes the builds of p_edition made before p_before (NULL: all but the latest) from geo_builds, geo_countries and geo_asns, leaving them as if those builds had never been loaded (trim_dated_runs). For licences that ask for old copies to be deleted (GeoLite2). Snapshots taken from them keep their values. Returns the builds removed and the runs deleted and cut.';

-- Set-based: what the dated builds say of each (ip, day) pair. Per edition, the build that
-- attributes a session of that day: the latest made on or before it (never a later one: it may
-- already show changes made after the session) and no older than the edition's max_age,
-- computed once per distinct day. Of the editions with such a build that know the IP, the source
-- ranked first (enrichment_policy.country_rank, asn_rank), then the latest build. One GiST probe
-- per pair and edition.
CREATE FUNCTION ipintel.geo_build_facts(p_ips inet[], p_days date[])
    RETURNS TABLE (ip inet, day date, country text, country_build text, asn bigint, asn_build text)
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    WITH pairs AS (
        SELECT DISTINCT q.ip, q.day FROM unnest(p_ips, p_days) AS q(ip, day)
    ), builds AS MATERIALIZED (  -- once per day and edition, not once per pair
        SELECT w.day, w.edition, w.source, w.built_on, w.source || ':build:' || to_char(w.built_on, 'YYYY-MM-DD') AS build
        FROM (SELECT x.day, e.edition, e.source,
                     (SELECT max(b.built_on) FROM ipintel.geo_builds b  -- one probe of its unique index
                      WHERE b.edition = e.edition AND b.built_on <= x.day AND b.built_on >= (x.day - e.max_age)::date)
                         AS built_on
              FROM (SELECT DISTINCT pairs.day FROM pairs) x
              CROSS JOIN ipintel.geo_editions e) w
        WHERE w.built_on IS NOT NULL
    ), countries AS (
        SELECT DISTINCT ON (q.ip, q.day) q.ip, q.day, g.country, w.build
        FROM pairs q
        JOIN builds w ON w.day = q.day
        JOIN ipintel.enrichment_policy p ON p.source = w.source AND p.country_rank IS NOT NULL
        JOIN ipintel.geo_countries g
          ON g.edition = w.edition AND g.network_range OPERATOR(public.>>=) public.iprange(q.ip::cidr) AND g.valid @> w.built_on
        ORDER BY q.ip, q.day, p.country_rank, w.built_on DESC, w.edition
    ), asns AS (
        SELECT DISTINCT ON (q.ip, q.day) q.ip, q.day, g.asn, w.build
        FROM pairs q
        JOIN builds w ON w.day = q.day
        JOIN ipintel.enrichment_policy p ON p.source = w.source AND p.asn_rank IS NOT NULL
        JOIN ipintel.geo_asns g
          ON g.edition = w.edition AND g.network_range OPERATOR(public.>>=) public.iprange(q.ip::cidr) AND g.valid @> w.built_on
        ORDER BY q.ip, q.day, p.asn_rank, w.built_on DESC, w.edition
    )
    SELECT coalesce(c.ip, a.ip), coalesce(c.day, a.day), c.country, c.build, a.asn, a.build
    FROM countries c
    FULL JOIN asns a ON a.ip = c.ip AND a.day = c.day;
END;
COMMENT ON FUNCTION ipintel.geo_build_facts(inet[], date[]) IS
    'What the dated geolocation builds say of parallel arrays of IPs and (UTC) days: per pair the country and the ASN of the first-ranked source (country_rank, asn_rank) whose edition has a build made on or before the day and within its max_age (the latest such build) that knows the IP, each with that build as <source>:build:<day>. Pairs no build covers are absent.';

-- Since when ipintel has itself observed what p_source last said of p_ip (enrichment_state): an
-- offline database's answer holds as of its build (its build_epoch), a live service's as of the
-- fetch that first gave it as it is now (changed_at); the earlier of the two. NULL: the source
-- never answered for the IP.
CREATE FUNCTION ipintel.observed_since(p_ip inet, p_source text)
    RETURNS date
    LANGUAGE sql
    STABLE
RETURN (SELECT (least(e.changed_at, to_timestamp(e.build)) AT TIME ZONE 'UTC')::date
        FROM ipintel.enrichment_state e WHERE e.ip = p_ip AND e.source = p_source);
COMMENT ON FUNCTION ipintel.observed_since(inet, text) IS
    'The UTC day since which ipintel has observed what p_source last said of p_ip: the build day of an offline database''s answer or, if earlier, the fetch that first gave the answer as it is now (enrichment_state.changed_at); NULL when the source never answered for it. Sessions before it take dated geolocation builds (take_snapshots).';

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
        SELECT s.session_id, r.*,
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
               i.ip_type,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.ip_type_source, 'none') END AS ip_type_source,
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
            snapshot_ip_type = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN t.ip_type
                                    ELSE s.snapshot_ip_type END,
            snapshot_ip_type_source = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN t.ip_type_source
                                           ELSE s.snapshot_ip_type_source END,
            snapshot_is_known_attacker = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                              THEN t.is_known_attacker ELSE s.snapshot_is_known_attacker END,
            snapshot_threatfeeds = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                        THEN t.threatfeeds ELSE s.snapshot_threatfeeds END,
            snapshot_is_known_attacker_source = CASE WHEN s.snapshot_is_known_attacker_source IS NULL
                                                          AND t.known_attacker_ready
                                                     THEN t.known_attacker_source
                                                     ELSE s.snapshot_is_known_attacker_source END,
            snapshot_enrichment = t.enrichment,
            snapshot_at = coalesce(s.snapshot_at, now()),
            snapshot_complete_at = CASE WHEN t.all_ready THEN now() END,
            updated_at = now()
        FROM todo t
        WHERE s.session_id = t.session_id
        RETURNING 1)
    SELECT count(*) INTO v_changed FROM filled;
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.take_snapshots() IS
    'Fills the unknown snapshot_* fields of incomplete sessions that no better-ranked source is still awaited for (see ipintel.snapshot_waits), and marks a snapshot complete once no source is awaited. Never changes a known field. Linear in the incomplete sessions and their IPs. Returns the sessions changed.';

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
            (5, 'snapshot_ip_type_source is a registered source, bogon or none',
             c.ip_type_source IS NOT NULL AND c.ip_type_source NOT IN (SELECT a.source FROM allowed_source a)),
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
            (5, 'snapshot_ip_type_source is a registered source, bogon or none'),
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
    'The rules snapshots obey, each with its violations (sessions, or 1 for a rule about the schema) and up to three example session ids: complete snapshots name every field''s source, snapshot_at is set, every *_source is well-formed (the ASN''s: routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded geolocation build, <source>:current, bogon, none, or a bare registered source for snapshots taken before revision 0022; the country''s: a registered source, <source>:build:<day>, bogon or none), the rewrite guard is enabled and no redo is left open (snapshot_redos is the only record of a rewrite). violations = 0 everywhere: the snapshots are sound.';

COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn IS 'Snapshot: origin AS of the source IP at the session''s time: from routing history (prefix_origins) at its day, else ip_asn_history at its time, else (a session before ipintel observed the IP''s current ASN) the dated geolocation build of its day (geo_asns), else its current_asn when the field was filled. Known once snapshot_asn_source is set (NULL then means not routed / not known by any source).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_country IS 'Snapshot: the country of the dated geolocation build of the session''s day (geo_countries) for a session before ipintel observed the IP''s current country, else ip_inventory.geo_country when the field was filled. Known once snapshot_country_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn_source IS
    'Where snapshot_asn came from: routing:<dataset>:<snapshot day> (routing history), <source>:history (the ip_asn_history range at the session''s time), <source>:build:<day> (a dated geolocation build, geo_builds), <source>:current (current_asn when filled), bogon (never asked), none (every source answered or declined, none knew). Before revision 0022: the bare source name. NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_country_source IS
    'Where snapshot_country came from: <source>:build:<day> (a dated geolocation build, geo_builds), else the source of geo_country: maxmind, ipinfo, dbip (geolocation), cymru (registration country); bogon, none (XX: no source knew). NULL: not known yet, still fillable.';

-- CREATE OR REPLACE resets a function's attributes: the loader's entry point stays SECURITY DEFINER.
ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;
-- The loader loads routing snapshots and geolocation builds (SECURITY DEFINER entry points), COPYs
-- their staging rows and reads the history; the reader reads it (tables a revision after 0021
-- adds are readable by the reader by default). merge_dated_runs and trim_dated_runs run inside
-- the entry points only.
ALTER FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint, text) SECURITY DEFINER;
ALTER FUNCTION ipintel.load_geo_build(text, text, bigint, text, text, text, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.forget_geo_builds(text, date) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION ipintel.merge_dated_runs(regclass, regclass, text, text, text[], bigint, date, date, date),
    ipintel.trim_dated_runs(regclass, text, text, date),
    ipintel.load_routing_snapshot(text, date, text, bigint, text),
    ipintel.load_geo_build(text, text, bigint, text, text, text, bigint), ipintel.forget_geo_builds(text, date),
    ipintel.geo_build_facts(inet[], date[]), ipintel.observed_since(inet, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint, text),
    ipintel.load_geo_build(text, text, bigint, text, text, text, bigint), ipintel.forget_geo_builds(text, date)
    TO ipintel_loader;
GRANT SELECT, INSERT ON ipintel_staging.geo_ranges TO ipintel_loader;
GRANT SELECT ON ipintel.geo_editions, ipintel.geo_builds, ipintel.geo_countries, ipintel.geo_asns
    TO ipintel_loader, ipintel_reader;
GRANT EXECUTE ON FUNCTION ipintel.geo_build_facts(inet[], date[]),
    ipintel.observed_since(inet, text) TO ipintel_loader, ipintel_reader;
