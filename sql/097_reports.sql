-- From sql/097_reports.sql
-- What `ipintel status` and `ipintel report` show, as functions an analyst can call from psql
-- too. The report windows are half-open: p_since inclusive, p_until exclusive (a day given as
-- --until is not part of the window). p_top NULL returns every row.

------------------------------------------------------------------------------------------
-- Reports over a window of sessions (session_attribution) or ASN moves (asn_moves)
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.report_top_asns(p_since timestamptz, p_until timestamptz, p_top bigint)
    RETURNS TABLE (asn text, name text, sessions bigint, ips bigint, logins bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    -- Aggregated by ASN first, named after (one AS name lookup per ASN, not per session).
    SELECT coalesce(g.asn::text, '-'), coalesce(n.as_name, '(unknown)'), g.sessions, g.ips, g.logins
    FROM (SELECT a.asn, count(*) AS sessions, count(DISTINCT a.source_ip) AS ips,
                 sum(a.login_successes)::bigint AS logins
          FROM ipintel.session_attribution a
          WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
          GROUP BY a.asn) g
    LEFT JOIN ipintel.asn_inventory n ON n.asn = g.asn
    ORDER BY 3 DESC, 1
    LIMIT p_top;
END;
COMMENT ON FUNCTION ipintel.report_top_asns(timestamptz, timestamptz, bigint) IS
    'Networks with the most sessions that started in [p_since, p_until), attributed as of each session (session_attribution), at most p_top rows. Columns: asn (AS number, ''-'' when unknown), name (AS name, ''(unknown)'' when none), sessions, ips (distinct source IPs), logins (successful logins).';

CREATE FUNCTION ipintel.report_top_countries(p_since timestamptz, p_until timestamptz, p_top bigint)
    RETURNS TABLE (country text, sessions bigint, ips bigint, logins bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.country, count(*), count(DISTINCT a.source_ip), sum(a.login_successes)::bigint
    FROM ipintel.session_attribution a
    WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
    GROUP BY 1
    ORDER BY 2 DESC, 1
    LIMIT p_top;
END;
COMMENT ON FUNCTION ipintel.report_top_countries(timestamptz, timestamptz, bigint) IS
    'Countries with the most sessions that started in [p_since, p_until), attributed as of each session, at most p_top rows. Columns: country (ISO code; XX when no source knows it), sessions, ips (distinct source IPs), logins (successful logins).';

CREATE FUNCTION ipintel.report_ip_types(p_since timestamptz, p_until timestamptz, p_top bigint)
    RETURNS TABLE (ip_type text, greynoise_scanner text, sessions bigint, ips bigint)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT a.ip_type, coalesce(a.is_scanner::text, 'unknown'), count(*), count(DISTINCT a.source_ip)
    FROM ipintel.session_attribution a
    WHERE a.first_event_at >= p_since AND a.first_event_at < p_until
    GROUP BY 1, 2
    ORDER BY 3 DESC, 1, 2
    LIMIT p_top;
END;
COMMENT ON FUNCTION ipintel.report_ip_types(timestamptz, timestamptz, bigint) IS
    'Sessions that started in [p_since, p_until) by kind of source IP, attributed as of each session, at most p_top rows. Columns: ip_type (bogon, tor, cloud, cdn, hosting, riot, scanner, anonymizer, residential, unrouted, routed or unknown, as in ip_inventory.ip_type; see ipintel.ip_types), greynoise_scanner (true, false, or unknown when GreyNoise was never asked), sessions, ips (distinct source IPs).';

CREATE FUNCTION ipintel.report_asn_moves(p_since timestamptz, p_until timestamptz, p_top bigint)
    RETURNS TABLE (ip text, from_asn text, to_asn text, moved_at timestamptz, source text)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT host(m.ip), coalesce(m.from_asn::text, 'unrouted'), coalesce(m.to_asn::text, 'unrouted'),
           m.moved_at, m.source
    FROM ipintel.asn_moves m
    WHERE m.moved_at >= p_since AND m.moved_at < p_until
    ORDER BY 4 DESC, 1
    LIMIT p_top;
END;
COMMENT ON FUNCTION ipintel.report_asn_moves(timestamptz, timestamptz, bigint) IS
    'IPs whose origin ASN changed in [p_since, p_until), newest first, at most p_top rows (asn_moves). Columns: ip, from_asn (the AS before, ''unrouted'' when it was allocated but not announced), to_asn (the AS from moved_at on, or ''unrouted''), moved_at, source (the source that observed the new ASN).';

------------------------------------------------------------------------------------------
-- Status: recent runs and the failures still open (coverage is the view enrichment_coverage)
------------------------------------------------------------------------------------------
CREATE FUNCTION ipintel.status_last_runs(p_limit bigint)
    RETURNS TABLE (run_id bigint, source text, status text, started_at timestamptz, finished_at timestamptz,
                   requested bigint, fetched bigint, merged bigint, failed bigint, message text)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT r.run_id, r.source, r.status, r.started_at, r.finished_at, r.requested, r.fetched, r.merged, r.failed,
           r.message
    FROM ipintel.enrichment_runs r
    ORDER BY r.run_id DESC
    LIMIT p_limit;
END;
COMMENT ON FUNCTION ipintel.status_last_runs(bigint) IS
    'The p_limit most recent enrichment runs (one per source pass), newest first. Columns: run_id, source, status (running, succeeded, finished_with_failures, stopped, failed, interrupted, skipped), started_at, finished_at (NULL while running), requested (IPs due), fetched (answers received), merged (answers recorded; an unchanged answer only refreshes enrichment_state), failed (IPs recorded in enrichment_failures), message (why it stopped or failed).';

CREATE FUNCTION ipintel.status_open_failures()
    RETURNS TABLE (source text, retryable boolean, ips bigint, max_attempts bigint, next_retry timestamptz,
                   latest_error text)
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    SELECT f.source, f.retryable, count(*), max(f.attempts), min(f.retry_after),
           (array_agg(f.error ORDER BY f.recorded_at DESC))[1]
    FROM ipintel.enrichment_failures f
    WHERE f.resolved_at IS NULL
    GROUP BY 1, 2
    ORDER BY 1, 2 DESC;
END;
COMMENT ON FUNCTION ipintel.status_open_failures() IS
    'Open (unresolved) enrichment failures per source, retryable ones first. Columns: source, retryable (false: asking again cannot help, the IP is no longer due for that source), ips (IPs failing), max_attempts (most attempts of any of them), next_retry (earliest retry_after; NULL: at the next run), latest_error (the most recently recorded error text).';
