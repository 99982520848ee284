-- From migrations/versions/0031_post_ip_classes_backfill.batched.sql
-- Post step of 0030, outside any transaction: every ip_inventory row classified as of today
-- (ipintel.classify_inventory: ip_type, ip_type_source, ip_provider, ip_class_basis), 10,000 IPs
-- at a time in ip order, each batch committed. A batch locks its rows in ip order, the lock
-- order of ingest and the merges, which go on meanwhile; rows whose class does not change are
-- not written. Stopped halfway (lock timeout, Ctrl-C), the batches done stay; running it again
-- starts over and rewrites nothing that is already right.
DO $$
DECLARE
    v_last inet;
    v_batch record;
BEGIN
    LOOP
        PERFORM set_config('lock_timeout', '5s', true);
        SELECT * INTO v_batch FROM ipintel.classify_inventory(v_last, 10000);
        EXIT WHEN v_batch.last_ip IS NULL;
        v_last := v_batch.last_ip;
        COMMIT;
    END LOOP;
END;
$$;
