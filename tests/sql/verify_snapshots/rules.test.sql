-- verify_snapshots(): every rule with its violations; planted violations are found.
BEGIN;
SELECT plan(8);

INSERT INTO ipintel.ip_inventory (ip) VALUES ('203.0.114.1');
INSERT INTO ipintel.routing_datasets (dataset, rank) VALUES ('rv', 1);
INSERT INTO ipintel.routing_snapshots (dataset, taken_on, file) VALUES ('rv', '2026-11-10', 'rv-20261110');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_asn, snapshot_asn_source,
                                       snapshot_country, snapshot_country_source, snapshot_ip_type, snapshot_ip_type_source,
                                       snapshot_is_scanner, snapshot_is_scanner_source, snapshot_at, snapshot_document,
                                       snapshot_complete_at) VALUES
    -- taken before revision 0022: the ASN's source was a bare source name
    ('old-form', '2026-10-01 00:00+00', '2026-10-01 00:05+00', '203.0.114.1', 64500, 'cymru', 'DE', 'maxmind', 'routed',
     'cymru', NULL, 'none', '2026-10-01 01:00+00', ipintel_tests.document('{}'), '2026-10-01 01:00+00'),
    ('routing', '2026-11-10 00:00+00', '2026-11-10 00:05+00', '203.0.114.1', 64500, 'routing:rv:2026-11-10', 'DE', 'maxmind',
     'routed', 'cymru', NULL, 'none', '2026-11-10 01:00+00', ipintel_tests.document('{}'), '2026-11-10 01:00+00'),
    ('history', '2026-11-11 00:00+00', '2026-11-11 00:05+00', '203.0.114.1', 64500, 'cymru:history', 'DE', 'maxmind',
     'routed', 'cymru', false, 'greynoise', '2026-11-11 01:00+00', ipintel_tests.document('{}'), '2026-11-11 01:00+00'),
    ('bogon', '2026-11-11 00:00+00', '2026-11-11 00:05+00', '203.0.114.1', NULL, 'bogon', 'XX', 'bogon', 'bogon', 'bogon',
     NULL, 'bogon', '2026-11-11 01:00+00', ipintel_tests.document('{}'), '2026-11-11 01:00+00'),
    ('partial', '2026-11-12 00:00+00', '2026-11-12 00:05+00', '203.0.114.1', NULL, 'none', NULL, NULL, NULL, NULL, NULL,
     NULL, '2026-11-12 01:00+00', ipintel_tests.document('{}'), NULL),
    ('not-taken', '2026-11-12 00:00+00', '2026-11-12 00:05+00', '203.0.114.1', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL);

SELECT is((SELECT sum(violations) FROM ipintel.verify_snapshots()), 0::numeric,
          'sound snapshots of every form (bare source before the first 0022 form, routing, history, bogon, partial)');
SELECT is((SELECT count(*) FROM ipintel.verify_snapshots()), 10::bigint, 'ten rules, each always listed');

-- Planted: a bare source after the 0022 form began, a routing snapshot never loaded, an unknown
-- country source; written with the guard off, as an unaudited rewrite would be.
ALTER TABLE ipintel.session_summaries DISABLE TRIGGER session_summaries_snapshot_is_immutable;
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, snapshot_asn, snapshot_asn_source,
                                       snapshot_country, snapshot_country_source, snapshot_at, snapshot_document) VALUES
    ('bare-late', '2026-11-20 00:00+00', '2026-11-20 00:05+00', '203.0.114.1', 64500, 'cymru', 'DE', 'maxmind',
     '2026-11-20 01:00+00', ipintel_tests.document('{}')),
    ('no-such-snapshot', '2026-11-20 00:00+00', '2026-11-20 00:05+00', '203.0.114.1', 64500, 'routing:rv:2026-11-19',
     'DE', 'maxmind', '2026-11-20 01:00+00', ipintel_tests.document('{}'));
UPDATE ipintel.session_summaries SET snapshot_country_source = 'somebody' WHERE session_id = 'history';

SELECT results_eq(
    $$SELECT violations, examples FROM ipintel.verify_snapshots() WHERE violations > 0$$,
    $$VALUES (2::bigint, ARRAY['bare-late', 'no-such-snapshot']), (1, ARRAY['history']), (1, '{}'::text[])$$,
    'the malformed ASN sources, the unknown country source and the disabled guard are found');
SELECT ok((SELECT rule FROM ipintel.verify_snapshots() WHERE violations = 1 AND examples = '{}') LIKE '%trigger%',
          'the disabled rewrite guard is a violation');
ALTER TABLE ipintel.session_summaries ENABLE TRIGGER session_summaries_snapshot_is_immutable;

INSERT INTO ipintel.snapshot_redos (since, until, reason) VALUES ('2026-01-01', '2026-02-01', 'left open');
SELECT results_eq(
    $$SELECT violations FROM ipintel.verify_snapshots() WHERE rule LIKE '%redo%'$$, $$VALUES (1::bigint)$$,
    'an unfinished redo (an open door for rewrites) is a violation');

-- a complete snapshot without every source (the CHECK is dropped here to plant it)
ALTER TABLE ipintel.session_summaries DROP CONSTRAINT session_summaries_snapshot_is_consistent;
UPDATE ipintel.session_summaries SET snapshot_complete_at = now() WHERE session_id = 'partial';
SELECT results_eq(
    $$SELECT violations, examples FROM ipintel.verify_snapshots() WHERE rule LIKE 'a complete snapshot%'$$,
    $$VALUES (1::bigint, ARRAY['partial'])$$, 'a complete snapshot missing sources is found');

-- a reference to a document that is not stored (snapshot_document has no per-row foreign key),
-- planted with the rewrite guard off
ALTER TABLE ipintel.session_summaries DISABLE TRIGGER session_summaries_snapshot_is_immutable;
UPDATE ipintel.session_summaries SET snapshot_document = -1 WHERE session_id = 'partial';
ALTER TABLE ipintel.session_summaries ENABLE TRIGGER session_summaries_snapshot_is_immutable;
SELECT results_eq(
    $$SELECT violations, examples FROM ipintel.verify_snapshots() WHERE rule LIKE 'every snapshot_document%'$$,
    $$VALUES (1::bigint, ARRAY['partial'])$$, 'a session referring to a document that is not stored is found');

-- the guard that keeps stored documents unchanged, disabled
ALTER TABLE ipintel.enrichment_documents DISABLE TRIGGER enrichment_documents_are_immutable;
SELECT results_eq(
    $$SELECT violations FROM ipintel.verify_snapshots() WHERE rule LIKE '%stored documents unchanged%'$$,
    $$VALUES (1::bigint)$$, 'the disabled guard of the stored documents is a violation');

SELECT * FROM finish();
ROLLBACK;
