-- merge_cowrie_events(): staged events become sessions and IPs, set-based; batches add up.
BEGIN;
SELECT plan(9);

INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor, protocol, src_port, dst_ip, dst_port)
VALUES (-1, 1, 'cowrie.session.connect', '2026-11-01 23:59:50+00', 'abc123', '::ffff:203.0.114.9', 'hp1', 'ssh', 40000, '10.0.0.5', 22);
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
VALUES (-1, 2, 'cowrie.login.failed', '2026-11-01 23:59:55+00', 'abc123', '::ffff:203.0.114.9', 'hp1'),
       (-1, 3, 'cowrie.direct-tcpip.request', '2026-11-01 23:59:56+00', 'abc123', '127.0.0.1', 'hp1');

SELECT results_eq($$SELECT events, sessions_new, sessions_updated, ips_new FROM ipintel.merge_cowrie_events(-1)$$,
                  $$VALUES (3::bigint, 1::bigint, 0::bigint, 1::bigint)$$, 'first batch: one new session, one new IP');
SELECT is((SELECT count(*)::int FROM ipintel_staging.cowrie_events WHERE batch_id = -1), 0, 'the batch is emptied');
SELECT is((SELECT host(source_ip) FROM ipintel.session_summaries WHERE session_id = 'abc123'), '203.0.114.9',
          'IPv4-mapped source normalised; direct-tcpip origin ignored');

-- The rest of the session, in the next day's file.
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor, duration)
VALUES (-2, 1, 'cowrie.login.success', '2026-11-02 00:00:03+00', 'abc123', '127.0.0.1', 'hp1', NULL),
       (-2, 2, 'cowrie.command.input', '2026-11-02 00:00:04+00', 'abc123', '203.0.114.9', 'hp1', NULL),
       (-2, 3, 'cowrie.session.closed', '2026-11-02 00:00:09+00', 'abc123', '203.0.114.9', 'hp1', 19.5);
SELECT results_eq($$SELECT events, sessions_new, sessions_updated, ips_new FROM ipintel.merge_cowrie_events(-2)$$,
                  $$VALUES (3::bigint, 0::bigint, 1::bigint, 0::bigint)$$, 'second batch updates the same session');
SELECT results_eq(
    $$SELECT login_attempts, login_successes, command_count, event_count, duration_seconds, protocol
      FROM ipintel.session_summaries WHERE session_id = 'abc123'$$,
    $$VALUES (2::bigint, 1::bigint, 1::bigint, 6::bigint, 19.5::double precision, 'ssh'::text)$$,
    'counts add up across the midnight split');
SELECT is((SELECT last_event_at - first_event_at FROM ipintel.session_summaries WHERE session_id = 'abc123'),
          interval '19 seconds', 'first and last event times widen');
SELECT is((SELECT session_count FROM ipintel.ip_inventory WHERE ip = '203.0.114.9'), 1::bigint,
          'the IP counts the session once');
SELECT ok(NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory WHERE ip = '127.0.0.1'),
          'no ip_inventory row for the forwarding origin');
SELECT is((SELECT first_seen FROM ipintel.ip_inventory WHERE ip = '203.0.114.9'), '2026-11-01 23:59:50+00'::timestamptz,
          'first_seen is the session start');

SELECT * FROM finish();
ROLLBACK;
