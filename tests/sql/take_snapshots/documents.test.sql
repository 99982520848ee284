-- take_snapshots() and enrichment_documents (issue 15, revision 0035): a snapshot's document is
-- stored once per distinct document and referenced by the sessions that took it; a changed
-- document is a new row and the sessions before keep theirs; a complete snapshot's document and a
-- stored document are never rewritten, except by redo_snapshots taking the snapshot again.
BEGIN;
SELECT plan(14);

-- MaxMind alone: once it has answered, nothing is awaited and snapshots complete at once.
UPDATE ipintel.enrichment_policy SET enabled = false WHERE source <> 'maxmind';

INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES
    ('203.0.114.7', now() - interval '2 hours', now(), 3),
    ('203.0.114.8', now() - interval '2 hours', now(), 1);
-- The same answer for both IPs: the same document.
SELECT ipintel_tests.answer('maxmind', '{"203.0.114.7": {"found": true, "country": "NL", "asn": 64500, "asn_db": {"type": "GeoLite2-ASN"}},
                                         "203.0.114.8": {"found": true, "country": "NL", "asn": 64500, "asn_db": {"type": "GeoLite2-ASN"}}}',
                            now(), 1);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('a1', now() - interval '90 minutes', now() - interval '89 minutes', '203.0.114.7'),
    ('a2', now() - interval '80 minutes', now() - interval '79 minutes', '203.0.114.7'),
    ('b1', now() - interval '70 minutes', now() - interval '69 minutes', '203.0.114.8');

SELECT is(ipintel.take_snapshots(), 3::bigint, 'the three sessions are snapshotted');
SELECT results_eq(
    $$SELECT count(DISTINCT snapshot_document), count(*) FILTER (WHERE snapshot_complete_at IS NOT NULL)
      FROM ipintel.session_summaries$$,
    $$VALUES (1::bigint, 3::bigint)$$,
    'two sessions of one IP and a session of another IP with the same document share one document');
SELECT is((SELECT count(*) FROM ipintel.enrichment_documents), 1::bigint, 'the document is stored once');
SELECT is((SELECT snapshot_enrichment FROM ipintel.session_documents WHERE session_id = 'a1'),
          (SELECT enrichment FROM ipintel.ip_inventory WHERE ip = '203.0.114.7'),
          'session_documents gives the session the document as it was');
SELECT is((SELECT digest FROM ipintel.enrichment_documents),
          ipintel.enrichment_digest((SELECT enrichment FROM ipintel.ip_inventory WHERE ip = '203.0.114.8')),
          'its digest is the document''s');

-- A newer MaxMind build places 203.0.114.7 in DE: a new session takes the new document.
SELECT ipintel_tests.answer('maxmind', '{"203.0.114.7": {"found": true, "country": "DE", "asn": 64500, "asn_db": {"type": "GeoLite2-ASN"}}}',
                            now(), 2);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('a3', now() - interval '10 minutes', now() - interval '9 minutes', '203.0.114.7');
SELECT is(ipintel.take_snapshots(), 1::bigint, 'only the new session is snapshotted');
SELECT is((SELECT count(*) FROM ipintel.enrichment_documents), 2::bigint, 'the changed document is a new row');
SELECT results_eq(
    $$SELECT session_id, snapshot_enrichment #>> '{maxmind,country}' FROM ipintel.session_documents ORDER BY 1$$,
    $$VALUES ('a1', 'NL'), ('a2', 'NL'), ('a3', 'DE'), ('b1', 'NL')$$,
    'the sessions before keep the document they took');

-- Neither a complete snapshot's document nor a stored document is ever rewritten.
SELECT throws_ok($$UPDATE ipintel.session_summaries
                   SET snapshot_document = (SELECT snapshot_document FROM ipintel.session_summaries WHERE session_id = 'a3')
                   WHERE session_id = 'a1'$$,
                 '23000', NULL, 'pointing a complete snapshot at another document is refused');
SELECT throws_ok($$UPDATE ipintel.enrichment_documents SET document = '{}'$$, '23000', NULL,
                 'changing a stored document is refused');
SELECT throws_ok($$DELETE FROM ipintel.enrichment_documents$$, '23000', NULL, 'deleting a stored document is refused');

-- redo_snapshots takes them again, audited: every session now takes the current document, which
-- is stored already.
SELECT results_eq(
    $$SELECT sessions_reset, sessions_taken
      FROM ipintel.redo_snapshots(now() - interval '1 day', now() + interval '1 day', 'a newer build')$$,
    $$VALUES (4::bigint, 4::bigint)$$, 'the redo resets and takes the four snapshots');
SELECT results_eq(
    $$SELECT session_id, snapshot_enrichment #>> '{maxmind,country}' FROM ipintel.session_documents
      WHERE source_ip = '203.0.114.7' ORDER BY 1$$,
    $$VALUES ('a1', 'DE'), ('a2', 'DE'), ('a3', 'DE')$$,
    'after the redo the sessions of 203.0.114.7 refer to the current document');
SELECT is((SELECT count(*) FROM ipintel.enrichment_documents), 2::bigint,
          'the current document was stored already: no new row (the NL one stays, b1 still refers to it)');

SELECT * FROM finish();
ROLLBACK;
