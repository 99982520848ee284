-- From migrations/versions/0031_post_ip_classes_backfill.downgrade.sql: back to 0030. Nothing to
-- undo: validation needs no undoing, and the classes written stay (0030's downgrade drops the
-- columns and turns the classes 0029 does not know back into what the sources say).
SET LOCAL lock_timeout = '5s';
