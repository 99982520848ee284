-- From migrations/versions/0021_roles.downgrade.sql: back to 0020 (everything owned by the user
-- running the downgrade, functions executable by PUBLIC again). The three roles stay: they are
-- per cluster, and other databases may use them; drop them by hand when no database does.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

ALTER FUNCTION ipintel.ingest_chunk(bigint, bigint, bigint, text, integer, text, bigint, bigint, boolean, bigint, bigint)
    SECURITY INVOKER;
ALTER FUNCTION ipintel.start_run(text, jsonb, text, text) SECURITY INVOKER;
ALTER FUNCTION ipintel.interrupt_abandoned_runs() SECURITY INVOKER;
ALTER FUNCTION ipintel.run_due_ips(bigint, bigint, boolean, inet[], bigint) SECURITY INVOKER;
ALTER FUNCTION ipintel.spend_budget(text, bigint, bigint) SECURITY INVOKER;
ALTER FUNCTION ipintel.merge_batch(bigint, bigint) SECURITY INVOKER;
ALTER FUNCTION ipintel.finish_run(bigint, text, text) SECURITY INVOKER;
ALTER FUNCTION ipintel.take_snapshots() SECURITY INVOKER;
-- squawk-ignore ban-drop-function
DROP FUNCTION ipintel.start_ingest_run();
-- squawk-ignore ban-drop-function
DROP FUNCTION ipintel.finish_ingest_run(bigint, text, bigint, bigint);
-- squawk-ignore ban-drop-function
DROP FUNCTION ipintel.interrupt_abandoned_ingest_runs();

ALTER DEFAULT PRIVILEGES FOR ROLE ipintel_owner IN SCHEMA ipintel REVOKE SELECT ON TABLES FROM ipintel_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE ipintel_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
REASSIGN OWNED BY ipintel_owner TO CURRENT_USER;
-- What remains of the three roles in this database: their privileges.
DROP OWNED BY ipintel_reader;
DROP OWNED BY ipintel_loader;
DROP OWNED BY ipintel_owner;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ipintel TO PUBLIC;
