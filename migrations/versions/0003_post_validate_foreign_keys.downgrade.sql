-- From migrations/versions/0003_post_validate_foreign_keys.downgrade.sql
-- Validation cannot be undone and needs no undoing: the constraints stay, validated (a
-- stronger state than 0002 alone gives). Downgrading further, 0002 drops them. This
-- statement only records the step in the server log.
SELECT 'ipintel: 0003 downgrade keeps the validated foreign keys' AS note;
