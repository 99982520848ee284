-- take_snapshots() with dated geolocation builds: a session before ipintel's own observation of
-- its IP gets the country (and ASN) of the build of its day (the latest one made on or before it,
-- within the edition's max_age), named <source>:build:<day>; later sessions, and sessions no
-- build covers, get the current values. For the ASN, routing history and ip_asn_history come first.
BEGIN;
SELECT plan(6);

-- DB-IP Lite country builds: 81.2.69.0/24 is GB, then DE from the June build; an IPv6 range.
SELECT ipintel_tests.load_geo('dbip_country_lite', 'dbip', '2018-05-01', '{{81.2.69.0/24,GB,NULL},{2a01:4f8::/32,DE,NULL}}');
SELECT ipintel_tests.load_geo('dbip_country_lite', 'dbip', '2018-06-01', '{{81.2.69.0/24,DE,NULL},{2a01:4f8::/32,DE,NULL}}');
SELECT ipintel_tests.load_geo('dbip_country_lite', 'dbip', '2026-11-01', '{{81.2.69.0/24,NL,NULL}}');
-- An IPinfo Lite build, which also gives the AS (its country is ranked after MaxMind's, before DB-IP's).
SELECT ipintel_tests.load_geo('ipinfo_lite', 'ipinfo', '2018-05-02', '{{81.2.0.0/16,IE,64500}}');
UPDATE ipintel.geo_editions SET max_age = interval '3 days' WHERE edition = 'ipinfo_lite';
-- Routing history for one day only.
SELECT ipintel_tests.load_routes('2018-05-03', '{{81.2.69.0/24,64777}}');
UPDATE ipintel.routing_datasets SET max_age = interval '0 days';

-- Only MaxMind is awaited; it answered on 2026-11-21 (its ASN history starts then) from a build
-- of 2026-11-10: FR, AS 64999. It does not know the IPv6 address.
UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
VALUES ('81.2.69.7', '2018-05-03', '2026-11-20', 8), ('2a01:4f8::1', '2018-05-10', '2018-05-10', 1);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('routed-day', '2018-05-03 10:00Z', '2018-05-03 10:01Z', '81.2.69.7'),
    ('may', '2018-05-04 10:00Z', '2018-05-04 10:01Z', '81.2.69.7'),
    ('june', '2018-06-10 10:00Z', '2018-06-10 10:01Z', '81.2.69.7'),
    ('max-age', '2018-07-06 23:59Z', '2018-07-06 23:59Z', '81.2.69.7'),
    ('too-old', '2018-07-07 00:00Z', '2018-07-07 00:01Z', '81.2.69.7'),
    ('before-observed', '2026-11-05 10:00Z', '2026-11-05 10:01Z', '81.2.69.7'),
    ('after-observed', '2026-11-20 10:00Z', '2026-11-20 10:01Z', '81.2.69.7'),
    ('ipv6', '2018-05-10 10:00Z', '2018-05-10 10:01Z', '2a01:4f8::1');
SELECT ipintel_tests.answer('maxmind',
    '{"81.2.69.7": {"found": true, "country": "FR", "asn": 64999, "as_org": "NOW", "asn_db": {"type": "GeoLite2-ASN"}},
      "2a01:4f8::1": {"found": false, "country": null, "asn": null, "asn_db": {"type": "GeoLite2-ASN"}}}',
    '2026-11-21', extract(epoch FROM timestamp '2026-11-10 12:00')::bigint);

SELECT is(ipintel.take_snapshots(), 8::bigint, 'eight sessions snapshotted');
SELECT results_eq($$SELECT session_id, snapshot_country, snapshot_country_source FROM ipintel.session_summaries ORDER BY first_event_at, session_id$$,
    $$VALUES ('routed-day'::text, 'IE'::text, 'ipinfo:build:2018-05-02'::text),
             ('may', 'IE', 'ipinfo:build:2018-05-02'),
             ('ipv6', 'DE', 'dbip:build:2018-05-01'),
             ('june', 'DE', 'dbip:build:2018-06-01'),
             ('max-age', 'DE', 'dbip:build:2018-06-01'),
             ('too-old', 'FR', 'maxmind'),
             ('before-observed', 'NL', 'dbip:build:2026-11-01'),
             ('after-observed', 'FR', 'maxmind')$$,
    'the country of the build of the session''s day (IPinfo ranked before DB-IP while its build is young enough; '
    'IPv6 too), none past max_age, the current one after ipintel''s own observation');
SELECT results_eq($$SELECT session_id, snapshot_asn, snapshot_asn_source FROM ipintel.session_summaries ORDER BY first_event_at, session_id$$,
    $$VALUES ('routed-day'::text, 64777::bigint, 'routing:routeviews:2018-05-03'::text),
             ('may', 64500, 'ipinfo:build:2018-05-02'),
             ('ipv6', NULL, 'none'),
             ('june', 64999, 'maxmind:current'),
             ('max-age', 64999, 'maxmind:current'),
             ('too-old', 64999, 'maxmind:current'),
             ('before-observed', 64999, 'maxmind:current'),
             ('after-observed', 64999, 'maxmind:current')$$,
    'the ASN: routing history first, then ip_asn_history, then a build young enough, then the current one');
SELECT results_eq($$SELECT session_id, snapshot_ip_type, snapshot_ip_type_source FROM ipintel.session_summaries
                    WHERE session_id IN ('routed-day', 'may') ORDER BY session_id$$,
    $$VALUES ('may'::text, 'routed'::text, 'ipinfo:build:2018-05-02'::text),
             ('routed-day', 'routed', 'routing:routeviews:2018-05-03')$$,
    'the class as of the session''s day rests on the snapshot''s ASN, and names where that ASN came from (revision 0030)');
SELECT is((SELECT count(*) FROM ipintel.session_summaries WHERE snapshot_complete_at IS NOT NULL), 8::bigint, 'all complete');
SELECT is_empty($$SELECT * FROM ipintel.verify_snapshots() WHERE violations > 0$$,
    'ipintel verify accepts the builds as sources');

SELECT * FROM finish();
ROLLBACK;
