-- From migrations/versions/0031_post_ip_classes_backfill.upgrade.sql
-- After the backfill (.batched.sql): the CHECK 0030 added NOT VALID, validated. SHARE UPDATE
-- EXCLUSIVE on ip_inventory while it scans it (reads and writes go on).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '0';

ALTER TABLE ipintel.ip_inventory VALIDATE CONSTRAINT ip_inventory_ip_class_basis_is_object;
