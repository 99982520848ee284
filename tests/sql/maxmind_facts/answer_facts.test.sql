-- maxmind_facts(): what one MaxMind answer says. An ASN is an observation only when an ASN
-- database was read and knows the IP; the country only when it is an ISO code; an anonymous
-- proxy is classified anonymizer. MaxMind says nothing about scanners.
BEGIN;
SELECT plan(6);

SELECT results_eq(
    $$SELECT * FROM ipintel.maxmind_facts('{"found": true, "country": "NL", "asn": 64500, "as_org": "AS",
                                            "asn_db": {"type": "GeoLite2-ASN"}}')$$,
    $$VALUES (64500::bigint, true, 'NL', NULL::boolean, NULL::boolean, NULL::text, NULL::boolean, NULL::text[])$$,
    'ASN file read and knows the IP: an ASN observation, and the country');
SELECT results_eq(
    $$SELECT asn, asn_observed FROM ipintel.maxmind_facts('{"found": true, "country": "NL", "asn": null,
                                                            "asn_db": {"type": "GeoLite2-ASN"}}')$$,
    $$VALUES (NULL::bigint, false)$$, 'not in the ASN file: no observation');
SELECT results_eq(
    $$SELECT asn, asn_observed FROM ipintel.maxmind_facts('{"found": true, "country": "NL", "asn": 64500, "asn_db": null}')$$,
    $$VALUES (64500::bigint, false)$$, 'no ASN database read (City file only): no observation');
SELECT results_eq(
    $$SELECT country FROM ipintel.maxmind_facts('{"country": "nl"}')
      UNION ALL SELECT country FROM ipintel.maxmind_facts('{"country": null}')$$,
    $$VALUES (NULL::text), (NULL)$$, 'no country, or not an ISO code: says nothing');
SELECT results_eq(
    $$SELECT ip_type FROM ipintel.maxmind_facts('{"country": "DE", "is_anonymous_proxy": true}')$$,
    $$VALUES ('anonymizer')$$, 'an anonymous proxy is an anonymizer');
SELECT results_eq(
    $$SELECT ip_type FROM ipintel.maxmind_facts('{"country": "DE", "is_anonymous_proxy": false}')$$,
    $$VALUES (NULL::text)$$, 'otherwise no classification (routed comes from the ASN)');

SELECT * FROM finish();
ROLLBACK;
