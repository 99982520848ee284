-- From migrations/versions/0079_asn_sessions_every_day_queued.downgrade.sql (sql/095_analyst_views.sql)
-- asn_sessions as at revision 0078 (a NULL day queued matches no session).
-- Locks: none on a table that holds rows.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- Sessions attributed to one ASN: by their snapshot once it knows the ASN, else by the IP's
-- current ASN. No index covers snapshot_asn (take_snapshots' updates stay HOT, revision 0038):
-- the days that hold sessions of the ASN are read from attribution_asn_daily (its index on the
-- ASN), with the days still queued for roll_up_attribution, and only those days' sessions are read.
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
              SELECT q.day FROM ipintel.attribution_dirty_days q) days
        JOIN ipintel.session_summaries s
          ON s.first_event_at >= days.day::timestamp AT TIME ZONE 'UTC'
         AND s.first_event_at < (days.day + 1)::timestamp AT TIME ZONE 'UTC'
        WHERE s.snapshot_asn = p_asn AND s.snapshot_asn_source IS NOT NULL
        UNION ALL
        SELECT s.session_id FROM ipintel.ip_inventory i
        JOIN ipintel.session_summaries s ON s.source_ip = i.ip
        WHERE i.current_asn = p_asn AND s.snapshot_asn_source IS NULL);
END;
COMMENT ON FUNCTION ipintel.asn_sessions(bigint) IS
    'The sessions attributed to ASN p_asn (session_attribution rows): by the snapshot once it knows the ASN (read from the days attribution_asn_daily and the roll-up queue, attribution_dirty_days, name for it), else by the IP''s current ASN.';
