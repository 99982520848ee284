-- The two rules take_snapshots states once (revision 0075): whether a session has a field to fill
-- (snapshot_has_field_to_fill, inlined wherever it is used) and the class a snapshot takes with
-- its source (snapshot_classes).
BEGIN;
SELECT plan(12);

-- the session's snapshot_*_source columns, in the function's order: asn, country, is_scanner,
-- ip_type, is_known_attacker
SELECT is(ipintel.snapshot_has_field_to_fill(true, false, false, false, false, false,
                                             'maxmind:current', 'maxmind', 'greynoise', 'greynoise', 'greynoise'),
          true, 'all ready: the snapshot is completed even when every field is known');
SELECT is(ipintel.snapshot_has_field_to_fill(false, false, false, false, false, false, NULL, NULL, NULL, NULL, NULL),
          false, 'nothing ready: nothing to fill, however much is unknown');
SELECT is(ipintel.snapshot_has_field_to_fill(false, true, true, false, false, false, NULL, NULL, NULL, NULL, NULL),
          true, 'the ASN and country ready and unknown: a first fill');
SELECT is(ipintel.snapshot_has_field_to_fill(false, true, true, false, false, false,
                                             'maxmind:current', 'maxmind', NULL, NULL, NULL),
          false, 'the ASN and country ready but known, the rest awaited: nothing new (a pass waiting for GreyNoise)');
SELECT is(ipintel.snapshot_has_field_to_fill(false, true, true, true, false, false,
                                             'maxmind:current', 'maxmind', NULL, NULL, NULL),
          true, 'a scanner flag ready and unknown beside known fields');
SELECT is(ipintel.snapshot_has_field_to_fill(false, false, false, false, true, false,
                                             'maxmind:current', 'maxmind', NULL, NULL, NULL),
          true, 'the class ready and unknown');
SELECT is(ipintel.snapshot_has_field_to_fill(false, false, false, false, false, true,
                                             NULL, NULL, NULL, NULL, 'greynoise'),
          false, 'the known-attacker field ready but known');
SELECT is(ipintel.snapshot_has_field_to_fill(false, false, false, false, false, true,
                                             NULL, NULL, NULL, NULL, NULL),
          true, 'the known-attacker field ready and unknown');

-- Inlined: the plan of a query using it shows the expression, never a call (a call would cost a
-- function invocation per session, and hide the sessions' columns from the planner).
SELECT unalike(ipintel_tests.plan_of($$
    SELECT s.session_id FROM ipintel.session_summaries s
    WHERE ipintel.snapshot_has_field_to_fill(false, true, false, false, false, false, s.snapshot_asn_source,
                                             s.snapshot_country_source, s.snapshot_is_scanner_source,
                                             s.snapshot_ip_type_source, s.snapshot_is_known_attacker_source)$$),
    '%snapshot_has_field_to_fill%', 'snapshot_has_field_to_fill is inlined into the query that uses it');

-- snapshot_classes: the source of a class as a snapshot writes it. A routed IP's class rests on
-- its ASN (the caller writes the ASN's source); a bogon is bogon; a listed range names the list.
SELECT ipintel_tests.load_ranges('aws', '2026-11-01', ARRAY[['3.5.140.0/22', 'EC2', 'ap-northeast-2']]);
SELECT results_eq(
    $$SELECT ip, ip_type, ip_type_source, rests_on_asn
      FROM ipintel.snapshot_classes(ARRAY['81.2.69.7', '10.1.2.3', '3.5.140.7']::inet[],
                                    ARRAY['2026-11-03', '2026-11-03', '2026-11-03']::date[],
                                    ARRAY[64501, NULL, 16509]::bigint[], ARRAY['maxmind', NULL, 'maxmind'])
      ORDER BY ip$$,
    $$VALUES ('3.5.140.7'::inet, 'cloud'::text, 'list:aws:2026-11-01'::text, false),
             ('10.1.2.3', 'bogon', 'bogon', false),
             ('81.2.69.7', 'routed', NULL, true)$$,
    'each class with its source: a list and its snapshot day, bogon, NULL where it rests on the ASN');
SELECT is((SELECT epoch FROM ipintel.snapshot_classes(ARRAY['81.2.69.7']::inet[], ARRAY['2026-11-03']::date[],
                                                       ARRAY[64501]::bigint[], ARRAY['maxmind'])),
          '2026-11-03'::date, 'the epoch day asked is the one returned (the key the callers join by)');
SELECT is((SELECT count(*) FROM ipintel.snapshot_classes('{}', '{}', '{}', '{}')), 0::bigint,
          'nothing asked, nothing returned');

SELECT * FROM finish();
ROLLBACK;
