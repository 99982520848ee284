-- load_range_snapshot(): each file is a dated snapshot of its list, merged run-length like routing
-- history: an unchanged range is not rewritten, a range that disappears closes at the day of the
-- snapshot that no longer lists it, any load order gives the same table, IPv6 and ASN lists too.
BEGIN;
SELECT plan(12);

-- Day 1: two AWS ranges (one IPv6) and the same range under two services; day 2: one range gone.
SELECT ok(ipintel_tests.load_ranges('aws', '2026-11-01', ARRAY[
    ['3.5.140.0/22', 'EC2', 'ap-northeast-2'], ['3.5.140.0/22', '', 'ap-northeast-2'],
    ['52.94.76.0/22', 'S3', 'us-west-2'], ['2600:1f14::/35', 'EC2', 'us-west-2']]), 'day 1 loaded');
CREATE TEMPORARY TABLE before_day2 AS SELECT ctid AS row_id, xmin::text AS version, prefix, service FROM ipintel.listed_ranges;
SELECT ok(ipintel_tests.load_ranges('aws', '2026-11-02', ARRAY[
    ['3.5.140.0/22', 'EC2', 'ap-northeast-2'], ['3.5.140.0/22', '', 'ap-northeast-2'],
    ['2600:1f14::/35', 'EC2', 'us-west-2']]), 'day 2 loaded');

SELECT results_eq($$SELECT prefix::text, service, region, valid::text FROM ipintel.listed_ranges ORDER BY 1, 2$$,
    $$VALUES ('2600:1f14::/35', 'EC2', 'us-west-2', '[2026-11-01,)'),
             ('3.5.140.0/22', '', 'ap-northeast-2', '[2026-11-01,)'),
             ('3.5.140.0/22', 'EC2', 'ap-northeast-2', '[2026-11-01,)'),
             ('52.94.76.0/22', 'S3', 'us-west-2', '[2026-11-01,2026-11-02)')$$,
    'the range missing from day 2 closes at day 2; the others run on, IPv6 included');
SELECT is((SELECT count(*) FROM ipintel.listed_ranges r JOIN before_day2 b ON b.row_id = r.ctid AND b.version = r.xmin::text
           WHERE r.prefix <> '52.94.76.0/22'), 3::bigint, 'the unchanged ranges were not rewritten by day 2');
SELECT is((SELECT entries FROM ipintel.range_snapshots WHERE list = 'aws' AND taken_on = '2026-11-02'), 3::bigint,
          'the snapshot counts its distinct entries');
SELECT is(ipintel_tests.load_ranges('aws', '2026-11-02', ARRAY[['9.9.9.0/24', '', '']]), false,
          'a snapshot loaded again is not loaded, whatever the file holds now');

-- Day 3 brings the closed range back: a new run; loading it out of order (day 0) extends the first.
SELECT ok(ipintel_tests.load_ranges('aws', '2026-11-03', ARRAY[['52.94.76.0/22', 'S3', 'us-west-2']]), 'day 3 loaded');
SELECT ok(ipintel_tests.load_ranges('aws', '2026-10-31', ARRAY[['52.94.76.0/22', 'S3', 'us-west-2']]), 'day 0 loaded late');
SELECT results_eq($$SELECT prefix::text, valid::text FROM ipintel.listed_ranges WHERE service <> '' OR prefix <> '3.5.140.0/22'
                    ORDER BY 1, 2$$,
    $$VALUES ('2600:1f14::/35', '[2026-11-01,2026-11-03)'), ('3.5.140.0/22', '[2026-11-01,2026-11-03)'),
             ('52.94.76.0/22', '[2026-10-31,2026-11-02)'), ('52.94.76.0/22', '[2026-11-03,)')$$,
    'a late older snapshot extends a run backwards; a range back after a gap is a new run');

-- The hosting-ASN list: the same run-length storage keyed by (asn, name, source).
SELECT ipintel_tests.load_asns('hosting_asns', '2026-11-01', ARRAY[['16276', 'OVHcloud', 'https://www.peeringdb.com/asn/16276'],
                                                               ['24940', 'Hetzner', 'https://www.peeringdb.com/asn/24940']]);
SELECT ipintel_tests.load_asns('hosting_asns', '2026-11-20', ARRAY[['24940', 'Hetzner', 'https://www.peeringdb.com/asn/24940']]);
SELECT results_eq($$SELECT asn, name, valid::text FROM ipintel.listed_asns ORDER BY 1$$,
    $$VALUES (16276::bigint, 'OVHcloud', '[2026-11-01,2026-11-02)'), (24940::bigint, 'Hetzner', '[2026-11-01,)')$$,
    'an ASN dropped from the list: its run ends after the last snapshot that listed it');
SELECT results_eq($$SELECT d::date, ipintel.range_snapshot_on('hosting_asns', d::date) FROM unnest('{2026-11-19,2026-11-20}'::date[]) d$$,
    $$VALUES ('2026-11-19'::date, '2026-11-01'::date), ('2026-11-20', '2026-11-20')$$,
    'a day is classified by the latest snapshot on or before it: up to 11-19 the one that listed AS16276, from 11-20 the one without it');
SELECT throws_ok($$SELECT * FROM ipintel.load_range_snapshot('no_such_list', '2026-11-01', 'f', 1)$$, '22023',
                 'unknown range list no_such_list', 'a list that is not registered is refused');

SELECT * FROM finish();
ROLLBACK;
