-- From migrations/versions/0017_post_enrichment_state_backfill.upgrade.sql
-- Post step of 0016 in a transaction of its own, rows only (no DDL lock is held): the answers'
-- fetch times and builds move from the documents into enrichment_state, then the documents and
-- asn_inventory.sources keep their facts only.
-- For DBAs: the UPDATE rewrites every ip_inventory row that has a document, once (the last such
-- rewrite: from now on a refresh writes a row only when its facts change). On a large table it
-- takes minutes, hence no statement_timeout; ingest and enrich of those rows wait for it.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '0';

-- When the facts last changed is not known from before 0016: by the answer's fetch time at the
-- latest. Every merge wrote a fetched_at; a document without one counts as fetched when its row
-- was last updated. A merge that ran after 0016 has already recorded its answers.
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at)
SELECT i.ip, d.source, f.fetched_at, (d.answer ->> 'build_epoch')::bigint, f.fetched_at
FROM ipintel.ip_inventory i
CROSS JOIN LATERAL jsonb_each(i.enrichment) AS d(source, answer)
JOIN ipintel.enrichment_policy p ON p.source = d.source
CROSS JOIN LATERAL (SELECT coalesce((d.answer ->> 'fetched_at')::timestamptz, i.updated_at) AS fetched_at) f
ORDER BY i.ip, d.source
ON CONFLICT (ip, source) DO NOTHING;

-- Facts only: fetched_at, and the build epochs MaxMind answers carried (at the top and in
-- location_db / asn_db), are state now. ip_inventory before asn_inventory: the lock order of
-- every writer (ipintel.lock_for_merge).
UPDATE ipintel.ip_inventory i
SET enrichment = s.facts
FROM (
    SELECT i2.ip,
           jsonb_object_agg(d.source, CASE WHEN jsonb_typeof(d.answer) = 'object'
                                           THEN ((d.answer - 'fetched_at' - 'build_epoch')
                                                 #- '{location_db,build_epoch}') #- '{asn_db,build_epoch}'
                                           ELSE d.answer END) AS facts
    FROM ipintel.ip_inventory i2
    CROSS JOIN LATERAL jsonb_each(i2.enrichment) AS d(source, answer)
    GROUP BY i2.ip
) s
WHERE s.ip = i.ip AND s.facts <> i.enrichment;

UPDATE ipintel.asn_inventory a
SET sources = s.facts
FROM (
    SELECT a2.asn,
           jsonb_object_agg(d.source, CASE WHEN jsonb_typeof(d.facts) = 'object' THEN d.facts - 'fetched_at'
                                           ELSE d.facts END) AS facts
    FROM ipintel.asn_inventory a2
    CROSS JOIN LATERAL jsonb_each(a2.sources) AS d(source, facts)
    GROUP BY a2.asn
) s
WHERE s.asn = a.asn AND s.facts <> a.sources;
