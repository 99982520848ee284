-- From migrations/versions/0017_post_enrichment_state_backfill.downgrade.sql: back to 0016.
-- The documents carry their fetched_at (and MaxMind's build_epoch) again, where 0015's
-- functions, which 0016's downgrade restores, read them. Not restored: the build epochs inside
-- location_db / asn_db (only the newer one was kept, as build, which is what ips_due compared),
-- and fetched_at in asn_inventory.sources (nothing reads it; 0015's merges write it again).
-- Like the upgrade, it rewrites every ip_inventory row that has a document.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '0';

UPDATE ipintel.ip_inventory i
SET enrichment = i.enrichment || s.answers
FROM (
    SELECT e.ip,
           jsonb_object_agg(e.source, (i2.enrichment -> e.source)
                                      || jsonb_build_object('fetched_at', e.fetched_at)
                                      || CASE WHEN e.build IS NULL THEN '{}'::jsonb
                                              ELSE jsonb_build_object('build_epoch', e.build) END) AS answers
    FROM ipintel.enrichment_state e
    JOIN ipintel.ip_inventory i2 ON i2.ip = e.ip AND jsonb_typeof(i2.enrichment -> e.source) = 'object'
    GROUP BY e.ip
) s
WHERE s.ip = i.ip;
