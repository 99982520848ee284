-- take_snapshots() writes the sessions it fills in the order of the heap (revision 0057; it locked
-- them in that order too until revision 0068): in the order of its joins (by IP) a month larger
-- than shared_buffers had each page read, dirtied and written back many times. Here the
-- sessions' IPs are spread so that their order by IP is nothing like the order they were
-- inserted in; a row trigger notes the order of the writes, which must follow the sessions'
-- places in the heap, read before.
BEGIN;
SELECT plan(4);

SELECT ipintel.ensure_session_partitions(ARRAY['2019-04-10 00:00Z'::timestamptz]);
UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
SELECT '81.40.0.0'::inet + g, '2019-04-10', '2019-04-10', 3 FROM generate_series(0, 1999) g;
-- session g comes from IP (g * 7919) mod 2000: consecutive sessions, far-apart IPs
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
SELECT 'heap-' || g, '2019-04-10 10:00Z', '2019-04-10 10:01Z', '81.40.0.0'::inet + (g * 7919) % 2000
FROM generate_series(0, 5999) g;
SELECT ipintel.start_run('maxmind', '{}'::jsonb) AS run \gset
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result)
SELECT :run, 902, 'maxmind', i.ip, now(),
       jsonb_build_object('found', true, 'country', 'GB', 'asn', 64900 + (i.ip - '81.40.0.0'::inet) % 7,
                          'as_org', 'AS', 'asn_db', '{"type": "GeoLite2-ASN"}'::jsonb)
FROM ipintel.ip_inventory i WHERE i.ip << '81.40.0.0/16';
SELECT ipintel.merge_batch(:run, 902);
ANALYZE ipintel.session_summaries, ipintel.ip_inventory, ipintel.enrichment_state;

CREATE TEMP TABLE place AS
SELECT s.session_id, s.ctid AS row_ctid FROM ipintel.session_summaries_2019_04 s;
CREATE TEMP TABLE written (n bigint GENERATED ALWAYS AS IDENTITY, session_id text);
-- take_snapshots() runs as its owner: the note is written as this test's role
CREATE FUNCTION pg_temp.note_write() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO pg_temp.written (session_id) VALUES (NEW.session_id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER note_write BEFORE UPDATE ON ipintel.session_summaries_2019_04
    FOR EACH ROW EXECUTE FUNCTION pg_temp.note_write();

SELECT is(ipintel.take_snapshots(), 6000::bigint, 'the 6,000 sessions are filled');
SELECT is((SELECT count(*) FROM written), 6000::bigint, 'each written once');
SELECT is(
    (SELECT count(*) FROM (
         SELECT p.row_ctid < lag(p.row_ctid) OVER (ORDER BY w.n) AS back
         FROM written w JOIN place p ON p.session_id = w.session_id) x
     WHERE x.back),
    0::bigint, 'in the order of their places in the heap: no write goes back to an earlier place');
-- and the values are those of the order-free rule: every field from MaxMind, complete
SELECT is(
    (SELECT count(*) FROM ipintel.session_summaries_2019_04 s
     WHERE s.snapshot_complete_at IS NOT NULL AND s.snapshot_country = 'GB'
       AND s.snapshot_asn = 64900 + (s.source_ip - '81.40.0.0'::inet) % 7
       AND s.snapshot_asn_source = 'maxmind:current'),
    6000::bigint, 'with the IP''s ASN and country, complete');

SELECT * FROM finish();
ROLLBACK;
