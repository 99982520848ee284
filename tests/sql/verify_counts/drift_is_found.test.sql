-- verify_counts(): the maintained counts against a recount from scratch; a planted drift is
-- found, value by value, and nothing else.
BEGIN;
SELECT plan(4);

INSERT INTO ipintel.asn_inventory (asn) VALUES (64500), (64501);
INSERT INTO ipintel.ip_inventory (ip, current_asn) VALUES ('203.0.114.1', 64500), ('203.0.114.2', 64500), ('203.0.114.3', NULL);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip) VALUES
    ('v1', '2026-11-01 00:00+00', '2026-11-01 00:05+00', '203.0.114.1'),
    ('v2', '2026-11-02 00:00+00', '2026-11-02 00:05+00', '203.0.114.2'),
    ('v3', '2026-11-03 00:00+00', '2026-11-03 00:05+00', '203.0.114.2'),
    ('v4', '2026-11-04 00:00+00', '2026-11-04 00:05+00', '203.0.114.3');
-- as ingest and the merges leave them
UPDATE ipintel.ip_inventory i SET session_count = s.n, first_seen = s.f, last_seen = s.l
FROM (SELECT source_ip, count(*) n, min(first_event_at) f, max(last_event_at) l FROM ipintel.session_summaries GROUP BY 1) s
WHERE s.source_ip = i.ip;
SELECT FROM ipintel.refresh_asn_counts(ARRAY[64500, 64501]::bigint[]);

SELECT is_empty($$SELECT * FROM ipintel.verify_counts()$$, 'counts kept by the merges: no drift');

UPDATE ipintel.ip_inventory SET session_count = 7 WHERE ip = '203.0.114.2';
UPDATE ipintel.asn_inventory SET ip_count = 5, last_seen = '2027-01-01 00:00+00' WHERE asn = 64500;
UPDATE ipintel.asn_inventory SET session_count = 1 WHERE asn = 64501;
SET LOCAL TimeZone = 'UTC';
SELECT results_eq(
    $$SELECT table_name, key, column_name, stored, recounted FROM ipintel.verify_counts()$$,
    $$VALUES ('asn_inventory', '64500', 'ip_count', '5', '2'),
             ('asn_inventory', '64500', 'last_seen', '2027-01-01 00:00:00+00', '2026-11-03 00:05:00+00'),
             ('asn_inventory', '64501', 'session_count', '1', '0'),
             ('ip_inventory', '203.0.114.2', 'session_count', '7', '2')$$,
    'every planted drift, with the stored and the recounted value (the ASN sums are recounted from sessions, not from the drifted IP count)');

DELETE FROM ipintel.session_summaries WHERE session_id = 'v4';
SELECT results_eq(
    $$SELECT column_name, stored, recounted FROM ipintel.verify_counts() WHERE key = '203.0.114.3'$$,
    $$VALUES ('first_seen', '2026-11-04 00:00:00+00', NULL), ('last_seen', '2026-11-04 00:05:00+00', NULL),
             ('session_count', '1', '0')$$,
    'a session deleted behind the counts is found');
SELECT function_returns('ipintel', 'verify_counts', ARRAY[]::text[], 'setof record', 'a set-returning function');

SELECT * FROM finish();
ROLLBACK;
