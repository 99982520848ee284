-- load_geo_build(): geolocation builds stored run-length (merge_dated_runs, as routing history):
-- the tables depend only on the set of builds loaded. Three builds loaded in each of the 6 orders
-- (and one of them twice) give identical tables; a range whose country (or AS) stays the same
-- over consecutive builds is one row; IPv6 ranges too. An edition belongs to one source.
BEGIN;
SELECT plan(7);

CREATE TEMPORARY TABLE build_files (day date, network_range text, country text, asn bigint);
INSERT INTO build_files VALUES
    ('2026-01-01', '81.2.69.0/24', 'GB', 64500), ('2026-01-01', '81.2.70.0-81.2.70.99', 'GB', NULL),
    ('2026-01-01', '5.6.0.0/16', 'DE', 3320), ('2026-01-01', '2a01:4f8::/32', 'DE', 24940),
    ('2026-02-01', '81.2.69.0/24', 'FR', 64500), ('2026-02-01', '5.6.0.0/16', 'DE', 3320),
    ('2026-02-01', '2a01:4f8::/32', 'DE', 24940),
    ('2026-03-01', '81.2.69.0/24', 'GB', 64501), ('2026-03-01', '5.6.0.0/16', 'DE', NULL),
    ('2026-03-01', '2a01:4f8::/32', 'DE', 24940);

-- One day's file.
CREATE FUNCTION pg_temp.load(p_day date) RETURNS boolean LANGUAGE sql
RETURN ipintel_tests.load_geo('ipinfo_lite', 'ipinfo', p_day,
    (SELECT array_agg(ARRAY[f.network_range, f.country, f.asn::text]) FROM build_files f WHERE f.day = p_day));

-- Both tables after loading the days in one order, as text.
CREATE FUNCTION pg_temp.tables_after(p_days date[]) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_day date;
    v_rows text;
BEGIN
    DELETE FROM ipintel.geo_countries;
    DELETE FROM ipintel.geo_asns;
    DELETE FROM ipintel.geo_builds;
    FOREACH v_day IN ARRAY p_days LOOP
        PERFORM pg_temp.load(v_day);
    END LOOP;
    SELECT string_agg(x.r, '; ' ORDER BY x.r) INTO v_rows FROM (
        SELECT format('%s %s %s', c.network_range, c.country, c.valid) FROM ipintel.geo_countries c
        UNION ALL
        SELECT format('%s AS%s %s', a.network_range, a.asn, a.valid) FROM ipintel.geo_asns a) AS x(r);
    RETURN v_rows;
END;
$$;

SELECT is(
    (SELECT count(DISTINCT pg_temp.tables_after(o.days)) FROM (VALUES
        ('{2026-01-01,2026-02-01,2026-03-01}'::date[]), ('{2026-01-01,2026-03-01,2026-02-01}'),
        ('{2026-02-01,2026-01-01,2026-03-01}'), ('{2026-02-01,2026-03-01,2026-01-01}'),
        ('{2026-03-01,2026-01-01,2026-02-01}'), ('{2026-03-01,2026-02-01,2026-01-01}'),
        ('{2026-03-01,2026-01-01,2026-02-01,2026-01-01}')) AS o(days)),
    1::bigint, 'every load order (and a build loaded twice) gives the same tables');

SELECT pg_temp.tables_after('{2026-02-01,2026-03-01,2026-01-01}');
SELECT results_eq($$SELECT network_range::text, country, valid::text FROM ipintel.geo_countries ORDER BY 1, 3$$,
    $$VALUES ('2a01:4f8::/32', 'DE', '[2026-01-01,)'), ('5.6.0.0/16', 'DE', '[2026-01-01,)'),
             ('81.2.69.0/24', 'GB', '[2026-01-01,2026-01-02)'), ('81.2.69.0/24', 'FR', '[2026-02-01,2026-02-02)'),
             ('81.2.69.0/24', 'GB', '[2026-03-01,)'), ('81.2.70.0-81.2.70.99', 'GB', '[2026-01-01,2026-01-02)')$$,
    'a country range the same over consecutive builds is one run; IPv6 ranges too');
SELECT results_eq($$SELECT network_range::text, asn, valid::text FROM ipintel.geo_asns ORDER BY 1, 3$$,
    $$VALUES ('2a01:4f8::/32', 24940::bigint, '[2026-01-01,)'), ('5.6.0.0/16', 3320, '[2026-01-01,2026-02-02)'),
             ('81.2.69.0/24', 64500, '[2026-01-01,2026-02-02)'), ('81.2.69.0/24', 64501, '[2026-03-01,)')$$,
    'the ASN ranges run apart from the countries');
SELECT is(pg_temp.load('2026-02-01'), false, 'a build loaded again is not loaded');
SELECT results_eq($$SELECT built_on, countries, asns FROM ipintel.geo_builds ORDER BY built_on$$,
    $$VALUES ('2026-01-01'::date, 4::bigint, 3::bigint), ('2026-02-01', 3, 3), ('2026-03-01', 3, 2)$$,
    'each build is recorded with its ranges');
SELECT is((SELECT count(*) FROM ipintel_staging.geo_ranges), 0::bigint, 'the staged batches are emptied');
SELECT throws_ok($$SELECT ipintel_tests.load_geo('ipinfo_lite', 'dbip', '2026-04-01', '{{1.0.0.0/24,AU,NULL}}')$$,
    '23000', 'edition ipinfo_lite belongs to source ipinfo, not dbip', 'an edition belongs to one source');

SELECT * FROM finish();
ROLLBACK;
