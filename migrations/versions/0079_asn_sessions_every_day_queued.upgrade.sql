-- From migrations/versions/0079_asn_sessions_every_day_queued.upgrade.sql (sql/095_analyst_views.sql)
-- asn_sessions reads every day's sessions while the roll-up queue holds a NULL day (an UPDATE of
-- sessions by hand): that day matched no session, so a session given the ASN by hand was missing
-- until the next roll-up.
-- Locks: none on a table that holds rows (CREATE OR REPLACE of one catalog row).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- Sessions attributed to one ASN: by their snapshot once it knows the ASN, else by the IP's
-- current ASN. No index covers snapshot_asn (take_snapshots' updates stay HOT, revision 0038):
-- the days that hold sessions of the ASN are read from attribution_asn_daily (its index on the
-- ASN), with the days still queued for roll_up_attribution, and only those days' sessions are read.
-- A NULL day queued (an UPDATE of sessions outside take_snapshots, redo_snapshots and
-- merge_cowrie_events) means any day may have changed: then every day's sessions are read
-- (revision 0079; before, the NULL day matched no session, and a session given the ASN by hand
-- was missing until the next roll-up).
CREATE OR REPLACE FUNCTION ipintel.asn_sessions(p_asn bigint)
    RETURNS SETOF ipintel.session_attribution
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.*
    FROM ipintel.session_attribution a
    WHERE a.session_id IN (
        SELECT s.session_id
        FROM (SELECT d.day FROM ipintel.attribution_asn_daily d WHERE coalesce(d.asn, -1) = p_asn
              UNION
              SELECT q.day FROM ipintel.attribution_dirty_days q WHERE q.day IS NOT NULL) days
        JOIN ipintel.session_summaries s
          ON s.first_event_at >= days.day::timestamp AT TIME ZONE 'UTC'
         AND s.first_event_at < (days.day + 1)::timestamp AT TIME ZONE 'UTC'
        WHERE s.snapshot_asn = p_asn AND s.snapshot_asn_source IS NOT NULL
        UNION ALL
        -- every day, when a NULL day is queued (a one-time filter: not read otherwise)
        SELECT s.session_id
        FROM ipintel.session_summaries s
        WHERE s.snapshot_asn = p_asn AND s.snapshot_asn_source IS NOT NULL
          AND EXISTS (SELECT 1 FROM ipintel.attribution_dirty_days q WHERE q.day IS NULL)
        UNION ALL
        SELECT s.session_id FROM ipintel.ip_inventory i
        JOIN ipintel.session_summaries s ON s.source_ip = i.ip
        WHERE i.current_asn = p_asn AND s.snapshot_asn_source IS NULL);
END;
COMMENT ON FUNCTION ipintel.asn_sessions(bigint) IS
    'The sessions attributed to ASN p_asn (session_attribution rows): by the snapshot once it knows the ASN (read from the days attribution_asn_daily and the roll-up queue, attribution_dirty_days, name for it; every day while the queue holds a NULL day), else by the IP''s current ASN.';
