-- From migrations/versions/0020_post_sources_as_data_facts_backfill.downgrade.sql
-- 0018's merges read MaxMind's AS name under as_org. The columns 0020 filled go with 0019's downgrade.
SET LOCAL lock_timeout = '5s';
UPDATE ipintel.asn_inventory
SET sources = jsonb_set(sources, '{maxmind}', (sources -> 'maxmind') - 'as_name'
                                              || jsonb_build_object('as_org', sources #>> '{maxmind,as_name}'))
WHERE sources -> 'maxmind' ? 'as_name';
