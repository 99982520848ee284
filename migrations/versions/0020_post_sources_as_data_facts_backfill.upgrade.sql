-- From migrations/versions/0020_post_sources_as_data_facts_backfill.upgrade.sql
-- Post step of 0019, run when the loader is stopped (or at a quiet hour): it writes every answer's
-- state row and every answered ip_inventory row once. Row locks only, then SHARE UPDATE
-- EXCLUSIVE for the validations (reads and writes go on).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '0';

-- 1. The typed facts of every stored answer, by its source's facts function.
DO $$
DECLARE
    v_policy record;
BEGIN
    FOR v_policy IN SELECT p.source, p.facts_function::regproc AS facts_function FROM ipintel.enrichment_policy p LOOP
        EXECUTE format($sql$
            UPDATE ipintel.enrichment_state e
            SET asn = f.asn, asn_observed = coalesce(f.asn_observed, false), country = f.country,
                is_scanner = f.is_scanner, is_riot = f.is_riot, ip_type = f.ip_type
            FROM ipintel.ip_inventory i
            CROSS JOIN LATERAL %s(i.enrichment -> $1) f
            WHERE e.ip = i.ip AND e.source = $1 AND i.enrichment ? $1
            $sql$, v_policy.facts_function) USING v_policy.source;
    END LOOP;
END;
$$;

-- 2. AS names sit under one key for every source (as_name_rank reads sources -> source ->> 'as_name').
UPDATE ipintel.asn_inventory
SET sources = jsonb_set(sources, '{maxmind}', (sources -> 'maxmind') - 'as_org'
                                              || jsonb_build_object('as_name', sources #>> '{maxmind,as_org}'))
WHERE sources -> 'maxmind' ? 'as_org';

-- 3. ip_inventory's resolved columns and their sources. current_asn keeps its value (its
-- history is already recorded); it gets its source where the resolution agrees.
UPDATE ipintel.ip_inventory i
SET current_asn_source = CASE WHEN f.asn_source IS NOT NULL AND f.asn IS NOT DISTINCT FROM i.current_asn
                              THEN f.asn_source END,
    geo_country = coalesce(f.country, 'XX'),
    geo_country_source = f.country_source,
    is_scanner = f.is_scanner,
    is_scanner_source = f.is_scanner_source,
    is_riot = f.is_riot,
    ip_type = CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(f.ip_type, 'unknown') END,
    ip_type_source = CASE WHEN NOT i.is_bogon THEN f.ip_type_source END
FROM ipintel.ip_inventory x
CROSS JOIN LATERAL ipintel.resolved_facts(x.ip) f
WHERE x.ip = i.ip AND x.enrichment <> '{}'::jsonb;

-- 4. The keys added NOT VALID by 0019.
ALTER TABLE ipintel.ip_inventory VALIDATE CONSTRAINT ip_inventory_current_asn_source_fkey;
ALTER TABLE ipintel.ip_inventory VALIDATE CONSTRAINT ip_inventory_geo_country_source_fkey;
ALTER TABLE ipintel.ip_inventory VALIDATE CONSTRAINT ip_inventory_is_scanner_source_fkey;
ALTER TABLE ipintel.ip_inventory VALIDATE CONSTRAINT ip_inventory_ip_type_source_fkey;
