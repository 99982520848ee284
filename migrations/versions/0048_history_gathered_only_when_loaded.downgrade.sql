-- From migrations/versions/0048_history_gathered_only_when_loaded.downgrade.sql
-- Back to 0034's routing_asns and 0029's geo_build_facts: the pairs are gathered whether or not
-- any snapshot or build is loaded. Locks: none on any table (two functions replaced).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE OR REPLACE FUNCTION ipintel.routing_asns(p_ips inet[], p_days date[])
    RETURNS TABLE (ip inet, day date, asn bigint, dataset text, taken_on date, prefix cidr)
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    WITH pairs AS (
        SELECT DISTINCT q.ip, q.day FROM unnest(p_ips, p_days) AS q(ip, day)
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

CREATE OR REPLACE FUNCTION ipintel.geo_build_facts(p_ips inet[], p_days date[])
    RETURNS TABLE (ip inet, day date, country text, country_build text, asn bigint, asn_build text)
    LANGUAGE sql
    STABLE
BEGIN ATOMIC
    WITH pairs AS (
        SELECT DISTINCT q.ip, q.day FROM unnest(p_ips, p_days) AS q(ip, day)
    ), builds AS MATERIALIZED (  -- once per day and edition, not once per pair
        SELECT w.day, w.edition, w.source, w.built_on, w.source || ':build:' || to_char(w.built_on, 'YYYY-MM-DD') AS build
        FROM (SELECT x.day, e.edition, e.source,
                     (SELECT max(b.built_on) FROM ipintel.geo_builds b  -- one probe of its unique index
                      WHERE b.edition = e.edition AND b.built_on <= x.day AND b.built_on >= (x.day - e.max_age)::date)
                         AS built_on
              FROM (SELECT DISTINCT pairs.day FROM pairs) x
              CROSS JOIN ipintel.geo_editions e) w
        WHERE w.built_on IS NOT NULL
    ), countries AS (
        SELECT DISTINCT ON (q.ip, q.day) q.ip, q.day, g.country, w.build
        FROM pairs q
        JOIN builds w ON w.day = q.day
        JOIN ipintel.enrichment_policy p ON p.source = w.source AND p.country_rank IS NOT NULL
        JOIN ipintel.geo_countries g
          ON g.edition = w.edition AND g.network_range OPERATOR(public.>>=) public.iprange(q.ip::cidr) AND g.valid @> w.built_on
        ORDER BY q.ip, q.day, p.country_rank, w.built_on DESC, w.edition
    ), asns AS (
        SELECT DISTINCT ON (q.ip, q.day) q.ip, q.day, g.asn, w.build
        FROM pairs q
        JOIN builds w ON w.day = q.day
        JOIN ipintel.enrichment_policy p ON p.source = w.source AND p.asn_rank IS NOT NULL
        JOIN ipintel.geo_asns g
          ON g.edition = w.edition AND g.network_range OPERATOR(public.>>=) public.iprange(q.ip::cidr) AND g.valid @> w.built_on
        ORDER BY q.ip, q.day, p.asn_rank, w.built_on DESC, w.edition
    )
    SELECT coalesce(c.ip, a.ip), coalesce(c.day, a.day), c.country, c.build, a.asn, a.build
    FROM countries c
    FULL JOIN asns a ON a.ip = c.ip AND a.day = c.day;
END;
