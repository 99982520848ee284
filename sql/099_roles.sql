-- From sql/099_roles.sql
-- Least privilege. Three roles, none of which can log in; give them to login roles:
--
--   ipintel_owner   owns the schemas and every object in them; `ipintel migrate` runs as it
--                   (a member of it: the migrations SET ROLE ipintel_owner).
--   ipintel_loader  what `ipintel ingest` / `ipintel enrich` / `ipintel status` need: COPY into
--                   staging, the entry points below (SECURITY DEFINER: they run as the owner
--                   with a pinned search_path), and reading the tables they report on. No DDL,
--                   no direct write to any table outside staging, not the API budget.
--   ipintel_reader  analysts: read the tiers, the views and the report functions. Nothing else.
--
-- For example:  CREATE ROLE cowrie_loader LOGIN PASSWORD '...' IN ROLE ipintel_loader;
--               CREATE ROLE analyst LOGIN PASSWORD '...' IN ROLE ipintel_reader;
-- DBAs who create the three roles themselves (e.g. without CREATEROLE for the migrating user)
-- create them NOLOGIN first; this file then only grants. The migrating user must be a member
-- of ipintel_owner (a superuser is).

DO $$
DECLARE
    v_role text;
    v_object record;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['ipintel_owner', 'ipintel_loader', 'ipintel_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
        END IF;
    END LOOP;
    IF NOT pg_catalog.pg_has_role(current_user, 'ipintel_owner', 'MEMBER') THEN
        GRANT ipintel_owner TO CURRENT_USER;
    END IF;

    -- The owner owns everything in the two schemas (and alembic's version table, which the
    -- migrations update as the owner).
    ALTER SCHEMA ipintel OWNER TO ipintel_owner;
    ALTER SCHEMA ipintel_staging OWNER TO ipintel_owner;
    FOR v_object IN
        SELECT format('ALTER %s %s OWNER TO ipintel_owner',
                      CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                      c.oid::regclass) AS ddl
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE (n.nspname IN ('ipintel', 'ipintel_staging') AND c.relkind IN ('r', 'v', 'S', 'p')
               -- a sequence owned by a column (identity, serial) follows its table
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                               WHERE d.objid = c.oid AND d.deptype IN ('i', 'a') AND c.relkind = 'S'))
           OR c.oid = pg_catalog.to_regclass('public.ipintel_alembic_version')
        UNION ALL
        SELECT format('ALTER ROUTINE %s OWNER TO ipintel_owner', p.oid::regprocedure)
        FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('ipintel', 'ipintel_staging')
    LOOP
        EXECUTE v_object.ddl;
    END LOOP;
END;
$$;

-- Nobody but the roles below: functions are executable by PUBLIC by default.
REVOKE ALL ON SCHEMA ipintel, ipintel_staging FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ipintel FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE ipintel_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
-- Tables a later revision adds are readable by analysts at once.
ALTER DEFAULT PRIVILEGES FOR ROLE ipintel_owner IN SCHEMA ipintel GRANT SELECT ON TABLES TO ipintel_reader;

-- The loader's entry points write as the owner: SECURITY DEFINER, search_path pinned to ''
-- (every one of them sets it), EXECUTE granted to the loader only.
ALTER FUNCTION ipintel.start_ingest_run() SECURITY DEFINER;
ALTER FUNCTION ipintel.interrupt_abandoned_ingest_runs() SECURITY DEFINER;
ALTER FUNCTION ipintel.ingest_chunk(bigint, bigint, bigint, text, integer, text, bigint, bigint, boolean, bigint, bigint)
    SECURITY DEFINER;
ALTER FUNCTION ipintel.finish_ingest_run(bigint, text, bigint, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.start_run(text, jsonb, text, text) SECURITY DEFINER;
ALTER FUNCTION ipintel.interrupt_abandoned_runs() SECURITY DEFINER;
ALTER FUNCTION ipintel.run_due_ips(bigint, bigint, boolean, inet[], bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.spend_budget(text, bigint, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.merge_batch(bigint, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.finish_run(bigint, text, text) SECURITY DEFINER;
ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;
ALTER FUNCTION ipintel.load_routing_snapshot(text, date, text, bigint, text) SECURITY DEFINER;
ALTER FUNCTION ipintel.load_geo_build(text, text, bigint, text, text, text, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.forget_geo_builds(text, date) SECURITY DEFINER;
ALTER FUNCTION ipintel.load_range_snapshot(text, date, text, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.classify_inventory(inet, bigint) SECURITY DEFINER;
ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;
ALTER FUNCTION ipintel.roll_up_attribution() SECURITY DEFINER;
ALTER FUNCTION ipintel.analyze_sessions_without_statistics() SECURITY DEFINER;
GRANT EXECUTE ON FUNCTION
    ipintel.start_ingest_run(),
    ipintel.interrupt_abandoned_ingest_runs(),
    ipintel.ingest_chunk(bigint, bigint, bigint, text, integer, text, bigint, bigint, boolean, bigint, bigint),
    ipintel.finish_ingest_run(bigint, text, bigint, bigint),
    ipintel.start_run(text, jsonb, text, text),
    ipintel.interrupt_abandoned_runs(),
    ipintel.run_due_ips(bigint, bigint, boolean, inet[], bigint),
    ipintel.spend_budget(text, bigint, bigint),
    ipintel.merge_batch(bigint, bigint),
    ipintel.finish_run(bigint, text, text),
    ipintel.take_snapshots(),
    ipintel.load_routing_snapshot(text, date, text, bigint, text),
    ipintel.load_geo_build(text, text, bigint, text, text, text, bigint),
    ipintel.forget_geo_builds(text, date),
    ipintel.load_range_snapshot(text, date, text, bigint),
    ipintel.classify_inventory(inet, bigint),
    ipintel.redo_snapshots(timestamptz, timestamptz, text),
    ipintel.roll_up_attribution(),
    ipintel.analyze_sessions_without_statistics()
TO ipintel_loader;

-- Staging: the loader COPYs its batches in (and nothing else does).
GRANT USAGE ON SCHEMA ipintel_staging TO ipintel_loader;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA ipintel_staging TO ipintel_loader;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA ipintel_staging TO ipintel_loader;

-- Reading: the reader reads every table and view of ipintel; the loader reads what `ipintel
-- status` and `ipintel report` show, which is the same minus the API budget (it spends it
-- through spend_budget only). Both call the read-only functions (the views use some).
GRANT USAGE ON SCHEMA ipintel TO ipintel_reader, ipintel_loader;
GRANT SELECT ON ALL TABLES IN SCHEMA ipintel TO ipintel_reader, ipintel_loader;
REVOKE SELECT ON ipintel.api_budget FROM ipintel_loader;
GRANT EXECUTE ON FUNCTION
    ipintel.is_bogon(inet),
    ipintel.normalize_ip(inet),
    ipintel.answer_is_stale(ipintel.enrichment_policy, timestamptz, interval),
    ipintel.skipped_for_known_asn(ipintel.enrichment_policy, ipintel.ip_inventory),
    ipintel.below_session_threshold(ipintel.enrichment_policy, ipintel.ip_inventory),
    ipintel.has_successful_login(inet),
    ipintel.ingest_is_running(),
    ipintel.ips_due(text, bigint, boolean, inet[], bigint),
    ipintel.inet_key(inet),
    ipintel.resolved_facts(inet),
    ipintel.resolved_facts_of(inet[]),
    ipintel.ranked_as_name(jsonb),
    ipintel.routing_snapshot_on(text, date),
    ipintel.routing_asns(inet[], date[]),
    ipintel.asn_at(inet, timestamptz),
    ipintel.geo_build_facts(inet[], date[]),
    ipintel.observed_since(inet, text),
    ipintel.range_snapshot_on(text, date),
    ipintel.as_name_looks_residential(text),
    ipintel.class_epochs(date[]),
    ipintel.ip_classes(inet[], date[], bigint[], text[]),
    ipintel.report_top_asns(timestamptz, timestamptz, bigint),
    ipintel.report_top_countries(timestamptz, timestamptz, bigint),
    ipintel.report_ip_types(timestamptz, timestamptz, bigint),
    ipintel.report_asn_moves(timestamptz, timestamptz, bigint),
    ipintel.status_last_runs(bigint),
    ipintel.status_open_failures(),
    ipintel.ip_inventory_row(inet),
    ipintel.activity_by_asn(timestamptz, timestamptz),
    ipintel.activity_by_country(timestamptz, timestamptz),
    ipintel.activity_by_day(timestamptz, timestamptz),
    ipintel.activity_by_class(timestamptz, timestamptz),
    ipintel.asn_trends(timestamptz),
    ipintel.country_trends(timestamptz),
    ipintel.ip_timeline(inet),
    ipintel.asn_sessions(bigint),
    ipintel.asn_ips(bigint),
    ipintel.asn_ips_by_day(bigint, timestamptz, timestamptz),
    ipintel.session_fingerprints(timestamptz, timestamptz),
    ipintel.campaigns(timestamptz, timestamptz),
    ipintel.campaign_ips(text, text, timestamptz, timestamptz),
    ipintel.report_sources(),
    ipintel.report_routing_snapshots(),
    ipintel.verify_counts(),
    ipintel.verify_snapshots(),
    ipintel.verify_integrity(),
    ipintel.verify_sessions(),
    ipintel.ips_in(bigint[], text[]),
    ipintel.attribution_of_days(date[]),
    ipintel.attribution_asn_of_days(date[]),
    ipintel.asn_ranking(date, date, bigint),
    ipintel.top_asns(date, date, bigint),
    ipintel.top_countries(date, date, bigint),
    ipintel.verify_attribution(),
    ipintel.enrichment_digest(jsonb),
    ipintel.snapshot_field_bits(boolean, boolean, boolean, boolean, boolean)
TO ipintel_reader, ipintel_loader;
DO $$
BEGIN
    -- The schema version check of every ipintel command (alembic's table; absent when the
    -- schema was built from sql/ without alembic).
    IF pg_catalog.to_regclass('public.ipintel_alembic_version') IS NOT NULL THEN
        GRANT SELECT ON public.ipintel_alembic_version TO ipintel_reader, ipintel_loader;
    END IF;
END;
$$;
