-- attribution_daily: sessions without a snapshot queue nothing; take_snapshots queues their days,
-- roll_up_attribution recounts exactly those days and empties the queue; the rollup equals a
-- recount from session_summaries (verify_attribution agrees); distinct IPs add up across days
-- through hll_union_agg, not by summing days.
BEGIN;
SELECT plan(12);

UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'dshield';
SELECT ipintel_tests.skipped_pass(s) FROM unnest(ARRAY['ipinfo', 'dbip']) s;
-- Earlier tests may have left days queued in this database: not ours, rolled up first.
SELECT ipintel.roll_up_attribution();

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.7'), ('203.0.114.8'), ('203.0.114.9');
SELECT ipintel_tests.answer('maxmind',
    '{"203.0.114.7": {"country": "NL", "asn": 64500, "as_org": "A", "asn_db": {"type": "GeoLite2-ASN"}},
      "203.0.114.8": {"country": "DE", "asn": 64501, "as_org": "B", "asn_db": {"type": "GeoLite2-ASN"}}}',
    '2026-10-01', 1);
INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, source_ip,
                                       login_attempts, login_successes, command_count, download_count)
VALUES ('a1', 's1', '2026-11-01 23:30+00', '2026-11-01 23:40+00', '203.0.114.7', 3, 1, 4, 1),
       ('a2', 's1', '2026-11-01 10:00+00', '2026-11-01 10:01+00', '203.0.114.7', 2, 0, 0, 0),
       ('a3', 's1', '2026-11-02 00:30+00', '2026-11-02 00:40+00', '203.0.114.7', 5, 2, 7, 0),
       ('b1', 's1', '2026-11-01 12:00+00', '2026-11-01 12:05+00', '203.0.114.8', 1, 1, 2, 3);

SELECT is((SELECT count(*) FROM ipintel.attribution_dirty_days), 0::bigint,
          'inserting sessions without a snapshot queues nothing');

SELECT ipintel.take_snapshots();
SELECT bag_eq($$SELECT DISTINCT day FROM ipintel.attribution_dirty_days$$,
              $$VALUES ('2026-11-01'::date), ('2026-11-02')$$, 'take_snapshots queued the days of its sessions');
SELECT is(ipintel.roll_up_attribution(), 2::bigint, 'roll_up_attribution recounts the two queued days');
SELECT is((SELECT count(*) FROM ipintel.attribution_dirty_days), 0::bigint, 'and empties the queue');
-- A session ingested since, not snapshotted yet: not counted, and its day is not queued.
INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, source_ip, login_attempts)
VALUES ('c1', 's2', '2026-11-01 12:00+00', '2026-11-01 12:05+00', '203.0.114.9', 1);
SELECT is(ipintel.roll_up_attribution(), 0::bigint, 'a session without a snapshot queues no day');

SELECT results_eq(
    $$SELECT day, sensor, asn, country, sessions, login_attempts, login_successes, commands, downloads,
             public.hll_cardinality(distinct_ips)::bigint
      FROM ipintel.attribution_daily WHERE day IN ('2026-11-01', '2026-11-02') ORDER BY day, asn$$,
    $$VALUES ('2026-11-01'::date, 's1', 64500::bigint, 'NL', 2::bigint, 5::bigint, 1::bigint, 4::bigint, 1::bigint, 1::bigint),
             ('2026-11-01'::date, 's1', 64501::bigint, 'DE', 1::bigint, 1::bigint, 1::bigint, 2::bigint, 3::bigint, 1::bigint),
             ('2026-11-02'::date, 's1', 64500::bigint, 'NL', 1::bigint, 5::bigint, 2::bigint, 7::bigint, 0::bigint, 1::bigint)$$,
    'per UTC day and snapshot ASN/country: the sums, and one IP per sketch; c1 (no snapshot) is not counted');
SELECT results_eq(
    $$SELECT a.day, a.sensor, a.asn, a.country, a.ip_type, a.sessions, a.login_attempts, a.login_successes,
             a.commands, a.downloads, a.distinct_ips::text
      FROM ipintel.attribution_daily a WHERE a.day IN ('2026-11-01', '2026-11-02') ORDER BY 1, 3$$,
    $$SELECT a.day, a.sensor, a.asn, a.country, a.ip_type, a.sessions, a.login_attempts, a.login_successes,
             a.commands, a.downloads, a.distinct_ips::text
      FROM ipintel.attribution_of_days('{2026-11-01,2026-11-02}') a ORDER BY 1, 3$$,
    'the rollup equals a recount from session_summaries, sketches included');
SELECT results_eq($$SELECT sum(violations)::bigint FROM ipintel.verify_attribution()$$, $$VALUES (0::bigint)$$,
                  'verify_attribution finds nothing');

-- 203.0.114.7 on both days: one distinct IP over the two days, not two.
SELECT results_eq(
    $$SELECT sum(public.hll_cardinality(distinct_ips))::bigint,
             public.hll_cardinality(public.hll_union_agg(distinct_ips))::bigint
      FROM ipintel.attribution_daily WHERE asn = 64500 AND day IN ('2026-11-01', '2026-11-02')$$,
    $$VALUES (2::bigint, 1::bigint)$$, 'distinct IPs add up across days through hll_union_agg');
SELECT results_eq(
    $$SELECT asn, sessions, ips, logins, commands, downloads FROM ipintel.top_asns('2026-11-01', '2026-11-03', 10)$$,
    $$VALUES (64500::bigint, 3::bigint, 1::bigint, 3::bigint, 11::bigint, 1::bigint),
             (64501::bigint, 1::bigint, 1::bigint, 1::bigint, 2::bigint, 3::bigint)$$,
    'top_asns over the two days: sums, and distinct IPs from the union of the sketches');
SELECT results_eq(
    $$SELECT country, sessions, ips FROM ipintel.top_countries('2026-11-02', '2026-11-03', 1)$$,
    $$VALUES ('NL', 1::bigint, 1::bigint)$$, 'top_countries: whole days, half-open, at most p_top rows');

-- An ingest merge that moves a session to an earlier day (an earlier event arrived late) and a
-- delete: both days of the moved session, and the deleted one's, are recounted.
UPDATE ipintel.session_summaries SET first_event_at = '2026-11-01 23:59+00' WHERE session_id = 'a3';
DELETE FROM ipintel.session_summaries WHERE session_id = 'b1';
SELECT ipintel.roll_up_attribution();
SELECT results_eq(
    $$SELECT day, asn, sessions, login_attempts FROM ipintel.attribution_daily
      WHERE day IN ('2026-11-01', '2026-11-02') ORDER BY day, asn$$,
    $$VALUES ('2026-11-01'::date, 64500::bigint, 3::bigint, 10::bigint)$$,
    'a session that moved a day leaves its old day; a deleted session leaves its group');

SELECT * FROM finish();
ROLLBACK;
