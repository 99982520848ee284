-- load_routing_snapshot(): run-length storage that depends only on the set of snapshots loaded.
-- Three snapshots loaded in each of the 6 orders (and one of them twice) give identical tables;
-- a pair seen in consecutive snapshots is one row; every origin of a multi-origin prefix is kept.
BEGIN;
SELECT plan(5);

CREATE TEMPORARY TABLE snapshot_files (day date, prefix cidr, asn bigint);
INSERT INTO snapshot_files VALUES
    ('2026-01-01', '81.2.0.0/16', 1), ('2026-01-01', '81.2.69.0/24', 2), ('2026-01-01', '5.6.0.0/16', 3),
    ('2026-01-01', '5.6.0.0/16', 4), ('2026-01-01', '2a01:4f8::/32', 24940),
    ('2026-01-02', '81.2.0.0/16', 1), ('2026-01-02', '81.2.69.0/24', 7), ('2026-01-02', '5.6.0.0/16', 3),
    ('2026-01-02', '2a01:4f8::/32', 24940),
    ('2026-01-03', '81.2.0.0/16', 1), ('2026-01-03', '81.2.69.0/24', 2), ('2026-01-03', '9.9.9.0/24', 19281),
    ('2026-01-03', '2a01:4f8::/32', 24940);

-- The staged pairs of one day's file.
CREATE FUNCTION pg_temp.load(p_day date) RETURNS boolean LANGUAGE sql
RETURN ipintel_tests.load_routes(p_day, (SELECT array_agg(ARRAY[f.prefix::text, f.asn::text]) FROM snapshot_files f WHERE f.day = p_day));

-- The table after loading the days in one order, as text.
CREATE FUNCTION pg_temp.table_after(p_days date[]) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_day date;
    v_rows text;
BEGIN
    DELETE FROM ipintel.routing_rejects;
    DELETE FROM ipintel.prefix_origins;
    DELETE FROM ipintel.routing_snapshots;
    FOREACH v_day IN ARRAY p_days LOOP
        PERFORM pg_temp.load(v_day);
    END LOOP;
    SELECT string_agg(format('%s %s %s', o.prefix, o.asn, o.valid), '; ' ORDER BY o.prefix, o.asn, lower(o.valid))
    INTO v_rows FROM ipintel.prefix_origins o;
    RETURN v_rows;
END;
$$;

SELECT is(
    (SELECT count(DISTINCT pg_temp.table_after(o.days)) FROM (VALUES
        ('{2026-01-01,2026-01-02,2026-01-03}'::date[]), ('{2026-01-01,2026-01-03,2026-01-02}'),
        ('{2026-01-02,2026-01-01,2026-01-03}'), ('{2026-01-02,2026-01-03,2026-01-01}'),
        ('{2026-01-03,2026-01-01,2026-01-02}'), ('{2026-01-03,2026-01-02,2026-01-01}'),
        ('{2026-01-03,2026-01-01,2026-01-02,2026-01-01}')) AS o(days)),
    1::bigint, 'every load order (and a snapshot loaded twice) gives the same table');

SELECT pg_temp.table_after('{2026-01-02,2026-01-01,2026-01-03}');
SELECT results_eq($$SELECT prefix::text, asn, valid::text FROM ipintel.prefix_origins ORDER BY 1, 2, 3$$,
    $$VALUES ('2a01:4f8::/32', 24940::bigint, '[2026-01-01,)'), ('5.6.0.0/16', 3, '[2026-01-01,2026-01-03)'),
             ('5.6.0.0/16', 4, '[2026-01-01,2026-01-02)'), ('81.2.0.0/16', 1, '[2026-01-01,)'),
             ('81.2.69.0/24', 2, '[2026-01-01,2026-01-02)'), ('81.2.69.0/24', 2, '[2026-01-03,)'),
             ('81.2.69.0/24', 7, '[2026-01-02,2026-01-03)'), ('9.9.9.0/24', 19281, '[2026-01-03,)')$$,
    'a pair seen in consecutive snapshots is one run; each origin of a multi-origin prefix is kept; IPv6 too');
SELECT is(pg_temp.load('2026-01-02'), false, 'a snapshot loaded again is not loaded');
SELECT is((SELECT count(*) FROM ipintel.routing_snapshots), 3::bigint, 'three snapshots recorded');
SELECT is((SELECT prefixes FROM ipintel.routing_snapshots WHERE taken_on = '2026-01-01'), 5::bigint,
          'the snapshot counts its (prefix, origin) pairs');

SELECT * FROM finish();
ROLLBACK;
