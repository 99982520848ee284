-- From migrations/versions/0082_routing_lookups_by_spgist.downgrade.sql (0081's sql/072_routing.sql, sql/095_analyst_views.sql)
-- routing_asns and ip_timeline probe the GiST on prefix_range again, which
-- 0082_routing_lookups_by_spgist.downgrade-concurrently.sql built before this transaction;
-- 0082_routing_lookups_by_spgist.downgrade-after.sql then drops the SP-GiST index.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

COMMENT ON COLUMN ipintel.prefix_origins.prefix_range IS 'Generated: the prefix as an ip4r iprange, for the GiST longest-match lookups.';

CREATE OR REPLACE FUNCTION ipintel.routing_asns(p_ips inet[], p_days date[])
    RETURNS TABLE (ip inet, day date, asn bigint, dataset text, taken_on date, prefix cidr)
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    WITH pairs AS (
        SELECT DISTINCT q.ip, q.day FROM unnest(p_ips, p_days) AS q(ip, day)
        -- a one-time filter: with no snapshot loaded at all the pairs are not even gathered
        WHERE EXISTS (SELECT 1 FROM ipintel.routing_snapshots)
    ), snapshots AS MATERIALIZED (  -- once per day and dataset, not once per pair
        SELECT x.day, d.dataset, d.rank, ipintel.routing_snapshot_on(d.dataset, x.day) AS taken_on
        FROM (SELECT DISTINCT pairs.day FROM pairs) x
        CROSS JOIN ipintel.routing_datasets d
    )
    SELECT DISTINCT ON (q.ip, q.day) q.ip, q.day, o.asn, w.dataset, w.taken_on, o.prefix
    FROM pairs q
    JOIN snapshots w ON w.day = q.day AND w.taken_on IS NOT NULL
    CROSS JOIN LATERAL (
        SELECT p.asn, p.prefix
        FROM ipintel.prefix_origins p
        WHERE p.dataset = w.dataset
          AND p.prefix_range OPERATOR(public.>>=) public.iprange(q.ip::cidr)
          AND p.valid @> w.taken_on
        OFFSET 0  -- a fence: probe per pair, never flattened into a join of everything
    ) o
    ORDER BY q.ip, q.day, w.taken_on DESC, w.rank, masklen(o.prefix) DESC, o.asn;
END;
COMMENT ON FUNCTION ipintel.routing_asns(inet[], date[]) IS
    'Attack-time ASNs from routing history for parallel arrays of IPs and (UTC) days: per pair the longest prefix containing the IP in the latest snapshot (of any dataset) taken on or before the day and within the dataset''s max_age, with that snapshot. Pairs routing history does not cover are absent.';

CREATE OR REPLACE FUNCTION ipintel.ip_timeline(p_ip inet)
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
    WHERE o.prefix_range OPERATOR(public.>>=) public.iprange((SELECT t.ip FROM target t)::cidr)
    ORDER BY 1, 3, 4;
END;
COMMENT ON FUNCTION ipintel.ip_timeline(inet) IS
    'Everything known about one IP, in time order. kind: session (at/until: its first and last event; source, asn, country: its snapshot; detail: counts, client, snapshot class, and the routing history''s ASN at its day), asn (an ip_asn_history range: the ASN a source observed from at until until, NULL while current), answer (what a source says since at = changed_at, last confirmed detail.fetched_at, its facts and document), failure (a source could not answer: recorded at, resolved until), routing (a prefix_origins run of a prefix containing the IP: its origin AS over those days).';
