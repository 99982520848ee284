-- From migrations/versions/0012_post_snapshot_sources_backfill.downgrade.sql
-- Nothing to undo: 0009's downgrade drops the columns this filled, and the deleted ranges were
-- never observations.
SET LOCAL lock_timeout = '5s';
SELECT 1;
