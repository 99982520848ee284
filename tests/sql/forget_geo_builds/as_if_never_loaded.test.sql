-- forget_geo_builds(): the builds of an edition made before a day are removed as if they had never
-- been loaded (trim_dated_runs); without a day, every build but the latest.
BEGIN;
SELECT plan(6);

CREATE TEMPORARY TABLE build_files (day date, network_range text, country text, asn bigint);
INSERT INTO build_files VALUES
    ('2026-01-01', '81.2.69.0/24', 'GB', 64500), ('2026-01-01', '5.6.0.0/16', 'DE', 3320),
    ('2026-01-01', '9.9.9.0/24', 'CH', 19281),
    ('2026-02-01', '81.2.69.0/24', 'FR', 64500), ('2026-02-01', '5.6.0.0/16', 'DE', 3320),
    ('2026-03-01', '81.2.69.0/24', 'FR', 64501), ('2026-03-01', '5.6.0.0/16', 'DE', NULL),
    ('2026-03-01', '2a01:4f8::/32', 'DE', 24940);

CREATE FUNCTION pg_temp.load(p_day date) RETURNS boolean LANGUAGE sql
RETURN ipintel_tests.load_geo('ipinfo_lite', 'ipinfo', p_day,
    (SELECT array_agg(ARRAY[f.network_range, f.country, f.asn::text]) FROM build_files f WHERE f.day = p_day));

-- The tables (and the builds recorded) as text.
CREATE FUNCTION pg_temp.tables() RETURNS text LANGUAGE sql
RETURN (SELECT string_agg(x.r, '; ' ORDER BY x.r) FROM (
            SELECT format('%s %s %s', c.network_range, c.country, c.valid) FROM ipintel.geo_countries c
            UNION ALL
            SELECT format('%s AS%s %s', a.network_range, a.asn, a.valid) FROM ipintel.geo_asns a
            UNION ALL
            SELECT format('build %s', b.built_on) FROM ipintel.geo_builds b) AS x(r));

-- The tables after loading the days given, from empty.
CREATE FUNCTION pg_temp.loaded(p_days date[]) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM ipintel.geo_countries;
    DELETE FROM ipintel.geo_asns;
    DELETE FROM ipintel.geo_builds;
    PERFORM pg_temp.load(d) FROM unnest(p_days) d;
    RETURN pg_temp.tables();
END;
$$;

SELECT pg_temp.loaded('{2026-02-01,2026-03-01}') AS from_february \gset
SELECT pg_temp.loaded('{2026-03-01}') AS latest \gset

SELECT pg_temp.loaded('{2026-03-01,2026-01-01,2026-02-01}');
SELECT results_eq($$SELECT * FROM ipintel.forget_geo_builds('ipinfo_lite', '2026-02-01')$$,
    $$VALUES (1::bigint, 3::bigint, 3::bigint)$$,
    'one build forgotten: the runs that ended with it deleted (81.2.69.0/24 GB, 9.9.9.0/24 CH and AS19281), '
    'those that reach the next build cut (5.6.0.0/16 DE, AS64500, AS3320)');
SELECT is(pg_temp.tables(), :'from_february', 'as if only the builds from February on had been loaded');
SELECT results_eq($$SELECT builds FROM ipintel.forget_geo_builds('ipinfo_lite')$$, $$VALUES (1::bigint)$$,
    'without a day: every build but the latest');
SELECT is(pg_temp.tables(), :'latest', 'as if only the latest build had been loaded');
SELECT ipintel.forget_geo_builds('ipinfo_lite', '2027-01-01');
SELECT is(pg_temp.tables(), NULL, 'a day after every build: nothing left');
SELECT throws_ok($$SELECT ipintel.forget_geo_builds('no_such_edition')$$, 'P0002', 'no geolocation edition no_such_edition',
                 'an unknown edition is an error');

SELECT * FROM finish();
ROLLBACK;
