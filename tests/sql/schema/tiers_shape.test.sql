-- The public interface analysts and later code rely on: tables, keys, columns and comments.
BEGIN;
SELECT plan(35);

SELECT has_schema('ipintel');
SELECT has_schema('ipintel_staging');
SELECT has_table('ipintel', 'asn_inventory', 'tier 1 exists');
SELECT has_table('ipintel', 'ip_inventory', 'tier 2 exists');
SELECT has_table('ipintel', 'session_summaries', 'tier 3 exists');
SELECT has_table('ipintel', 'ip_asn_history', 'history exists');

SELECT col_is_pk('ipintel', 'asn_inventory', 'asn', 'asn_inventory keyed by asn');
SELECT col_is_pk('ipintel', 'ip_inventory', 'ip', 'ip_inventory keyed by ip');
-- Partitioned by month of first_event_at: the key must include it (verify_sessions checks session_id alone).
SELECT col_is_pk('ipintel', 'session_summaries', ARRAY['session_id', 'first_event_at'], 'session_summaries keyed by session_id and its partition key');
SELECT col_type_is('ipintel', 'asn_inventory', 'asn', 'bigint', 'asn is bigint (32-bit ASNs)');
SELECT col_type_is('ipintel', 'ip_inventory', 'ip', 'inet', 'ip is inet');
SELECT col_type_is('ipintel', 'ip_inventory', 'enrichment', 'jsonb', 'enrichment is jsonb');
SELECT col_type_is('ipintel', 'ip_asn_history', 'valid', 'tstzrange', 'history validity is a tstzrange');

SELECT columns_are('ipintel', 'session_summaries', ARRAY[
    'session_id', 'sensor', 'first_event_at', 'last_event_at', 'protocol', 'source_ip', 'src_port',
    'dst_ip', 'dst_port', 'duration_seconds', 'client_version', 'hassh', 'login_attempts',
    'login_successes', 'command_count', 'download_count', 'event_count', 'snapshot_asn',
    'snapshot_country', 'snapshot_ip_type', 'snapshot_is_scanner',
    'snapshot_at', 'created_at', 'updated_at', 'snapshot_asn_source', 'snapshot_country_source',
    'snapshot_ip_type_source', 'snapshot_is_scanner_source', 'snapshot_complete_at', 'snapshot_is_known_attacker',
    'snapshot_threatfeeds', 'snapshot_is_known_attacker_source',
    'snapshot_ip_provider', 'snapshot_document'], 'session_summaries has exactly its columns');

SELECT fk_ok('ipintel', 'ip_inventory', 'current_asn', 'ipintel', 'asn_inventory', 'asn');
SELECT fk_ok('ipintel', 'session_summaries', 'source_ip', 'ipintel', 'ip_inventory', 'ip');
-- ip_asn_history's references and ip_inventory's *_source have no per-row check since 0026
-- (verify_integrity checks them set-based): no key there.
SELECT is((SELECT count(*)::int FROM pg_constraint
           WHERE conrelid IN ('ipintel.ip_asn_history'::regclass, 'ipintel.ip_inventory'::regclass,
                              'ipintel.enrichment_state'::regclass)
             AND contype = 'f' AND conname <> 'ip_inventory_current_asn_fkey'),
          0, 'no key on the merge path''s per-IP columns besides the tiers'' own');
SELECT has_function('ipintel', 'verify_integrity', 'verify_integrity checks what the keys would');

-- Every foreign key column is indexed: deletes and joins on the parent must not scan the child.
SELECT has_index('ipintel', 'ip_inventory', 'ip_inventory_current_asn_idx', ARRAY['current_asn']);
SELECT has_index('ipintel', 'session_summaries', 'session_summaries_source_ip_idx', ARRAY['source_ip']);
SELECT has_index('ipintel', 'ip_asn_history', 'ip_asn_history_asn_idx', ARRAY['asn']);
SELECT has_index('ipintel', 'ip_asn_history', 'ip_asn_history_ip_idx', ARRAY['ip']);
SELECT index_is_type('ipintel', 'session_summaries', 'session_summaries_first_event_at_brin_idx', 'brin');
-- Lookups by ip go through btrees only: GiST scans on ip lost live rows (issue 9, revision 0010).
SELECT index_is_type('ipintel', 'ip_inventory', 'ip_inventory_pkey', 'btree');
SELECT hasnt_index('ipintel', 'ip_inventory', 'ip_inventory_ip_gist_idx', 'no GiST index on ip_inventory.ip');

SELECT is(
    (SELECT array_agg(attname ORDER BY attname) FROM pg_attribute
     WHERE attrelid = 'ipintel.ip_inventory'::regclass AND attgenerated = 's'),
    ARRAY['ip_family', 'is_bogon']::name[],
    'ip_inventory generated columns are STORED and read only the address');

-- The facts the sources give are resolved columns, each naming the registered source it came from.
-- The classes are rows (ip_types: precedence, TTL); the range lists name theirs. ip_inventory.ip_type
-- has no key (written by every merge; verify_integrity checks it, as the *_source columns).
SELECT fk_ok('ipintel', 'range_lists', 'ip_type', 'ipintel', 'ip_types', 'ip_type');
SELECT has_trigger('ipintel', 'ip_inventory', 'ip_inventory_bogon_is_typed', 'a trigger types bogons');

SELECT is(
    (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'ipintel' AND c.relkind IN ('r', 'p') AND obj_description(c.oid, 'pg_class') IS NULL),
    NULL, 'every ipintel table has a COMMENT');

SELECT is(
    (SELECT array_agg(c.relname || '.' || a.attname ORDER BY 1) FROM pg_attribute a
     JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     -- a partition's columns are its table's (analysts query session_summaries, not its months)
     WHERE n.nspname = 'ipintel' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname NOT IN ('created_at', 'updated_at', 'history_id', 'recorded_at')
       AND col_description(c.oid, a.attnum) IS NULL),
    NULL, 'every column an analyst queries has a COMMENT');

SELECT volatility_is('ipintel', 'is_bogon', ARRAY['inet'], 'immutable', 'is_bogon is IMMUTABLE');
SELECT volatility_is('ipintel', 'normalize_ip', ARRAY['inet'], 'immutable', 'normalize_ip is IMMUTABLE');

-- A generation expression may call a user function, but that function may not call another.
SELECT is(
    (SELECT count(*)::int FROM pg_depend d
     JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
     JOIN pg_proc q ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = q.oid
     JOIN pg_namespace n ON n.oid = q.pronamespace
     WHERE p.proname IN ('is_bogon', 'normalize_ip') AND n.nspname = 'ipintel'),
    0, 'address functions call no other user function');

SELECT is(
    (SELECT array_agg(conname ORDER BY conname) FROM pg_constraint
     WHERE connamespace = 'ipintel'::regnamespace AND contype = 'f' AND NOT convalidated),
    NULL, 'all foreign keys are validated');

SELECT is(
    (SELECT contype FROM pg_constraint WHERE conname = 'ip_asn_history_closed_ranges_do_not_overlap'),
    'x'::"char", 'history ranges are guarded by an exclusion constraint (closed ranges; open ones by statement triggers)');

SELECT * FROM finish();
ROLLBACK;
