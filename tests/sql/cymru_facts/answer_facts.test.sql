-- cymru_facts(): what one Team Cymru answer says. An origin ASN, or NA (allocated but not
-- announced: an observation of no route, classified unrouted), is an ASN observation; "no match"
-- (found: false) says nothing at all. The registration country is a country fact.
BEGIN;
SELECT plan(4);

SELECT results_eq(
    $$SELECT * FROM ipintel.cymru_facts('{"found": true, "asn": 64500, "registered_country": "us", "as_name": "AS"}')$$,
    $$VALUES (64500::bigint, true, 'US', NULL::boolean, NULL::boolean, NULL::text, NULL::boolean, NULL::text[])$$,
    'an origin: an ASN observation, and the registration country (upper-cased)');
SELECT results_eq(
    $$SELECT * FROM ipintel.cymru_facts('{"found": true, "asn": null, "prefix": null, "registered_country": "RO"}')$$,
    $$VALUES (NULL::bigint, true, 'RO', NULL::boolean, NULL::boolean, 'unrouted', NULL::boolean, NULL::text[])$$,
    'NA: observed as not routed, unrouted');
SELECT results_eq(
    $$SELECT * FROM ipintel.cymru_facts('{"found": false, "asn": null, "origins": []}')$$,
    $$VALUES (NULL::bigint, false, NULL::text, NULL::boolean, NULL::boolean, NULL::text, NULL::boolean, NULL::text[])$$,
    'no match: says nothing, not unrouted');
SELECT results_eq(
    $$SELECT asn_observed, country FROM ipintel.cymru_facts('{"asn": 64500, "registered_country": ""}')$$,
    $$VALUES (true, NULL::text)$$, 'an answer without "found" is a match; an empty country says nothing');

SELECT * FROM finish();
ROLLBACK;
