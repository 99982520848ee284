-- take_snapshots(): point-in-time attribution, never rewritten.
BEGIN;
SELECT plan(7);

INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64500, 'OLD-AS'), (64501, 'NEW-AS');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count, current_asn, enrichment) VALUES
    ('203.0.114.7', '2026-10-01', '2026-11-01', 2, 64501,
     jsonb_build_object('maxmind', jsonb_build_object('country', 'NL', 'fetched_at', now())));
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source) VALUES
    ('203.0.114.7', 64500, tstzrange('2026-09-01', '2026-10-15'), 'cymru'),
    ('203.0.114.7', 64501, tstzrange('2026-10-15', NULL), 'cymru');
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('before-move', '2026-10-01 12:00', '2026-10-01 12:05', '203.0.114.7'),
    ('after-move', '2026-11-01 12:00', '2026-11-01 12:05', '203.0.114.7');

SELECT is(ipintel.take_snapshots(ARRAY['maxmind']), 2::bigint, 'both sessions of a settled IP get a snapshot');
SELECT is(snapshot_asn, 64500::bigint, 'the ASN valid at the session''s time, not today''s')
FROM ipintel.session_summaries WHERE session_id = 'before-move';
SELECT is(snapshot_asn, 64501::bigint, 'after the move: the new ASN')
FROM ipintel.session_summaries WHERE session_id = 'after-move';
SELECT is(snapshot_country, 'NL', 'country from ip_inventory') FROM ipintel.session_summaries WHERE session_id = 'after-move';

UPDATE ipintel.ip_inventory SET enrichment = jsonb_build_object('maxmind', jsonb_build_object('country', 'DE', 'fetched_at', now()));
SELECT is(ipintel.take_snapshots(ARRAY['maxmind']), 0::bigint, 'a later call takes no snapshot again');
SELECT is(snapshot_country, 'NL', 'the snapshot keeps what was known') FROM ipintel.session_summaries WHERE session_id = 'after-move';
SELECT throws_ok($$UPDATE ipintel.session_summaries SET snapshot_country = 'DE' WHERE session_id = 'after-move'$$,
                 '23000', NULL, 'rewriting a snapshot is refused by a trigger');

SELECT * FROM finish();
ROLLBACK;
