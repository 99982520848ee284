-- dbip_facts(): what one DB-IP Lite answer says: the country of its Country or City file, and
-- the ASN of its ASN file, an observation when that file knows the IP. DB-IP Lite says nothing
-- about scanners and gives no classification.
BEGIN;
SELECT plan(4);

SELECT results_eq(
    $$SELECT * FROM ipintel.dbip_facts('{"found": true, "country": "DE", "continent": "EU", "city": "Falkenstein",
                                         "network": "2a01:4f8::/32", "asn": 24940, "as_name": "Hetzner Online GmbH",
                                         "asn_network": "2a01:4f8::/32"}')$$,
    $$VALUES (24940::bigint, true, 'DE', NULL::boolean, NULL::boolean, NULL::text, NULL::boolean, NULL::text[])$$,
    'in both files: an ASN observation and the country');
SELECT results_eq(
    $$SELECT asn, asn_observed, country FROM ipintel.dbip_facts('{"found": true, "country": "JP", "asn": null}')$$,
    $$VALUES (NULL::bigint, false, 'JP')$$, 'not in the ASN file (or no ASN file): no observation');
SELECT results_eq(
    $$SELECT asn, asn_observed, country FROM ipintel.dbip_facts('{"found": true, "country": null, "asn": 64500}')$$,
    $$VALUES (64500::bigint, true, NULL::text)$$, 'in the ASN file only: the ASN, no country');
SELECT results_eq(
    $$SELECT country FROM ipintel.dbip_facts('{"country": "Germany"}')
      UNION ALL SELECT country FROM ipintel.dbip_facts('{}')$$,
    $$VALUES (NULL::text), (NULL)$$, 'no country, or not an ISO code: says nothing');

SELECT * FROM finish();
ROLLBACK;
