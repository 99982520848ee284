-- class_epochs(): the days on which every range list has the same snapshot (or none) classify
-- alike; each day given gets the first of the days given that shares its snapshots (revision
-- 0070: take_snapshots asks ip_classes once per IP and epoch, not once per session day).
BEGIN;
SELECT plan(5);

-- AWS taken on 1 and 10 November (kept 30 days); the Tor bulk list on 5 November (kept 7 days:
-- it classifies 5 to 12 November, and nothing after).
SELECT ipintel_tests.load_ranges('aws', '2026-11-01', ARRAY[['3.5.140.0/22', 'EC2', 'ap-northeast-2']]);
SELECT ipintel_tests.load_ranges('aws', '2026-11-10', ARRAY[['3.5.140.0/22', 'EC2', 'ap-northeast-2']]);
SELECT ipintel_tests.load_ranges('tor_bulk_exit_list', '2026-11-05', ARRAY[['3.5.140.7/32', '', '']]);

SELECT results_eq(
    $$SELECT day, epoch FROM ipintel.class_epochs(ARRAY['2026-11-12', '2026-10-31', '2026-11-01', '2026-11-03', '2026-11-05',
                                                      '2026-11-09', '2026-11-10', '2026-11-13', '2026-11-03', NULL]::date[])
      ORDER BY day$$,
    $$VALUES ('2026-10-31'::date, '2026-10-31'::date), ('2026-11-01', '2026-11-01'), ('2026-11-03', '2026-11-01'),
             ('2026-11-05', '2026-11-05'), ('2026-11-09', '2026-11-05'), ('2026-11-10', '2026-11-10'),
             ('2026-11-12', '2026-11-10'), ('2026-11-13', '2026-11-13')$$,
    'each distinct day once, with the first day given that has the same snapshot of every list (a new snapshot, or one growing too old, starts an epoch)');
SELECT results_eq(
    $$SELECT day, epoch FROM ipintel.class_epochs(ARRAY['2026-11-09', '2026-11-03']::date[]) ORDER BY day$$,
    $$VALUES ('2026-11-03'::date, '2026-11-03'::date), ('2026-11-09', '2026-11-09')$$,
    'the epoch is among the days given: two days of different snapshots are each their own');
SELECT is((SELECT count(*) FROM ipintel.class_epochs('{}'::date[])), 0::bigint, 'no day, no epoch');

-- What an epoch stands for: ip_classes asked for any day of it answers as for its first day.
SELECT results_eq(
    $$SELECT c.day, c.ip_type, c.ip_class_basis ->> 'snapshot'
      FROM ipintel.ip_classes(ARRAY['3.5.140.7', '3.5.140.7', '3.5.140.7']::inet[],
                              ARRAY['2026-11-03', '2026-11-09', '2026-11-13']::date[], ARRAY[NULL, NULL, NULL]::bigint[],
                              ARRAY[NULL, NULL, NULL]::text[]) c ORDER BY c.day$$,
    $$VALUES ('2026-11-03'::date, 'cloud', '2026-11-01'), ('2026-11-09', 'tor', '2026-11-05'), ('2026-11-13', 'cloud', '2026-11-10')$$,
    'ip_classes: cloud by the AWS snapshot of 1 November, tor while the bulk list of 5 November is fresh, cloud again by AWS of 10 November');

-- Without any range list every day is one epoch.
DELETE FROM ipintel.listed_ranges;
DELETE FROM ipintel.listed_asns;
DELETE FROM ipintel.range_snapshots;
DELETE FROM ipintel.range_lists;
SELECT is((SELECT array_agg(DISTINCT epoch) FROM ipintel.class_epochs(ARRAY['2026-11-03', '2026-11-09']::date[])),
          ARRAY['2026-11-03'::date], 'no list: one epoch, the first day');

SELECT * FROM finish();
ROLLBACK;
