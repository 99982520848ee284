-- ipinfo_facts(): what one IPinfo Lite answer says. The document keeps IPinfo's field names
-- (country_code is the ISO code, country the name; asn the number of "AS174"). The ASN is an
-- observation when the file's record names one; a record without one says nothing about it.
-- IPinfo Lite says nothing about scanners and gives no classification.
BEGIN;
SELECT plan(5);

SELECT results_eq(
    $$SELECT * FROM ipintel.ipinfo_facts('{"found": true, "asn": 174, "as_name": "Cogent Communications",
                                           "as_domain": "cogentco.com", "country_code": "US", "country": "United States",
                                           "continent_code": "NA", "continent": "North America"}')$$,
    $$VALUES (174::bigint, true, 'US', NULL::boolean, NULL::boolean, NULL::text, NULL::boolean, NULL::text[])$$,
    'a record with an AS: an ASN observation, and the country code');
SELECT results_eq(
    $$SELECT asn, asn_observed, country FROM ipintel.ipinfo_facts('{"found": true, "asn": null, "country_code": "RO",
                                                                   "country": "Romania"}')$$,
    $$VALUES (NULL::bigint, false, 'RO')$$, 'a record without an AS: no observation, the country still');
SELECT results_eq(
    $$SELECT asn, asn_observed, country FROM ipintel.ipinfo_facts('{"found": false, "asn": null, "country_code": null}')$$,
    $$VALUES (NULL::bigint, false, NULL::text)$$, 'not in the file: says nothing');
SELECT results_eq(
    $$SELECT country FROM ipintel.ipinfo_facts('{"country_code": "us", "country": "US"}')
      UNION ALL SELECT country FROM ipintel.ipinfo_facts('{"country": "DE"}')$$,
    $$VALUES (NULL::text), (NULL)$$, 'the country comes from country_code, an ISO code only (never the name field)');
SELECT results_eq(
    $$SELECT asn, asn_observed FROM ipintel.ipinfo_facts('{"asn": "AS174"}')$$,
    $$VALUES (NULL::bigint, false)$$, 'an ASN that is not a number (not parsed by the loader) is no observation');

SELECT * FROM finish();
ROLLBACK;
