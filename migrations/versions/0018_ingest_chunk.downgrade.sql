-- From migrations/versions/0018_ingest_chunk.downgrade.sql: back to 0017.
-- A downgrade removes what 0018 added, by definition.
-- squawk-ignore-file ban-drop-function, ban-drop-table
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

DROP FUNCTION ipintel.ingest_chunk(bigint, bigint, bigint, text, integer, text, bigint, bigint, boolean, bigint, bigint);
DROP TABLE ipintel_staging.cowrie_rejects;
