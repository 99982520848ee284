-- apply_answers() / resolved_facts(): the facts ip_inventory keeps for the hot filters
-- (current_asn, geo_country, is_scanner, is_riot, ip_type) are resolved from the sources' last
-- answers by the registry's ranks, whatever order the answers came in, each with the source it
-- came from (*_source). Answers go through the real path: staged, then merge_batch.
BEGIN;
SELECT plan(31);

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
SELECT ip::inet, '2026-11-01', '2026-11-01', 1
FROM unnest(ARRAY['8.8.8.8', '2a00:1450:4001::1', '89.38.234.1', '89.38.234.2', '185.220.101.1', '185.220.101.2',
                  '45.33.32.156', '142.250.1.1', '203.0.114.9', '203.0.114.10', '203.0.114.11', '203.0.114.12',
                  '203.0.114.13', '203.0.114.14', '203.0.114.15', '5.6.7.8', '10.1.2.3']) AS ip;

-- The bogon trigger: a bogon is typed when it arrives, and stays so whatever a writer sets.
SELECT results_eq($$SELECT ip_type, ip_type_source FROM ipintel.ip_inventory WHERE ip = '10.1.2.3'$$,
                  $$VALUES ('bogon', NULL::text)$$, 'a bogon is typed bogon on insert');
UPDATE ipintel.ip_inventory SET ip_type = 'routed', ip_type_source = 'maxmind' WHERE ip = '10.1.2.3';
SELECT results_eq($$SELECT ip_type, ip_type_source FROM ipintel.ip_inventory WHERE ip = '10.1.2.3'$$,
                  $$VALUES ('bogon', NULL::text)$$, 'and stays bogon whatever a writer sets');
SELECT results_eq($$SELECT ip_type, ip_type_source FROM ipintel.ip_inventory WHERE ip = '8.8.8.8'$$,
                  $$VALUES ('unknown', NULL::text)$$, 'nothing answered yet: unknown');

SELECT is(ipintel_tests.answer('maxmind', $${
    "8.8.8.8": {"found": true, "country": "US", "asn": 15169, "as_org": "GOOGLE", "asn_db": {"type": "GeoLite2-ASN"}},
    "2a00:1450:4001::1": {"found": true, "country": "DE", "asn": 64496, "as_org": "MM-NAME", "asn_db": {"type": "GeoLite2-ASN"}},
    "89.38.234.2": {"found": true, "country": "RO", "asn": null, "is_anonymous_proxy": true, "asn_db": {"type": "GeoLite2-ASN"}},
    "185.220.101.1": {"found": true, "country": "DE", "asn": null, "is_anonymous_proxy": true, "asn_db": {"type": "GeoLite2-ASN"}},
    "185.220.101.2": {"found": true, "country": "DE", "asn": null, "is_anonymous_proxy": true, "asn_db": {"type": "GeoLite2-ASN"}},
    "203.0.114.11": {"found": true, "country": "NL", "asn": 64510, "as_org": "KNOWN", "asn_db": {"type": "GeoLite2-ASN"}},
    "203.0.114.12": {"found": true, "country": "nl", "asn": null, "asn_db": {"type": "GeoLite2-ASN"}},
    "203.0.114.13": {"found": true, "country": "SE", "asn": 64513, "as_org": "CITY-ONLY", "asn_db": null},
    "10.1.2.3": {"found": false, "country": null, "asn": null, "asn_db": {"type": "GeoLite2-ASN"}}
}$$::jsonb, '2026-11-02', 100), 9::bigint, 'MaxMind: nine answers merged');
SELECT is(ipintel_tests.answer('cymru', $${
    "89.38.234.1": {"found": true, "asn": null, "prefix": null, "registered_country": "RO"},
    "89.38.234.2": {"found": true, "asn": null, "prefix": null, "registered_country": "RO"},
    "2a00:1450:4001::1": {"found": true, "asn": 15169, "registered_country": "US", "as_name": "GOOGLE, US"},
    "203.0.114.10": {"found": false, "asn": null, "origins": []},
    "203.0.114.11": {"found": false, "asn": null, "origins": []},
    "203.0.114.15": {"found": true, "asn": 64515, "registered_country": "US", "as_name": "CYMRU-AS"}
}$$::jsonb, '2026-11-03'), 6::bigint, 'Cymru: six answers merged');
SELECT is(ipintel_tests.answer('greynoise', $${
    "45.33.32.156": {"observed": true, "noise": true, "riot": false, "classification": "malicious"},
    "142.250.1.1": {"observed": true, "noise": false, "riot": true, "name": "Google"},
    "185.220.101.2": {"observed": true, "noise": true, "riot": false},
    "203.0.114.9": {"observed": false, "noise": false, "riot": false},
    "203.0.114.14": {}
}$$::jsonb, '2026-11-04'), 5::bigint, 'GreyNoise: five answers merged');
-- MaxMind answers after Cymru for this one: arrival order does not decide, the ranks do.
SELECT is(ipintel_tests.answer('maxmind', $${
    "203.0.114.15": {"found": true, "country": "CA", "asn": 64516, "as_org": "MM-AS", "asn_db": {"type": "GeoLite2-ASN"}}
}$$::jsonb, '2026-11-05', 100), 1::bigint, 'a later MaxMind answer merged');

CREATE TEMP VIEW facts AS
SELECT host(ip) AS ip, current_asn, current_asn_source, geo_country, geo_country_source, is_scanner, is_scanner_source,
       is_riot, ip_type, ip_type_source
FROM ipintel.ip_inventory;

-- Precedence by rank: Cymru first for the ASN, MaxMind first for the country.
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source, ip_type, ip_type_source
                    FROM facts WHERE ip = '8.8.8.8'$$,
                  $$VALUES (15169::bigint, 'maxmind', 'US', 'maxmind', 'routed', 'maxmind')$$,
                  'MaxMind alone: its ASN and country; routed, by the ASN''s source');
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source, ip_type, ip_type_source
                    FROM facts WHERE ip = '2a00:1450:4001::1'$$,
                  $$VALUES (15169::bigint, 'cymru', 'DE', 'maxmind', 'routed', 'cymru')$$,
                  'both: Cymru''s ASN (asn_rank 1), MaxMind''s country (country_rank 1)');
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source FROM facts WHERE ip = '203.0.114.15'$$,
                  $$VALUES (64515::bigint, 'cymru', 'CA', 'maxmind')$$,
                  'a later MaxMind answer does not replace Cymru''s ASN; its country wins over Cymru''s');
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source, ip_type, ip_type_source
                    FROM facts WHERE ip = '89.38.234.1'$$,
                  $$VALUES (NULL::bigint, 'cymru', 'RO', 'cymru', 'unrouted', 'cymru')$$,
                  'Cymru NA: an observation of no route (unrouted), and the registration country without MaxMind');

-- Cymru "no match" says nothing; NA says unrouted.
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source, ip_type, ip_type_source
                    FROM facts WHERE ip = '203.0.114.10'$$,
                  $$VALUES (NULL::bigint, NULL::text, 'XX', NULL::text, 'unknown', NULL::text)$$,
                  'Cymru no match (found: false) alone: nothing known, not unrouted');
SELECT results_eq($$SELECT current_asn, current_asn_source, ip_type, ip_type_source FROM facts WHERE ip = '203.0.114.11'$$,
                  $$VALUES (64510::bigint, 'maxmind', 'routed', 'maxmind')$$,
                  'Cymru no match does not hide MaxMind''s ASN');
SELECT is_empty($$SELECT 1 FROM ipintel.ip_asn_history WHERE ip = '203.0.114.10'$$, 'no match leaves no ASN history');

-- ip_type: the first-ranked source's classification (greynoise 1, maxmind 2, cymru 3).
SELECT results_eq($$SELECT ip, ip_type, ip_type_source FROM facts
                    WHERE ip IN ('45.33.32.156', '142.250.1.1', '185.220.101.1', '185.220.101.2', '89.38.234.2')
                    ORDER BY ip$$,
                  $$VALUES ('142.250.1.1', 'riot', 'greynoise'), ('185.220.101.1', 'anonymizer', 'maxmind'),
                           ('185.220.101.2', 'scanner', 'greynoise'), ('45.33.32.156', 'scanner', 'greynoise'),
                           ('89.38.234.2', 'anonymizer', 'maxmind')$$,
                  'GreyNoise riot / scanner; MaxMind anonymizer; GreyNoise before MaxMind; MaxMind before Cymru unrouted');
SELECT results_eq($$SELECT current_asn, current_asn_source, ip_type FROM facts WHERE ip = '89.38.234.2'$$,
                  $$VALUES (NULL::bigint, 'cymru', 'anonymizer')$$, 'the anonymizer still has Cymru''s "no route" as its ASN fact');

-- is_scanner / is_riot: GreyNoise only; a "not observed" is a real no; no verdict says nothing.
SELECT results_eq($$SELECT ip, is_scanner, is_scanner_source, is_riot FROM facts
                    WHERE ip IN ('45.33.32.156', '142.250.1.1', '203.0.114.9', '203.0.114.14', '8.8.8.8') ORDER BY ip$$,
                  $$VALUES ('142.250.1.1', false, 'greynoise', true), ('203.0.114.14', NULL, NULL, NULL),
                           ('203.0.114.9', false, 'greynoise', false), ('45.33.32.156', true, 'greynoise', false),
                           ('8.8.8.8', NULL::boolean, NULL::text, NULL::boolean)$$,
                  'scanner, benign service, not observed (a real no), an answer without a verdict and never asked (NULL)');
SELECT results_eq($$SELECT ip_type, ip_type_source FROM facts WHERE ip = '203.0.114.9'$$,
                  $$VALUES ('unknown', NULL::text)$$, 'not observed by GreyNoise, no ASN: unknown');

-- What a source's answer does not say.
SELECT results_eq($$SELECT geo_country, geo_country_source FROM facts WHERE ip = '203.0.114.12'$$,
                  $$VALUES ('XX', NULL::text)$$, 'a malformed country from a source says nothing: XX');
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, ip_type FROM facts WHERE ip = '203.0.114.13'$$,
                  $$VALUES (NULL::bigint, NULL::text, 'SE', 'unknown')$$,
                  'no ASN database read (City file only): no ASN observation');
SELECT results_eq($$SELECT current_asn, current_asn_source, geo_country, geo_country_source, is_scanner, ip_type, ip_type_source
                    FROM facts WHERE ip = '5.6.7.8'$$,
                  $$VALUES (NULL::bigint, NULL::text, 'XX', NULL::text, NULL::boolean, 'unknown', NULL::text)$$,
                  'never answered: XX, unknown, no source');
SELECT results_eq($$SELECT geo_country, geo_country_source, ip_type, ip_type_source FROM facts WHERE ip = '10.1.2.3'$$,
                  $$VALUES ('XX', NULL::text, 'bogon', NULL::text)$$, 'an answer for a bogon leaves it bogon');

-- resolved_facts() is what apply_answers writes.
SELECT results_eq($$SELECT f.asn, f.asn_source, f.country, f.country_source, f.is_scanner, f.is_scanner_source, f.is_riot,
                           f.ip_type, f.ip_type_source
                    FROM ipintel.ip_inventory i CROSS JOIN LATERAL ipintel.resolved_facts(i.ip) f
                    WHERE NOT i.is_bogon ORDER BY i.ip$$,
                  $$SELECT current_asn, current_asn_source, nullif(geo_country, 'XX'), geo_country_source, is_scanner,
                           is_scanner_source, is_riot, nullif(ip_type, 'unknown'), ip_type_source
                    FROM ipintel.ip_inventory WHERE NOT is_bogon ORDER BY ip$$,
                  'ip_inventory holds resolved_facts() of every IP');
SELECT is(asn_observed_at, '2026-11-03'::timestamptz, 'the ASN was observed when its source answered')
FROM ipintel.resolved_facts('2a00:1450:4001::1');

-- apply_answers writes only the rows whose facts or documents change.
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
SELECT (SELECT ipintel.start_run('greynoise', '{}'::jsonb)), 990, 'greynoise', ip::inet, '2026-11-10', r::jsonb FROM (VALUES
    ('45.33.32.156', '{"observed": true, "noise": true, "riot": false, "classification": "malicious"}'),
    ('203.0.114.9', '{"observed": true, "noise": true, "riot": false}')) AS v(ip, r);
SELECT FROM ipintel.record_enrichment_state('greynoise', 990);
SELECT is(ipintel.apply_answers('greynoise', 990), 1::bigint, 'only the IP whose answer changed is written');
SELECT results_eq($$SELECT is_scanner, ip_type, ip_type_source FROM facts WHERE ip = '203.0.114.9'$$,
                  $$VALUES (true, 'scanner', 'greynoise')$$, 'its facts follow the new answer');

-- The ranks are data: a registry change changes the resolution.
UPDATE ipintel.enrichment_policy SET country_rank = NULL WHERE source = 'maxmind';
SELECT results_eq($$SELECT country, country_source FROM ipintel.resolved_facts('2a00:1450:4001::1')$$,
                  $$VALUES ('US', 'cymru')$$, 'MaxMind ranked for no country: Cymru''s registration country');

-- resolved_facts_of (revision 0071): the same resolution for many IPs in one call, as apply_answers
-- makes it for a batch. One row per distinct IP given (an IP without answers, and NULL, get NULLs).
SELECT is((SELECT count(*) FROM ipintel.resolved_facts_of(ARRAY['8.8.8.8', '8.8.8.8', '198.51.100.77', NULL]::inet[])),
          3::bigint, 'one row per distinct IP given, duplicates once, NULL and an IP without answers included');
SELECT results_eq(
    $$SELECT f.asn, f.asn_source, f.country, f.is_scanner, f.ip_type, f.is_known_attacker, f.threatfeeds
      FROM ipintel.resolved_facts_of(ARRAY['198.51.100.77']::inet[]) f$$,
    $$VALUES (NULL::bigint, NULL::text, NULL::text, NULL::boolean, NULL::text, NULL::boolean, NULL::text[])$$,
    'an IP no source answered: every fact NULL');
SELECT set_eq(
    $$SELECT f.ip, f.asn, f.asn_source, f.asn_observed_at, f.country, f.country_source, f.is_scanner, f.is_scanner_source,
             f.is_riot, f.ip_type, f.ip_type_source, f.is_known_attacker, f.is_known_attacker_source, f.threatfeeds
      FROM ipintel.resolved_facts_of((SELECT array_agg(i.ip) FROM ipintel.ip_inventory i)) f$$,
    -- the resolution as ordered aggregates, one IP at a time (resolved_facts until revision 0070)
    $$SELECT i.ip, x.asn, x.asn_source, x.asn_observed_at, x.country, x.country_source, x.is_scanner, x.is_scanner_source,
             x.is_riot, coalesce(x.ip_type, CASE WHEN x.asn IS NOT NULL THEN 'routed' END),
             CASE WHEN x.ip_type IS NOT NULL THEN x.ip_type_source WHEN x.asn IS NOT NULL THEN x.asn_source END,
             x.is_known_attacker, x.is_known_attacker_source,
             (SELECT k.threatfeeds FROM ipintel.enrichment_state k WHERE k.ip = i.ip AND k.source = x.is_known_attacker_source)
      FROM ipintel.ip_inventory i
      CROSS JOIN LATERAL (
          SELECT (array_agg(e.asn ORDER BY p.asn_rank) FILTER (WHERE p.asn_rank IS NOT NULL AND e.asn_observed))[1] AS asn,
                 (array_agg(e.source ORDER BY p.asn_rank) FILTER (WHERE p.asn_rank IS NOT NULL AND e.asn_observed))[1] AS asn_source,
                 (array_agg(e.fetched_at ORDER BY p.asn_rank) FILTER (WHERE p.asn_rank IS NOT NULL AND e.asn_observed))[1] AS asn_observed_at,
                 (array_agg(e.country ORDER BY p.country_rank) FILTER (WHERE p.country_rank IS NOT NULL AND e.country IS NOT NULL))[1] AS country,
                 (array_agg(e.source ORDER BY p.country_rank) FILTER (WHERE p.country_rank IS NOT NULL AND e.country IS NOT NULL))[1] AS country_source,
                 (array_agg(e.is_scanner ORDER BY p.is_scanner_rank) FILTER (WHERE p.is_scanner_rank IS NOT NULL AND e.is_scanner IS NOT NULL))[1] AS is_scanner,
                 (array_agg(e.source ORDER BY p.is_scanner_rank) FILTER (WHERE p.is_scanner_rank IS NOT NULL AND e.is_scanner IS NOT NULL))[1] AS is_scanner_source,
                 (array_agg(e.is_riot ORDER BY p.is_riot_rank) FILTER (WHERE p.is_riot_rank IS NOT NULL AND e.is_riot IS NOT NULL))[1] AS is_riot,
                 (array_agg(e.ip_type ORDER BY p.ip_type_rank) FILTER (WHERE p.ip_type_rank IS NOT NULL AND e.ip_type IS NOT NULL))[1] AS ip_type,
                 (array_agg(e.source ORDER BY p.ip_type_rank) FILTER (WHERE p.ip_type_rank IS NOT NULL AND e.ip_type IS NOT NULL))[1] AS ip_type_source,
                 (array_agg(e.is_known_attacker ORDER BY p.is_known_attacker_rank) FILTER (WHERE p.is_known_attacker_rank IS NOT NULL AND e.is_known_attacker IS NOT NULL))[1] AS is_known_attacker,
                 (array_agg(e.source ORDER BY p.is_known_attacker_rank) FILTER (WHERE p.is_known_attacker_rank IS NOT NULL AND e.is_known_attacker IS NOT NULL))[1] AS is_known_attacker_source
          FROM ipintel.enrichment_state e JOIN ipintel.enrichment_policy p ON p.source = e.source
          WHERE e.ip = i.ip) x$$,
    'every IP of the inventory at once: what ordered aggregates over each IP''s answers say (the resolution until 0070)');
-- Each fact by its own ranks: Cymru first for the ASN, MaxMind (ranked for no country now) not
-- for the country, GreyNoise for scanner and class.
SELECT results_eq(
    $$SELECT host(f.ip), f.asn, f.asn_source, f.country, f.country_source, f.is_scanner, f.is_scanner_source, f.ip_type,
             f.ip_type_source
      FROM ipintel.resolved_facts_of(ARRAY['2a00:1450:4001::1', '45.33.32.156']::inet[]) f ORDER BY 1$$,
    $$VALUES ('2a00:1450:4001::1', 15169::bigint, 'cymru', 'US', 'cymru', NULL::boolean, NULL::text, 'routed', 'cymru'),
             ('45.33.32.156', NULL, NULL, NULL, NULL, true, 'greynoise', 'scanner', 'greynoise')$$,
    'each fact from its first-ranked answer, in one call for several IPs');

SELECT * FROM finish();
ROLLBACK;
