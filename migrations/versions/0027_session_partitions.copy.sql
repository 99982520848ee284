-- From migrations/versions/0027_session_partitions.copy.sql
-- The second of 0027's three parts: the batched copy of session_summaries into
-- session_summaries_partitioned. Run by 0027_session_partitions.py outside any transaction
-- (alembic's autocommit_block), after the first part committed: the procedure commits after each
-- batch of 10,000 sessions, so no lock lasts longer than one batch (row locks FOR SHARE on that
-- batch's rows, ROW EXCLUSIVE on the new table). Ingest and enrich may go on meanwhile; the
-- trigger of the first part repeats their changes. Stopped at any point (Ctrl-C, a failure),
-- it resumes where it was when run again, by the revision or by hand:
--     CALL ipintel.copy_sessions_to_partitions(10000);
-- Progress: SELECT * FROM ipintel.session_summaries_copy;
-- No lock_timeout for the copy (squawk's require-lock-timeout): each batch waits for the writers
-- of its own rows only, a chunk's merge at most. No statement_timeout: the copy takes as long as
-- the table.
-- squawk-ignore-file require-lock-timeout
-- First, in a transaction of its own: the old table's foreign key goes. Dropping a foreign key
-- (or, in the swap, a table that has one) takes ACCESS EXCLUSIVE on the table it references,
-- ip_inventory: here it is held for an instant, instead of from the swap's drop to its commit. The
-- key still holds meanwhile: every write to session_summaries is repeated on the partitioned table
-- by the trigger, and fails there (with the writer's) if its source IP is not in ip_inventory.
-- The old table goes at the swap, so dropping the constraint loses nothing.
SET lock_timeout = '5s';
SET statement_timeout = '1min';
-- squawk-ignore ban-drop-constraint
ALTER TABLE ipintel.session_summaries DROP CONSTRAINT IF EXISTS session_summaries_source_ip_fkey;
RESET lock_timeout;
SET statement_timeout = 0;
CALL ipintel.copy_sessions_to_partitions(10000);
RESET statement_timeout;
