-- From sql/073_geo_builds.sql
-- Dated geolocation builds: several builds of each offline geolocation edition (MaxMind GeoLite2 /
-- GeoIP2, IPinfo Lite, DB-IP Lite .mmdb files), registered by their build time (the file's
-- build_epoch), so a session older than ipintel's own observations gets the country (and ASN)
-- of the build of its own time, not today's.
--
-- `ipintel geo load` reads each file's networks, joins neighbours with the same country (or ASN)
-- into ranges, stages them, and load_geo_build() merges them with the machinery of routing
-- history (merge_dated_runs, sql/072_routing.sql): a range whose country stays the same over
-- consecutive builds of an edition is one row, any load order gives the same table, and
-- loading a build twice changes nothing.

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
    SELECT * INTO v_country_runs
    FROM ipintel.merge_dated_runs('ipintel.geo_countries', 'ipintel_staging.geo_ranges', 'edition', p_edition,
                                  '{first_ip,last_ip,country}', p_batch_id, v_built_on, v_prev, v_next);
    SELECT * INTO v_asn_runs
    FROM ipintel.merge_dated_runs('ipintel.geo_asns', 'ipintel_staging.geo_ranges', 'edition', p_edition,
                                  '{first_ip,last_ip,asn}', p_batch_id, v_built_on, v_prev, v_next);
    -- the build's distinct ranges of each kind, as merge_dated_runs counts them (revision 0077)
    v_countries := v_country_runs.entries;
    v_asns := v_asn_runs.entries;
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
        -- a one-time filter: with no build loaded at all the pairs are not even gathered
        WHERE EXISTS (SELECT 1 FROM ipintel.geo_builds)
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
