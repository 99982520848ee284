-- From sql/095_analyst_views.sql
-- The questions analysts ask, each a function over a half-open window [p_since, p_until) of
-- session start times, reading the point-in-time snapshot columns through session_attribution
-- (the IP's current value only where a snapshot does not know a field yet). No source is
-- named here: what a source said is read from the registry and enrichment_state.
-- Also: `ipintel verify` (counts recounted from scratch, the snapshot rules) and the IPs a
-- refresh by ASN or country re-fetches.

------------------------------------------------------------------------------------------
-- Activity in a window: per ASN, per country, per day, per class
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.activity_by_asn(p_since timestamptz, p_until timestamptz)
    RETURNS TABLE (asn bigint, as_name text, sessions bigint, ips bigint, logins bigint, commands bigint,
                   downloads bigint, first_session timestamptz, last_session timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    -- Aggregated first, named after: the AS names are looked up once per ASN, not per session.
    SELECT g.asn, n.as_name, g.sessions, g.ips, g.logins, g.commands, g.downloads, g.first_session, g.last_session
    FROM (SELECT a.asn, count(*) AS sessions, count(DISTINCT a.source_ip) AS ips,
                 sum(a.login_successes)::bigint AS logins, sum(a.command_count)::bigint AS commands,
                 sum(a.download_count)::bigint AS downloads, min(a.first_event_at) AS first_session,
                 max(a.first_event_at) AS last_session
          FROM ipintel.session_attribution a
          WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
          GROUP BY a.asn) g
    LEFT JOIN ipintel.asn_inventory n ON n.asn = g.asn
    ORDER BY g.sessions DESC, g.asn NULLS LAST;
END;
COMMENT ON FUNCTION ipintel.activity_by_asn(timestamptz, timestamptz) IS
    'Per ASN the sessions attribute to (the snapshot once known), for sessions that started in [p_since, p_until), most sessions first: asn (NULL: unknown), as_name, sessions, ips (distinct source IPs), logins (successful logins), commands (commands entered), downloads (files downloaded), first_session / last_session (start times).';

CREATE FUNCTION ipintel.activity_by_country(p_since timestamptz, p_until timestamptz)
    RETURNS TABLE (country text, sessions bigint, ips bigint, asns bigint, logins bigint, commands bigint,
                   downloads bigint, first_session timestamptz, last_session timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.country, count(*), count(DISTINCT a.source_ip), count(DISTINCT a.asn),
           sum(a.login_successes)::bigint, sum(a.command_count)::bigint, sum(a.download_count)::bigint,
           min(a.first_event_at), max(a.first_event_at)
    FROM ipintel.session_attribution a
    WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
    GROUP BY a.country
    ORDER BY 2 DESC, 1;
END;
COMMENT ON FUNCTION ipintel.activity_by_country(timestamptz, timestamptz) IS
    'Per geolocation country (XX: unknown) the sessions that started in [p_since, p_until), most sessions first: sessions, ips, asns (distinct known ASNs), logins, commands, downloads, first_session / last_session.';

CREATE FUNCTION ipintel.activity_by_day(p_since timestamptz, p_until timestamptz)
    RETURNS TABLE (day date, sessions bigint, ips bigint, asns bigint, countries bigint, logins bigint,
                   commands bigint, downloads bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH per_day AS (
        SELECT (a.first_event_at AT TIME ZONE 'UTC')::date AS day, count(*) AS sessions,
               count(DISTINCT a.source_ip) AS ips, count(DISTINCT a.asn) AS asns,
               count(DISTINCT a.country) AS countries, sum(a.login_successes)::bigint AS logins,
               sum(a.command_count)::bigint AS commands, sum(a.download_count)::bigint AS downloads
        FROM ipintel.session_attribution a
        WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
        GROUP BY 1)
    -- Every day from the first to the last with sessions: a quiet day is a row of zeros.
    SELECT d.day::date, coalesce(p.sessions, 0), coalesce(p.ips, 0), coalesce(p.asns, 0),
           coalesce(p.countries, 0), coalesce(p.logins, 0), coalesce(p.commands, 0), coalesce(p.downloads, 0)
    FROM generate_series((SELECT min(per_day.day) FROM per_day), (SELECT max(per_day.day) FROM per_day),
                         interval '1 day') AS d(day)
    LEFT JOIN per_day p ON p.day = d.day::date
    ORDER BY 1;
END;
COMMENT ON FUNCTION ipintel.activity_by_day(timestamptz, timestamptz) IS
    'Per UTC day, from the first to the last day with sessions in [p_since, p_until) (quiet days between are rows of zeros): sessions, ips, asns, countries (distinct known ones), logins, commands, downloads.';

CREATE FUNCTION ipintel.activity_by_class(p_since timestamptz, p_until timestamptz)
    RETURNS TABLE (ip_type text, scanner text, sessions bigint, ips bigint, logins bigint, commands bigint,
                   downloads bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.ip_type,
           CASE a.is_scanner WHEN true THEN 'scanner' WHEN false THEN 'not a scanner' ELSE 'unknown' END,
           count(*), count(DISTINCT a.source_ip), sum(a.login_successes)::bigint, sum(a.command_count)::bigint,
           sum(a.download_count)::bigint
    FROM ipintel.session_attribution a
    WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
    GROUP BY 1, 2
    ORDER BY 3 DESC, 1, 2;
END;
COMMENT ON FUNCTION ipintel.activity_by_class(timestamptz, timestamptz) IS
    'Sessions that started in [p_since, p_until) by infrastructure class (ip_type: bogon, tor, cloud, cdn, hosting, riot, scanner, anonymizer, residential, unrouted, routed, unknown; see ipintel.ip_types) and scanner verdict (scanner, not a scanner, unknown: no source that says was asked), most sessions first: sessions, ips, logins, commands, downloads.';

------------------------------------------------------------------------------------------
-- What is new this week, against the four weeks before
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.asn_trends(p_until timestamptz)
    RETURNS TABLE (asn bigint, as_name text, this_week bigint, four_weeks_before bigint,
                   weekly_average_before numeric, is_new boolean)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT g.asn, n.as_name, g.this_week, g.before, round(g.before / 4.0, 2), g.before = 0
    FROM (SELECT a.asn,
                 count(*) FILTER (WHERE a.first_event_at >= p_until - interval '7 days') AS this_week,
                 count(*) FILTER (WHERE a.first_event_at < p_until - interval '7 days') AS before
          FROM ipintel.session_attribution a
          WHERE a.first_event_at >= p_until - interval '35 days' AND a.first_event_at < p_until
          GROUP BY a.asn) g
    LEFT JOIN ipintel.asn_inventory n ON n.asn = g.asn
    WHERE g.this_week > 0
    ORDER BY g.before = 0 DESC, g.this_week DESC, g.asn NULLS LAST;
END;
COMMENT ON FUNCTION ipintel.asn_trends(timestamptz) IS
    'The ASNs with sessions in the week before p_until, against the four weeks before that: this_week (sessions in [p_until - 7 days, p_until)), four_weeks_before (sessions in [p_until - 35 days, p_until - 7 days)), weekly_average_before, is_new (none in those four weeks). New ones first, then by this week''s sessions.';

CREATE FUNCTION ipintel.country_trends(p_until timestamptz)
    RETURNS TABLE (country text, this_week bigint, four_weeks_before bigint, weekly_average_before numeric,
                   is_new boolean)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT g.country, g.this_week, g.before, round(g.before / 4.0, 2), g.before = 0
    FROM (SELECT a.country,
                 count(*) FILTER (WHERE a.first_event_at >= p_until - interval '7 days') AS this_week,
                 count(*) FILTER (WHERE a.first_event_at < p_until - interval '7 days') AS before
          FROM ipintel.session_attribution a
          WHERE a.first_event_at >= p_until - interval '35 days' AND a.first_event_at < p_until
          GROUP BY a.country) g
    WHERE g.this_week > 0
    ORDER BY g.before = 0 DESC, g.this_week DESC, g.country;
END;
COMMENT ON FUNCTION ipintel.country_trends(timestamptz) IS
    'The countries with sessions in the week before p_until, against the four weeks before that: this_week, four_weeks_before, weekly_average_before, is_new (none in those four weeks). New ones first.';

------------------------------------------------------------------------------------------
-- One IP, one ASN
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.ip_timeline(p_ip inet)
    RETURNS TABLE (at timestamptz, until timestamptz, kind text, source text, asn bigint, country text, detail jsonb)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH target AS (
        SELECT ipintel.normalize_ip(p_ip) AS ip
    ), sessions AS (
        -- the columns read below, named: a BEGIN ATOMIC body would freeze s.* at the columns the
        -- table had when the function was created
        SELECT s.session_id, s.source_ip, s.first_event_at, s.last_event_at, s.sensor, s.protocol, s.dst_port,
               s.login_attempts, s.login_successes, s.command_count, s.download_count, s.client_version, s.hassh,
               s.snapshot_asn, s.snapshot_asn_source, s.snapshot_country, s.snapshot_ip_type, s.snapshot_is_scanner,
               s.snapshot_complete_at
        FROM ipintel.session_summaries s WHERE s.source_ip = (SELECT t.ip FROM target t)
    ), routing AS (
        -- the routing history's origin AS at each session's day (one GiST probe per day)
        SELECT r.day, r.asn, r.dataset, r.taken_on, r.prefix
        FROM ipintel.routing_asns(ARRAY(SELECT s.source_ip FROM sessions s),
                                  ARRAY(SELECT (s.first_event_at AT TIME ZONE 'UTC')::date FROM sessions s)) r
    )
    SELECT s.first_event_at, s.last_event_at, 'session', s.snapshot_asn_source, s.snapshot_asn, s.snapshot_country,
           jsonb_build_object('session_id', s.session_id, 'sensor', s.sensor, 'protocol', s.protocol,
                              'dst_port', s.dst_port, 'login_attempts', s.login_attempts,
                              'login_successes', s.login_successes, 'commands', s.command_count,
                              'downloads', s.download_count, 'client_version', s.client_version, 'hassh', s.hassh,
                              'ip_type', s.snapshot_ip_type, 'is_scanner', s.snapshot_is_scanner,
                              'snapshot_complete_at', s.snapshot_complete_at,
                              'routing_asn', r.asn, 'routing_prefix', r.prefix,
                              'routing_snapshot', r.dataset || ':' || r.taken_on::text)
    FROM sessions s
    LEFT JOIN routing r ON r.day = (s.first_event_at AT TIME ZONE 'UTC')::date
    UNION ALL
    -- the ranges of ip_asn_history: each ASN the sources observed, from when until the next change
    SELECT lower(h.valid), upper(h.valid), 'asn', h.source, h.asn, NULL,
           jsonb_build_object('as_name', n.as_name, 'recorded_at', h.recorded_at)
    FROM ipintel.ip_asn_history h
    LEFT JOIN ipintel.asn_inventory n ON n.asn = h.asn
    WHERE h.ip = (SELECT t.ip FROM target t)
    UNION ALL
    -- what each source says: since when (changed_at), last confirmed (fetched_at), its facts and document
    SELECT e.changed_at, NULL, 'answer', e.source, e.asn, e.country,
           jsonb_build_object('fetched_at', e.fetched_at, 'build', e.build, 'asn_observed', e.asn_observed,
                              'is_scanner', e.is_scanner, 'is_riot', e.is_riot, 'ip_type', e.ip_type,
                              'document', i.enrichment -> e.source)
    FROM ipintel.enrichment_state e
    JOIN ipintel.ip_inventory i ON i.ip = e.ip
    WHERE e.ip = (SELECT t.ip FROM target t)
    UNION ALL
    -- what a source could not say
    SELECT f.recorded_at, f.resolved_at, 'failure', f.source, NULL, NULL,
           jsonb_build_object('error', f.error, 'retryable', f.retryable, 'attempts', f.attempts,
                              'retry_after', f.retry_after)
    FROM ipintel.enrichment_failures f
    WHERE f.ip = (SELECT t.ip FROM target t)
    UNION ALL
    -- routing history: every run of a prefix containing the IP and its origin (days, UTC)
    SELECT lower(o.valid)::timestamp AT TIME ZONE 'UTC', upper(o.valid)::timestamp AT TIME ZONE 'UTC', 'routing',
           'routing:' || o.dataset, o.asn, NULL, jsonb_build_object('prefix', o.prefix)
    FROM ipintel.prefix_origins o
    WHERE o.prefix OPERATOR(pg_catalog.>>=) (SELECT t.ip FROM target t)
    ORDER BY 1, 3, 4;
END;
COMMENT ON FUNCTION ipintel.ip_timeline(inet) IS
    'Everything known about one IP, in time order. kind: session (at/until: its first and last event; source, asn, country: its snapshot; detail: counts, client, snapshot class, and the routing history''s ASN at its day), asn (an ip_asn_history range: the ASN a source observed from at until until, NULL while current), answer (what a source says since at = changed_at, last confirmed detail.fetched_at, its facts and document), failure (a source could not answer: recorded at, resolved until), routing (a prefix_origins run of a prefix containing the IP: its origin AS over those days).';

-- Sessions attributed to one ASN: by their snapshot once it knows the ASN, else by the IP's
-- current ASN. No index covers snapshot_asn (take_snapshots' updates stay HOT, revision 0038):
-- the days that hold sessions of the ASN are read from attribution_asn_daily (its index on the
-- ASN), with the days still queued for roll_up_attribution, and only those days' sessions are read.
-- A NULL day queued (an UPDATE of sessions outside take_snapshots, redo_snapshots and
-- merge_cowrie_events) means any day may have changed: then every day's sessions are read
-- (revision 0079; before, the NULL day matched no session, and a session given the ASN by hand
-- was missing until the next roll-up).
CREATE FUNCTION ipintel.asn_sessions(p_asn bigint)
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

CREATE FUNCTION ipintel.asn_ips(p_asn bigint)
    RETURNS TABLE (ip inet, in_asn_from timestamptz, in_asn_until timestamptz, current_asn bigint, sessions bigint,
                   first_session timestamptz, last_session timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH history AS (
        SELECT h.ip, min(lower(h.valid)) AS since,
               CASE WHEN bool_or(upper_inf(h.valid)) THEN NULL ELSE max(upper(h.valid)) END AS until
        FROM ipintel.ip_asn_history h WHERE h.asn = p_asn GROUP BY h.ip
    ), attributed AS (
        SELECT a.source_ip AS ip, count(*) AS sessions, min(a.first_event_at) AS first_session,
               max(a.first_event_at) AS last_session
        FROM ipintel.asn_sessions(p_asn) a GROUP BY a.source_ip
    )
    SELECT coalesce(h.ip, t.ip), h.since, h.until, i.current_asn, coalesce(t.sessions, 0), t.first_session,
           t.last_session
    FROM history h
    FULL JOIN attributed t ON t.ip = h.ip
    JOIN ipintel.ip_inventory i ON i.ip = coalesce(h.ip, t.ip)
    ORDER BY coalesce(t.first_session, h.since), 1;
END;
COMMENT ON FUNCTION ipintel.asn_ips(bigint) IS
    'Every IP seen in ASN p_asn, in the order they appeared: in_asn_from / in_asn_until (ip_asn_history: first observed in the ASN, and when it left; NULL until: still there, or never observed there by a source), current_asn, sessions attributed to the ASN (snapshots), first_session / last_session.';

CREATE FUNCTION ipintel.asn_ips_by_day(p_asn bigint, p_since timestamptz, p_until timestamptz)
    RETURNS TABLE (day date, sessions bigint, ips bigint, new_ips bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH s AS (
        SELECT a.source_ip, (a.first_event_at AT TIME ZONE 'UTC')::date AS day, a.first_event_at
        FROM ipintel.asn_sessions(p_asn) a
        WHERE a.first_event_at < p_until
    ), firsts AS (
        SELECT s.source_ip, min(s.day) AS first_day FROM s GROUP BY s.source_ip
    )
    SELECT s.day, count(*), count(DISTINCT s.source_ip), count(DISTINCT s.source_ip) FILTER (WHERE f.first_day = s.day)
    FROM s JOIN firsts f ON f.source_ip = s.source_ip
    WHERE s.first_event_at >= p_since
    GROUP BY s.day
    ORDER BY s.day;
END;
COMMENT ON FUNCTION ipintel.asn_ips_by_day(bigint, timestamptz, timestamptz) IS
    'ASN p_asn''s IPs over time: per UTC day with sessions attributed to it in [p_since, p_until), sessions, ips, and new_ips (IPs whose first session in this ASN, ever, was that day).';

------------------------------------------------------------------------------------------
-- Campaigns: one client fingerprint across networks
------------------------------------------------------------------------------------------
-- Each session's fingerprints in a window, one row per kind (hassh, client_version).
CREATE FUNCTION ipintel.session_fingerprints(p_since timestamptz, p_until timestamptz)
    RETURNS TABLE (fingerprint_kind text, fingerprint text, source_ip inet, asn bigint, country text,
                   first_event_at timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT f.kind, f.value, a.source_ip, a.asn, a.country, a.first_event_at
    FROM ipintel.session_attribution a
    JOIN ipintel.session_summaries s ON s.session_id = a.session_id
    CROSS JOIN LATERAL (VALUES ('hassh', s.hassh), ('client_version', s.client_version)) AS f(kind, value)
    WHERE a.first_event_at >= p_since AND a.first_event_at < p_until AND f.value IS NOT NULL;
END;
COMMENT ON FUNCTION ipintel.session_fingerprints(timestamptz, timestamptz) IS
    'The client fingerprints of the sessions that started in [p_since, p_until): one row per session and kind (hassh, client_version; attacker-chosen text) with the session''s source IP, ASN and country.';

CREATE FUNCTION ipintel.campaigns(p_since timestamptz, p_until timestamptz)
    RETURNS TABLE (fingerprint_kind text, fingerprint text, asns bigint, ips bigint, countries bigint, sessions bigint,
                   first_session timestamptz, last_session timestamptz, top_asns bigint[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH per_asn AS (
        SELECT f.fingerprint_kind, f.fingerprint, f.asn, count(*) AS sessions, count(DISTINCT f.source_ip) AS ips,
               count(DISTINCT f.country) AS countries, min(f.first_event_at) AS first_session,
               max(f.first_event_at) AS last_session
        FROM ipintel.session_fingerprints(p_since, p_until) f
        GROUP BY 1, 2, 3
    ), spread AS (
        SELECT p.fingerprint_kind, p.fingerprint
        FROM per_asn p
        GROUP BY 1, 2
        HAVING count(p.asn) >= 2
    )
    SELECT f.fingerprint_kind, f.fingerprint, count(DISTINCT f.asn), count(DISTINCT f.source_ip),
           count(DISTINCT f.country), count(*), min(f.first_event_at), max(f.first_event_at),
           (SELECT array_agg(p.asn ORDER BY p.sessions DESC, p.asn)
            FROM (SELECT q.asn, q.sessions FROM per_asn q
                  WHERE q.fingerprint_kind = f.fingerprint_kind AND q.fingerprint = f.fingerprint AND q.asn IS NOT NULL
                  ORDER BY q.sessions DESC, q.asn LIMIT 10) p)
    FROM ipintel.session_fingerprints(p_since, p_until) f
    JOIN spread USING (fingerprint_kind, fingerprint)
    GROUP BY f.fingerprint_kind, f.fingerprint
    ORDER BY 3 DESC, 4 DESC, 6 DESC, 1, 2;
END;
COMMENT ON FUNCTION ipintel.campaigns(timestamptz, timestamptz) IS
    'Client fingerprints (HASSH or SSH client version) seen from at least two known ASNs in sessions that started in [p_since, p_until): the same tool run from several networks. asns, ips, countries, sessions, first_session / last_session, top_asns (up to 10, most sessions first). Widest spread first.';

CREATE FUNCTION ipintel.campaign_ips(p_kind text, p_fingerprint text, p_since timestamptz, p_until timestamptz)
    RETURNS TABLE (ip inet, asn bigint, as_name text, country text, sessions bigint, first_session timestamptz,
                   last_session timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT f.source_ip, f.asn, n.as_name, f.country, count(*), min(f.first_event_at), max(f.first_event_at)
    FROM ipintel.session_fingerprints(p_since, p_until) f
    LEFT JOIN ipintel.asn_inventory n ON n.asn = f.asn
    WHERE f.fingerprint_kind = p_kind AND f.fingerprint = p_fingerprint
    GROUP BY f.source_ip, f.asn, n.as_name, f.country
    ORDER BY 6, 1, 2;
END;
COMMENT ON FUNCTION ipintel.campaign_ips(text, text, timestamptz, timestamptz) IS
    'The IPs behind one fingerprint (p_kind hassh or client_version) in sessions that started in [p_since, p_until), one row per IP and the ASN / country its sessions are attributed to, in the order they appeared.';

------------------------------------------------------------------------------------------
-- Provenance for the report: sources, data builds, fetch times, routing snapshots
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.report_sources()
    RETURNS TABLE (source text, kind text, enabled boolean, ips_answered bigint, first_fetched_at timestamptz,
                   last_fetched_at timestamptz, builds bigint[], last_run_id bigint, last_run_status text,
                   last_run_finished_at timestamptz, provenance jsonb)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT p.source, p.kind, p.enabled, coalesce(e.ips, 0), e.first_fetched_at, e.last_fetched_at, e.builds,
           r.run_id, r.status, r.finished_at, coalesce(r.provenance, '{}'::jsonb)
    FROM ipintel.enrichment_policy p
    LEFT JOIN LATERAL (
        SELECT count(*) AS ips, min(st.fetched_at) AS first_fetched_at, max(st.fetched_at) AS last_fetched_at,
               array_agg(DISTINCT st.build ORDER BY st.build) FILTER (WHERE st.build IS NOT NULL) AS builds
        FROM ipintel.enrichment_state st WHERE st.source = p.source) e ON true
    -- the latest run that did something (not skipped), with where its data came from
    LEFT JOIN LATERAL (
        SELECT x.run_id, x.status, x.finished_at, x.provenance
        FROM ipintel.enrichment_runs x
        WHERE x.source = p.source AND x.status <> 'skipped'
        ORDER BY x.started_at DESC, x.run_id DESC
        LIMIT 1) r ON true
    ORDER BY p.pass_order;
END;
COMMENT ON FUNCTION ipintel.report_sources() IS
    'Where the data came from, per registered source in pass order: ips_answered (enrichment_state rows), first / last fetch time, builds (data builds of the answers kept, e.g. a database''s build epoch), and the latest run that was not skipped: its id, status, end and provenance (database types, paths and builds, service address; never a secret).';

CREATE FUNCTION ipintel.report_routing_snapshots()
    RETURNS TABLE (dataset text, snapshots bigint, first_taken_on date, last_taken_on date, last_loaded_at timestamptz,
                   prefixes bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT s.dataset, count(*), min(s.taken_on), max(s.taken_on), max(s.loaded_at),
           (array_agg(s.prefixes ORDER BY s.taken_on DESC))[1]
    FROM ipintel.routing_snapshots s
    GROUP BY s.dataset
    ORDER BY s.dataset;
END;
COMMENT ON FUNCTION ipintel.report_routing_snapshots() IS
    'The routing history loaded, per dataset: snapshots, the first and last day they were taken, when the last was loaded, and the (prefix, origin) pairs of the latest.';

------------------------------------------------------------------------------------------
-- ipintel verify: the stored counts against a recount from scratch, and the snapshot rules
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.verify_counts()
    RETURNS TABLE (table_name text, key text, column_name text, stored text, recounted text)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH per_ip AS (
        SELECT i.ip, i.current_asn, i.session_count, i.first_seen, i.last_seen,
               coalesce(s.sessions, 0) AS sessions_recounted, s.first_seen AS first_recounted,
               s.last_seen AS last_recounted
        FROM ipintel.ip_inventory i
        LEFT JOIN (SELECT x.source_ip, count(*) AS sessions, min(x.first_event_at) AS first_seen,
                          max(x.last_event_at) AS last_seen
                   FROM ipintel.session_summaries x GROUP BY x.source_ip) s ON s.source_ip = i.ip
    ), per_asn AS (
        SELECT a.asn, a.ip_count, a.session_count, a.first_seen, a.last_seen,
               coalesce(r.ips, 0) AS ips_recounted, coalesce(r.sessions, 0) AS sessions_recounted,
               r.first_seen AS first_recounted, r.last_seen AS last_recounted
        FROM ipintel.asn_inventory a
        LEFT JOIN (SELECT p.current_asn, count(*) AS ips, sum(p.sessions_recounted)::bigint AS sessions,
                          min(p.first_recounted) AS first_seen, max(p.last_recounted) AS last_seen
                   FROM per_ip p WHERE p.current_asn IS NOT NULL GROUP BY p.current_asn) r ON r.current_asn = a.asn
    )
    SELECT 'ip_inventory', host(p.ip), c.column_name, c.stored, c.recounted
    FROM per_ip p
    CROSS JOIN LATERAL (VALUES ('session_count', p.session_count::text, p.sessions_recounted::text),
                               ('first_seen', p.first_seen::text, p.first_recounted::text),
                               ('last_seen', p.last_seen::text, p.last_recounted::text))
        AS c(column_name, stored, recounted)
    WHERE c.stored IS DISTINCT FROM c.recounted
    UNION ALL
    SELECT 'asn_inventory', p.asn::text, c.column_name, c.stored, c.recounted
    FROM per_asn p
    CROSS JOIN LATERAL (VALUES ('ip_count', p.ip_count::text, p.ips_recounted::text),
                               ('session_count', p.session_count::text, p.sessions_recounted::text),
                               ('first_seen', p.first_seen::text, p.first_recounted::text),
                               ('last_seen', p.last_seen::text, p.last_recounted::text))
        AS c(column_name, stored, recounted)
    WHERE c.stored IS DISTINCT FROM c.recounted
    ORDER BY 1, 3, 2;
END;
COMMENT ON FUNCTION ipintel.verify_counts() IS
    'Drift of the maintained counts, recounted from scratch in one pass: ip_inventory.session_count / first_seen / last_seen from session_summaries, asn_inventory.ip_count / session_count / first_seen / last_seen from the IPs whose current_asn it is and their sessions. One row per value that differs (stored, recounted, as text); no row: no drift.';

CREATE FUNCTION ipintel.verify_snapshots()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH geo_build AS (  -- <source>:build:<day> of a loaded geolocation build (revision 0029)
        SELECT e.source || ':build:' || to_char(b.built_on, 'YYYY-MM-DD') AS build
        FROM ipintel.geo_builds b JOIN ipintel.geo_editions e ON e.edition = b.edition
    ), allowed_asn_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source || k.suffix FROM ipintel.enrichment_policy p
        CROSS JOIN (VALUES (':history'), (':current')) AS k(suffix)
        UNION
        SELECT 'routing:' || r.dataset || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.routing_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || r.taken_on::text FROM ipintel.routing_snapshots r
        UNION
        SELECT b.build FROM geo_build b
    ), allowed_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source FROM ipintel.enrichment_policy p
    ), allowed_ip_type_source AS (
        -- a class from a range or ASN list names the list's snapshot; hosting, residential and
        -- routed name the ASN's source, which may be a routing snapshot or a geolocation build
        -- (revision 0030)
        SELECT a.source FROM allowed_source a
        UNION
        SELECT 'list:' || r.list || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.range_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.routing_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || r.taken_on::text FROM ipintel.routing_snapshots r
        UNION
        SELECT b.build FROM geo_build b
    ), combos AS (
        -- the sessions grouped by what the rules read: a few groups, checked once each
        SELECT s.snapshot_asn_source AS asn_source, s.snapshot_country_source AS country_source,
               s.snapshot_ip_type_source AS ip_type_source, s.snapshot_is_scanner_source AS is_scanner_source,
               s.snapshot_complete_at IS NOT NULL AS complete, s.snapshot_at IS NOT NULL AS taken,
               -- revision 0022 made the ASN's source say how it was found (routing:, :history,
               -- :current); a bare source name is right only for snapshots taken before the first such
               s.snapshot_at < coalesce((SELECT min(x.snapshot_at) FROM ipintel.session_summaries x
                                         WHERE x.snapshot_asn_source LIKE '%:%'), 'infinity') AS before_0022_form,
               count(*) AS sessions, min(s.session_id) AS example
        FROM ipintel.session_summaries s
        WHERE s.snapshot_at IS NOT NULL OR s.snapshot_asn_source IS NOT NULL OR s.snapshot_country_source IS NOT NULL
           OR s.snapshot_ip_type_source IS NOT NULL OR s.snapshot_is_scanner_source IS NOT NULL
           OR s.snapshot_complete_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ), checked AS (
        SELECT r.n, r.rule, c.sessions, c.example
        FROM combos c
        CROSS JOIN LATERAL (VALUES
            (1, 'a complete snapshot names the source of every field',
             c.complete AND (c.asn_source IS NULL OR c.country_source IS NULL OR c.ip_type_source IS NULL
                             OR c.is_scanner_source IS NULL)),
            (2, 'a snapshot with a known field has snapshot_at',
             NOT c.taken),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded build, <source>:current, bogon or none (a bare source: before revision 0022)',
             c.asn_source IS NOT NULL
             AND c.asn_source NOT IN (SELECT a.source FROM allowed_asn_source a)
             AND NOT (c.before_0022_form AND c.asn_source IN (SELECT p.source FROM ipintel.enrichment_policy p))),
            (4, 'snapshot_country_source is a registered source, <source>:build:<day> of a loaded build, bogon or none',
             c.country_source IS NOT NULL AND c.country_source NOT IN (SELECT a.source FROM allowed_source a)
             AND c.country_source NOT IN (SELECT b.build FROM geo_build b)),
            (5, 'snapshot_ip_type_source is a registered source, list:<list>:<day> of a loaded range snapshot, routing:<dataset>:<day> of a loaded routing snapshot, <source>:build:<day> of a loaded build, bogon or none',
             c.ip_type_source IS NOT NULL AND c.ip_type_source NOT IN (SELECT a.source FROM allowed_ip_type_source a)),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none',
             c.is_scanner_source IS NOT NULL AND c.is_scanner_source NOT IN (SELECT a.source FROM allowed_source a))
        ) AS r(n, rule, violated)
        WHERE r.violated
    ), rules AS (
        SELECT r.n, r.rule FROM (VALUES
            (1, 'a complete snapshot names the source of every field'),
            (2, 'a snapshot with a known field has snapshot_at'),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded build, <source>:current, bogon or none (a bare source: before revision 0022)'),
            (4, 'snapshot_country_source is a registered source, <source>:build:<day> of a loaded build, bogon or none'),
            (5, 'snapshot_ip_type_source is a registered source, list:<list>:<day> of a loaded range snapshot, routing:<dataset>:<day> of a loaded routing snapshot, <source>:build:<day> of a loaded build, bogon or none'),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none')) AS r(n, rule)
    )
    SELECT x.rule, x.violations, x.examples
    FROM (
        SELECT r.n, r.rule, coalesce(sum(k.sessions), 0)::bigint AS violations,
               coalesce((array_agg(k.example ORDER BY k.example) FILTER (WHERE k.example IS NOT NULL))[1:3], '{}')
                   AS examples
        FROM rules r LEFT JOIN checked k ON k.n = r.n
        GROUP BY r.n, r.rule
        UNION ALL
        -- the guard: snapshot_redos is the only record of a rewrite only while the trigger refuses the others
        SELECT 7, 'the trigger that refuses unaudited rewrites (session_summaries_snapshot_is_immutable) is enabled',
               CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                 WHERE t.tgrelid = 'ipintel.session_summaries'::regclass
                                   AND t.tgname = 'session_summaries_snapshot_is_immutable' AND t.tgenabled <> 'D')
                    THEN 0 ELSE 1 END,
               '{}'::text[]
        UNION ALL
        -- an unfinished redo row would let anyone who names it rewrite snapshots unaudited
        SELECT 8, 'every redo in snapshot_redos is finished (an open one would allow rewrites)',
               count(*), coalesce((array_agg('redo ' || d.redo_id ORDER BY d.redo_id))[1:3], '{}')
        FROM ipintel.snapshot_redos d WHERE d.finished_at IS NULL
        UNION ALL
        -- snapshot_document has no per-row foreign key (revision 0035): every reference, in one pass
        SELECT 9, 'every snapshot_document is a document stored in enrichment_documents',
               count(*), coalesce((array_agg(s.session_id ORDER BY s.session_id))[1:3], '{}')
        FROM ipintel.session_summaries s
        WHERE s.snapshot_document IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM ipintel.enrichment_documents e WHERE e.document_id = s.snapshot_document)
        UNION ALL
        -- what makes the references safe without that key: a stored document is never deleted
        SELECT 10, 'the trigger that keeps stored documents unchanged (enrichment_documents_are_immutable) is enabled',
               CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                 WHERE t.tgrelid = 'ipintel.enrichment_documents'::regclass
                                   AND t.tgname = 'enrichment_documents_are_immutable' AND t.tgenabled <> 'D')
                    THEN 0 ELSE 1 END,
               '{}'::text[]
    ) x
    ORDER BY x.n;
END;
COMMENT ON FUNCTION ipintel.verify_snapshots() IS
    'The rules snapshots obey, each with its violations (sessions, or 1 for a rule about the schema) and up to three example session ids: complete snapshots name every field''s source, snapshot_at is set, every *_source is well-formed (the ASN''s: routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded geolocation build, <source>:current, bogon, none, or a bare registered source for snapshots taken before revision 0022; the country''s: a registered source, <source>:build:<day>, bogon or none; the class''s: a registered source, list:<list>:<day> of a loaded range snapshot, the ASN''s routing:<dataset>:<day> or <source>:build:<day>, bogon or none), the rewrite guard is enabled and no redo is left open (snapshot_redos is the only record of a rewrite), every snapshot_document names a stored document (no per-row foreign key checks it) and the guard that keeps stored documents unchanged is enabled. violations = 0 everywhere: the snapshots are sound.';

-- What ip_asn_history and ip_inventory's *_source and class columns obey without a per-row check
-- (see sql/030_tiers.sql and sql/070_enrichment.sql), checked from scratch over all of them. Sorted by
-- start, a set of ranges has an overlapping pair exactly when two neighbours overlap.
CREATE FUNCTION ipintel.verify_integrity()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH ranges AS (
        SELECT h.ip, h.asn, h.source, h.valid,
               lag(h.valid) OVER (PARTITION BY h.ip ORDER BY lower(h.valid), upper(h.valid)) AS previous
        FROM ipintel.ip_asn_history h
    ), found AS (
        SELECT 1 AS n, r.ip AS example FROM ranges r WHERE r.previous && r.valid
        UNION ALL
        SELECT 2, r.ip FROM ranges r WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory i WHERE i.ip = r.ip)
        UNION ALL
        SELECT 3, r.ip FROM ranges r
        WHERE r.asn IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.asn_inventory a WHERE a.asn = r.asn)
        UNION ALL
        SELECT 4, r.ip FROM ranges r
        WHERE NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = r.source)
        UNION ALL
        SELECT 5, i.ip FROM ipintel.ip_inventory i
        CROSS JOIN LATERAL (VALUES (i.current_asn_source), (i.geo_country_source), (i.is_scanner_source),
                                   (i.ip_type_source), (i.is_known_attacker_source)) AS v(source)
        WHERE v.source IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = v.source)
        UNION ALL
        SELECT 6, e.ip FROM ipintel.enrichment_state e
        WHERE NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory i WHERE i.ip = e.ip)
           OR NOT EXISTS (SELECT 1 FROM ipintel.enrichment_policy p WHERE p.source = e.source)
        UNION ALL
        -- the class columns (revision 0030), written by every merge without a foreign key
        SELECT 7, i.ip FROM ipintel.ip_inventory i
        WHERE i.ip_type IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ipintel.ip_types t WHERE t.ip_type = i.ip_type)
        UNION ALL
        SELECT 8, i.ip FROM ipintel.ip_inventory i
        WHERE i.ip_class_basis IS NOT NULL
          AND (coalesce(i.ip_class_basis ->> 'rule', '')
                   NOT IN ('bogon', 'range', 'hosting_asn', 'source', 'residential', 'routed', 'unknown')
               OR (i.ip_class_basis ->> 'rule' IN ('range', 'hosting_asn')
                   AND NOT EXISTS (SELECT 1 FROM ipintel.range_snapshots s
                                   JOIN ipintel.range_lists l ON l.list = s.list
                                   WHERE s.list = i.ip_class_basis ->> 'list'
                                     AND to_char(s.taken_on, 'YYYY-MM-DD') = i.ip_class_basis ->> 'snapshot'
                                     AND l.ip_type = i.ip_type)))
        UNION ALL
        SELECT 9, i.ip FROM ipintel.ip_inventory i
        LEFT JOIN ipintel.range_lists l ON l.list = i.ip_class_basis ->> 'list'
        WHERE i.ip_provider IS DISTINCT FROM
              CASE i.ip_class_basis ->> 'rule' WHEN 'range' THEN l.provider
                                               WHEN 'hosting_asn' THEN i.ip_class_basis ->> 'name'
                                               WHEN 'residential' THEN i.ip_class_basis ->> 'as_name' END
    )
    SELECT r.rule, count(DISTINCT f.example),
           coalesce((array_agg(DISTINCT host(f.example)) FILTER (WHERE f.example IS NOT NULL))[1:3], '{}')
    FROM (VALUES (1, 'no two ranges of one IP in ip_asn_history overlap'),
                 (2, 'every ip_asn_history IP is in ip_inventory'),
                 (3, 'every ip_asn_history ASN is in asn_inventory'),
                 (4, 'every ip_asn_history source is a registered source'),
                 (5, 'every ip_inventory *_source is a registered source'),
                 (6, 'every enrichment_state row is of an IP in ip_inventory and a registered source'),
                 (7, 'every ip_inventory ip_type is a class of ip_types'),
                 (8, 'every ip_inventory ip_class_basis names a rule, and a list basis a loaded snapshot of a list of that ip_type'),
                 (9, 'every ip_inventory ip_provider is the one its ip_class_basis names (the range list''s provider, the hosting or residential AS''s name), else NULL')) AS r(n, rule)
    LEFT JOIN found f ON f.n = r.n
    GROUP BY r.n, r.rule
    ORDER BY r.n;
END;
COMMENT ON FUNCTION ipintel.verify_integrity() IS
    'The rules kept without a per-row check on the merge path, checked from scratch: no two ranges of one IP in ip_asn_history overlap (an exclusion constraint covers closed ranges, statement triggers open ones), every history IP, ASN and source exists (ip_inventory, asn_inventory, enrichment_policy), every ip_inventory *_source is registered, every enrichment_state row is of a known IP and source, and the class columns agree with the registries (ip_type in ip_types; ip_class_basis names a rule and, for a list, a loaded snapshot of a list of that class; ip_provider is the one the basis names). violations: the IPs concerned, with up to three examples; 0 everywhere: sound.';


-- What the partitioned session_summaries cannot declare: a key of session_id alone.
CREATE FUNCTION ipintel.verify_sessions()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT 'a session_id names one session (one row across the monthly partitions of session_summaries)' AS rule,
           count(*) AS violations, coalesce((array_agg(d.session_id ORDER BY d.session_id))[1:3], '{}') AS examples
    FROM (SELECT s.session_id FROM ipintel.session_summaries s GROUP BY s.session_id HAVING count(*) > 1) d
    UNION ALL
    -- revision 0060: ingest finds a session by its id through session_keys
    SELECT 'session_keys holds the key (session_id, first_event_at) of every session and of no other',
           count(*), coalesce((array_agg(x.session_id ORDER BY x.session_id))[1:3], '{}')
    FROM (SELECT s.session_id FROM ipintel.session_summaries s
          WHERE NOT EXISTS (SELECT 1 FROM ipintel.session_keys k
                            WHERE k.session_id = s.session_id AND k.first_event_at = s.first_event_at)
          UNION ALL
          SELECT k.session_id FROM ipintel.session_keys k
          WHERE NOT EXISTS (SELECT 1 FROM ipintel.session_summaries s
                            WHERE s.session_id = k.session_id AND s.first_event_at = k.first_event_at)) x
    UNION ALL
    -- revisions 0064, 0084: take_snapshots finds the incomplete sessions through the keys of
    -- snapshot_queue
    SELECT 'snapshot_queue holds the key of every session whose snapshot is incomplete, its first_event_at within the key''s first_at and last_at',
           count(*), coalesce((array_agg(s.session_id ORDER BY s.session_id))[1:3], '{}')
    FROM ipintel.session_summaries s
    WHERE s.snapshot_complete_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM ipintel.snapshot_queue q
                      WHERE q.source_ip = s.source_ip AND q.created_at = s.created_at
                        AND s.first_event_at BETWEEN q.first_at AND q.last_at)
    UNION ALL
    SELECT 'snapshot_queue holds no key without an incomplete session (examples: source_ip@created_at)',
           count(*), coalesce((array_agg(x.k ORDER BY x.k))[1:3], '{}')
    FROM (SELECT host(q.source_ip) || '@' || q.created_at::text AS k
          FROM ipintel.snapshot_queue q
          WHERE NOT EXISTS (SELECT 1 FROM ipintel.session_summaries s
                            WHERE s.source_ip = q.source_ip AND s.created_at = q.created_at
                              AND s.first_event_at BETWEEN q.first_at AND q.last_at
                              AND s.snapshot_complete_at IS NULL)) x
    UNION ALL
    SELECT 'every incomplete session has the snapshot fields its snapshot_queue key says are known',
           count(*), coalesce((array_agg(s.session_id ORDER BY s.session_id))[1:3], '{}')
    FROM ipintel.session_summaries s
    JOIN ipintel.snapshot_queue q
      ON q.source_ip = s.source_ip AND q.created_at = s.created_at AND s.first_event_at BETWEEN q.first_at AND q.last_at
    WHERE s.snapshot_complete_at IS NULL
      AND q.known & ~ ipintel.snapshot_field_bits(s.snapshot_asn_source IS NOT NULL, s.snapshot_country_source IS NOT NULL,
                                                  s.snapshot_is_scanner_source IS NOT NULL,
                                                  s.snapshot_ip_type_source IS NOT NULL,
                                                  s.snapshot_is_known_attacker_source IS NOT NULL) <> 0;
END;
COMMENT ON FUNCTION ipintel.verify_sessions() IS
    'The rules of session_summaries its partitioning leaves to ipintel, each with its violations and up to three example session ids: a session_id is one row (the primary key is (session_id, first_event_at), as a partitioned table''s keys must include the partition key; merge_cowrie_events keeps session_id unique), session_keys, through which ingest finds a session by its id, holds exactly the sessions'' keys, and snapshot_queue, through which take_snapshots finds the incomplete sessions, holds exactly their keys (source_ip, created_at, with bounds on first_event_at), each knowing no field one of its sessions lacks. violations = 0: sound.';


------------------------------------------------------------------------------------------
-- Refresh on demand: the IPs of some ASNs or countries (ipintel enrich --asn / --country)
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.ips_in(p_asns bigint[], p_countries text[])
    RETURNS SETOF inet
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT i.ip FROM ipintel.ip_inventory i WHERE i.current_asn = ANY (p_asns)
    UNION
    SELECT i.ip FROM ipintel.ip_inventory i WHERE i.geo_country = ANY (p_countries)
    ORDER BY 1;
END;
COMMENT ON FUNCTION ipintel.ips_in(bigint[], text[]) IS
    'The IPs whose current ASN is one of p_asns or whose geolocation country is one of p_countries (either may be empty): what `ipintel enrich --asn N --country CC` re-fetches.';
