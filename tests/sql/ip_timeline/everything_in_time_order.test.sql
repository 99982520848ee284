-- ip_timeline(): one IP's sessions, ASN ranges, what each source says, failures and routing
-- history, in time order.
BEGIN;
SELECT plan(7);

INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64500, 'FIRST-NET'), (64501, 'SECOND-NET');
INSERT INTO ipintel.ip_inventory (ip, current_asn, current_asn_source, enrichment) VALUES
    ('203.0.114.9', 64501, 'cymru', '{"cymru": {"asn": 64501, "found": true}}'), ('203.0.114.10', 64500, 'cymru', '{}');
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source) VALUES
    ('203.0.114.9', 64500, tstzrange('2026-10-01 00:00+00', '2026-11-15 00:00+00'), 'cymru'),
    ('203.0.114.9', 64501, tstzrange('2026-11-15 00:00+00', NULL), 'cymru'),
    ('203.0.114.10', 64500, tstzrange('2026-10-01 00:00+00', NULL), 'cymru');
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, changed_at, asn, asn_observed) VALUES
    ('203.0.114.9', 'cymru', '2026-11-20 00:00+00', '2026-11-15 00:00+00', 64501, true);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_asn,
                                       snapshot_asn_source, snapshot_at, snapshot_document) VALUES
    ('before-move', '2026-11-10 12:00+00', '2026-11-10 12:05+00', '203.0.114.9', 64500, 'routing:rv:2026-11-10',
     '2026-11-10 13:00+00', ipintel_tests.document('{}')),
    ('after-move', '2026-11-16 12:00+00', '2026-11-16 12:05+00', '203.0.114.9', NULL, NULL, NULL, NULL),
    ('other-ip', '2026-11-16 12:00+00', '2026-11-16 12:05+00', '203.0.114.10', NULL, NULL, NULL, NULL);
INSERT INTO ipintel.routing_datasets (dataset, rank) VALUES ('rv', 1);
INSERT INTO ipintel.routing_snapshots (dataset, taken_on, file) VALUES ('rv', '2026-11-10', 'rv-20261110');
INSERT INTO ipintel.prefix_origins (dataset, prefix, asn, valid) VALUES
    ('rv', '203.0.114.0/24', 64500, daterange('2026-11-10', '2026-11-11')),
    ('rv', '198.51.100.0/24', 64999, daterange('2026-11-10', '2026-11-11'));
INSERT INTO ipintel.enrichment_runs (source, status) VALUES ('greynoise', 'succeeded');
INSERT INTO ipintel.enrichment_failures (run_id, source, ip, error, retryable, recorded_at)
SELECT max(run_id), 'greynoise', '203.0.114.9', 'HTTP 400', false, '2026-11-21 00:00+00' FROM ipintel.enrichment_runs;

SELECT results_eq(
    $$SELECT kind, source, asn, at FROM ipintel.ip_timeline('203.0.114.9')$$,
    $$VALUES ('asn', 'cymru', 64500::bigint, '2026-10-01 00:00+00'::timestamptz),
             ('routing', 'routing:rv', 64500, '2026-11-10 00:00+00'),
             ('session', 'routing:rv:2026-11-10', 64500, '2026-11-10 12:00+00'),
             ('answer', 'cymru', 64501, '2026-11-15 00:00+00'),
             ('asn', 'cymru', 64501, '2026-11-15 00:00+00'),
             ('session', NULL, NULL, '2026-11-16 12:00+00'),
             ('failure', 'greynoise', NULL, '2026-11-21 00:00+00')$$,
    'every kind of fact about the IP, in time order, and nothing about another IP');
SELECT is((SELECT until FROM ipintel.ip_timeline('203.0.114.9') WHERE kind = 'asn' AND asn = 64500),
          '2026-11-15 00:00+00'::timestamptz, 'an ASN range ends where the next begins');
SELECT is((SELECT detail ->> 'as_name' FROM ipintel.ip_timeline('203.0.114.9') WHERE kind = 'asn' AND asn = 64501),
          'SECOND-NET', 'an ASN range carries its AS name');
SELECT is((SELECT detail ->> 'routing_asn' FROM ipintel.ip_timeline('203.0.114.9') WHERE kind = 'session' AND at = '2026-11-10 12:00+00'),
          '64500', 'a session carries the routing history''s ASN of its day');
SELECT is((SELECT detail -> 'document' ->> 'asn' FROM ipintel.ip_timeline('203.0.114.9') WHERE kind = 'answer'),
          '64501', 'an answer carries the source''s document');
SELECT is((SELECT detail ->> 'fetched_at' FROM ipintel.ip_timeline('203.0.114.9') WHERE kind = 'answer')::timestamptz,
          '2026-11-20 00:00+00'::timestamptz, 'an answer says when it was last confirmed');
SELECT is((SELECT count(*) FROM ipintel.ip_timeline('::ffff:203.0.114.9')), 7::bigint,
          'an IPv4-mapped address is the IPv4 address');

SELECT * FROM finish();
ROLLBACK;
