-- dshield_facts(): what a DShield answer says (reports > 0 -> is_known_attacker, the names of the
-- threat feeds listing the IP, and its AS as a fallback ranked last), and merge_batch carrying it
-- into enrichment_state, ip_inventory (is_known_attacker, its source, threatfeeds) and the AS
-- names (the shared merge_as_names), behind every other source's ASN, country and AS name.
BEGIN;
SELECT plan(12);

SELECT results_eq(
    $$SELECT * FROM ipintel.dshield_facts('{"count": 1234, "attacks": 56, "mindate": "2026-01-02", "maxdate": "2026-11-30",
        "updated": "2026-12-01 06:12:33", "asn": 14061, "as_name": "DIGITALOCEAN-ASN", "as_country": "us",
        "network": "203.0.113.0/24", "threatfeeds": {"ciarmy": {"firstseen": "2026-11-02", "lastseen": "2026-11-29"},
                                                     "blocklistde22": {"firstseen": "2026-11-01", "lastseen": "2026-11-30"}}}')$$,
    $$VALUES (14061::bigint, true, 'US', NULL::boolean, NULL::boolean, NULL::text, true, ARRAY['blocklistde22', 'ciarmy'])$$,
    'reported: a known attacker, its feeds by name (sorted), its AS and that AS''s country');
SELECT results_eq(
    $$SELECT is_known_attacker, threatfeeds, asn, asn_observed FROM ipintel.dshield_facts(
        '{"count": null, "attacks": null, "asn": null, "as_name": null, "threatfeeds": {}}')$$,
    $$VALUES (false, '{}'::text[], NULL::bigint, false)$$,
    'no report: a real "no", no feed; no AS: no observation');
SELECT results_eq(
    $$SELECT is_known_attacker, threatfeeds FROM ipintel.dshield_facts('{"count": 0, "threatfeeds": []}')$$,
    $$VALUES (false, '{}'::text[])$$, 'a count of 0 is no report; an empty list (PHP''s empty array) is no feed');
SELECT results_eq(
    $$SELECT is_known_attacker, threatfeeds FROM ipintel.dshield_facts('{"count": 0, "threatfeeds": {"forumspam": {}}}')$$,
    $$VALUES (false, ARRAY['forumspam'])$$, 'listed in a feed without reports: not a known attacker, the feed is kept');
SELECT results_eq(
    $$SELECT is_known_attacker, threatfeeds, asn_observed, country FROM ipintel.dshield_facts('{}')$$,
    $$VALUES (NULL::boolean, NULL::text[], false, NULL::text)$$, 'no count: the answer says nothing');

-- Through merge_batch. 203.0.114.81 is in Team Cymru's AS already: DShield's AS and country rank
-- after it. 203.0.114.82 only DShield knows: its AS becomes current (a fallback). 203.0.114.83 is
-- not reported.
INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.81'), ('203.0.114.82'), ('203.0.114.83'), ('203.0.114.84');
SELECT ipintel_tests.answer('cymru', '{"203.0.114.81": {"found": true, "asn": 64581, "registered_country": "NL", "as_name": "CYMRU-AS"}}',
                            now());
SELECT is(ipintel_tests.answer('dshield', $${
    "203.0.114.81": {"count": 12, "attacks": 3, "asn": 64999, "as_name": "DSHIELD-SAYS", "as_country": "DE",
                     "threatfeeds": {"ciarmy": {"firstseen": "2026-11-02", "lastseen": "2026-11-29"}}},
    "203.0.114.82": {"count": 5, "attacks": 1, "asn": 64582, "as_name": "ONLY-DSHIELD", "as_country": "FR", "threatfeeds": {}},
    "203.0.114.83": {"count": null, "attacks": null, "asn": 64581, "as_name": "OTHER-NAME", "as_country": "NL", "threatfeeds": []}
}$$::jsonb, now()), 3::bigint, 'three answers merged');

SELECT results_eq(
    $$SELECT host(ip), is_known_attacker, is_known_attacker_source, threatfeeds, current_asn, current_asn_source,
             geo_country, geo_country_source
      FROM ipintel.ip_inventory ORDER BY ip$$,
    $$VALUES ('203.0.114.81', true, 'dshield', ARRAY['ciarmy'], 64581::bigint, 'cymru', 'NL', 'cymru'),
             ('203.0.114.82', true, 'dshield', '{}'::text[], 64582::bigint, 'dshield', 'FR', 'dshield'),
             ('203.0.114.83', false, 'dshield', '{}'::text[], 64581::bigint, 'dshield', 'NL', 'dshield'),
             ('203.0.114.84', NULL, NULL, NULL, NULL, NULL, 'XX', NULL)$$,
    'known attacker and feeds from DShield; its ASN and country only where no better-ranked source gave one');
SELECT is((SELECT enrichment #>> '{dshield,threatfeeds,ciarmy,lastseen}' FROM ipintel.ip_inventory WHERE ip = '203.0.114.81'),
          '2026-11-29', 'each feed''s sightings stay in the document');
SELECT results_eq(
    $$SELECT is_known_attacker, is_known_attacker_source, threatfeeds FROM ipintel.resolved_facts('203.0.114.81')$$,
    $$VALUES (true, 'dshield', ARRAY['ciarmy'])$$, 'resolved_facts shows the resolution');
SELECT results_eq(
    $$SELECT asn, as_name, sources -> 'dshield' ->> 'as_name' FROM ipintel.asn_inventory ORDER BY asn$$,
    $$VALUES (64581::bigint, 'CYMRU-AS', 'OTHER-NAME'), (64582, 'ONLY-DSHIELD', 'ONLY-DSHIELD'), (64999, 'DSHIELD-SAYS', 'DSHIELD-SAYS')$$,
    'AS names recorded under dshield; as_name by rank: Team Cymru''s wins where it gave one');

-- A later answer: no longer reported, no feed any more. The columns follow; a new answer that
-- says the same writes nothing.
SELECT ipintel_tests.answer('dshield', '{"203.0.114.81": {"count": null, "asn": 64999, "as_country": "DE", "threatfeeds": {}}}', now());
SELECT results_eq(
    $$SELECT is_known_attacker, threatfeeds FROM ipintel.ip_inventory WHERE ip = '203.0.114.81'$$,
    $$VALUES (false, '{}'::text[])$$, 'the latest answer decides');
SELECT results_eq(
    $$SELECT is_known_attacker, threatfeeds FROM ipintel.enrichment_state WHERE ip = '203.0.114.81' AND source = 'dshield'$$,
    $$VALUES (false, '{}'::text[])$$, 'the facts of each answer are recorded in enrichment_state');

SELECT * FROM finish();
ROLLBACK;
