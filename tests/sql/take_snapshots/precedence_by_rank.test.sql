-- take_snapshots(): a field is ready when no awaited source of it is ranked before the source of
-- its value (enrichment_policy.*_rank), or none is awaited: MaxMind's country (country_rank 1)
-- does not wait for Cymru, MaxMind's ASN (asn_rank 2) waits for Cymru (1) unless Cymru declines
-- the IP (skip_when_asn_known); ip_type also waits for the ASN. GreyNoise and DShield are
-- disabled here: a disabled source is never awaited.
BEGIN;
SELECT plan(16);

UPDATE ipintel.enrichment_policy SET enabled = false WHERE source IN ('greynoise', 'dshield');
-- Cymru asked about every IP, even one whose ASN MaxMind already gave.
UPDATE ipintel.enrichment_policy SET skip_when_asn_known = false WHERE source = 'cymru';

-- The other offline databases (IPinfo Lite, DB-IP Lite) are not installed: their last pass was
-- skipped, as `ipintel enrich` records it, so no snapshot waits for them.
SELECT ipintel_tests.skipped_pass(s) FROM unnest(ARRAY['ipinfo', 'dbip']) s;

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.21', '2026-11-01', '2026-11-01', 1),   -- MaxMind: country and ASN
    ('203.0.114.22', '2026-11-01', '2026-11-01', 1),   -- MaxMind: country, not in its ASN file
    ('203.0.114.23', '2026-11-01', '2026-11-01', 1);   -- Cymru only (so far)
SELECT ipintel_tests.answer('maxmind', $${
    "203.0.114.21": {"found": true, "country": "DE", "asn": 64521, "as_org": "MM-AS", "asn_db": {"type": "GeoLite2-ASN"}},
    "203.0.114.22": {"found": true, "country": "FR", "asn": null, "asn_db": {"type": "GeoLite2-ASN"}}
}$$::jsonb, now(), 1);
SELECT ipintel_tests.answer('cymru', $${
    "203.0.114.23": {"found": true, "asn": 64523, "registered_country": "US", "as_name": "CYMRU-AS"}
}$$::jsonb, now());
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('a', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.21'),
    ('b', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.22'),
    ('c', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.23');

SELECT results_eq($$SELECT waiting_for, asn_wait_rank, country_wait_rank, is_scanner_wait_rank, ip_type_wait_rank
                    FROM ipintel.snapshot_waits WHERE session_id = 'a'$$,
                  $$VALUES (ARRAY['cymru'], 1::bigint, 4::bigint, NULL::bigint, 3::bigint)$$,
                  'a awaits Cymru: its ranks per field (its registration country ranks after geolocation)');
SELECT results_eq($$SELECT waiting_for, asn_wait_rank, country_wait_rank, is_scanner_wait_rank, ip_type_wait_rank
                    FROM ipintel.snapshot_waits WHERE session_id = 'c'$$,
                  $$VALUES (ARRAY['maxmind'], 2::bigint, 1::bigint, NULL::bigint, 2::bigint)$$,
                  'c awaits MaxMind: its ranks per field');

SELECT is(ipintel.take_snapshots(), 3::bigint, 'every session gets its ready fields');
SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_ip_type_source,
             snapshot_complete_at IS NULL
      FROM ipintel.session_summaries WHERE session_id = 'a'$$,
    $$VALUES (NULL::bigint, NULL::text, 'DE', 'maxmind', NULL::text, true)$$,
    'MaxMind''s country is ready while Cymru is awaited; its ASN is not (Cymru ranks first), nor ip_type');
SELECT results_eq(
    $$SELECT snapshot_asn_source, snapshot_country, snapshot_country_source FROM ipintel.session_summaries WHERE session_id = 'b'$$,
    $$VALUES (NULL::text, 'FR', 'maxmind')$$,
    'no ASN from MaxMind: the ASN waits for Cymru, the country does not');
SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source
      FROM ipintel.session_summaries WHERE session_id = 'c'$$,
    $$VALUES (64523::bigint, 'cymru:current', NULL::text, NULL::text)$$,
    'Cymru''s ASN is ready while MaxMind is awaited; its country is not, nor ip_type (MaxMind may say anonymizer)');
SELECT results_eq(
    $$SELECT snapshot_is_scanner, snapshot_is_scanner_source FROM ipintel.session_summaries WHERE session_id = 'a'$$,
    $$VALUES (NULL::boolean, 'none')$$,
    'is_scanner awaits no source (GreyNoise disabled): settled as unknown');

-- The policy back to its default: Cymru declines IPs whose ASN is known.
UPDATE ipintel.enrichment_policy SET skip_when_asn_known = true WHERE source = 'cymru';
SELECT is(ipintel.take_snapshots(), 1::bigint, 'only a is no longer waiting');
SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_ip_type, snapshot_ip_type_source,
             snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'a'$$,
    $$VALUES (64521::bigint, 'maxmind:current', 'DE', 'routed', 'maxmind', true)$$,
    'Cymru declines an IP whose ASN is known: MaxMind''s ASN is ready, and ip_type with it');
SELECT is(waiting_for, ARRAY['cymru'], 'b still waits for Cymru: no source gave its ASN')
FROM ipintel.snapshot_backlog WHERE session_id = 'b';

-- Cymru answers b: allocated, not announced.
SELECT ipintel_tests.answer('cymru', $${"203.0.114.22": {"found": true, "asn": null, "registered_country": "BE"}}$$::jsonb, now());
SELECT is(ipintel.take_snapshots(), 1::bigint, 'Cymru''s answer completes b');
SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_ip_type,
             snapshot_ip_type_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'b'$$,
    $$VALUES (NULL::bigint, 'cymru:current', 'FR', 'maxmind', 'unrouted', 'cymru', true)$$,
    'unrouted by Cymru; MaxMind''s country kept (it ranks before Cymru''s BE anyway)');

-- MaxMind answers c: an anonymizer, placed in CA, with another ASN.
SELECT ipintel_tests.answer('maxmind', $${"203.0.114.23": {"found": true, "country": "CA", "asn": 64599, "as_org": "MM",
                                                      "is_anonymous_proxy": true, "asn_db": {"type": "GeoLite2-ASN"}}}$$::jsonb,
                      now(), 1);
SELECT is(ipintel.take_snapshots(), 1::bigint, 'MaxMind''s answer completes c');
SELECT results_eq(
    $$SELECT snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source, snapshot_ip_type,
             snapshot_ip_type_source, snapshot_complete_at IS NOT NULL
      FROM ipintel.session_summaries WHERE session_id = 'c'$$,
    $$VALUES (64523::bigint, 'cymru:current', 'CA', 'maxmind', 'anonymizer', 'maxmind', true)$$,
    'Cymru''s ASN kept (it ranks first), MaxMind''s country and its classification, which ranks before routed');
SELECT is(current_asn, 64523::bigint, 'ip_inventory agrees: Cymru''s ASN is current')
FROM ipintel.ip_inventory WHERE ip = '203.0.114.23';
SELECT is_empty($$SELECT 1 FROM ipintel.snapshot_backlog$$, 'every snapshot is complete');

SELECT * FROM finish();
ROLLBACK;
