-- Every PL/pgSQL function of ipintel passes plpgsql_check: no reference to a missing table or
-- column, no type mismatch, no unused variable hiding a typo (the pgstac practice).
BEGIN;
SELECT plan(2);
CREATE EXTENSION IF NOT EXISTS plpgsql_check;

SELECT cmp_ok((SELECT count(*)::int FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
               WHERE n.nspname = 'ipintel' AND l.lanname = 'plpgsql'), '>=', 8,
              'the PL/pgSQL functions are there to check');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text || ': ' || c.message
    FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    JOIN pg_language l ON l.oid = p.prolang
    -- trigger functions are checked against each table they are attached to
    -- (with their transition tables' names, for statement triggers that have them)
    LEFT JOIN LATERAL (SELECT DISTINCT t.tgrelid, t.tgoldtable, t.tgnewtable FROM pg_trigger t WHERE t.tgfoid = p.oid) t
        ON true
    CROSS JOIN LATERAL plpgsql_check_function_tb(
        p.oid,
        relid => coalesce(t.tgrelid, 0),
        oldtable => t.tgoldtable,
        newtable => t.tgnewtable,
        extra_warnings => false) c
    WHERE n.nspname = 'ipintel' AND l.lanname = 'plpgsql' AND c.level IN ('error', 'warning')
$$, 'plpgsql_check finds no error and no warning');

SELECT * FROM finish();
ROLLBACK;
