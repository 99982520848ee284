-- From migrations/versions/0015_post_validate_source_keys.downgrade.sql
-- Nothing to undo: a validated constraint is dropped by 0013's downgrade.
SET LOCAL lock_timeout = '5s';
SELECT 1;
