-- From migrations/versions/0036_post_enrichment_documents_backfill.batched.sql
-- Post step of 0035, outside any transaction: the documents of the snapshots taken before 0035
-- moved out of session_summaries.snapshot_enrichment, 10,000 sessions at a time in session_id
-- order, each batch committed: the batch's distinct documents stored in enrichment_documents
-- (those not stored yet), then its sessions pointed at them (snapshot_document) and their copy
-- cleared, so the space it took is freed by the next VACUUM. The rewrite guard lets a complete
-- snapshot's document move because it stays the same document. Each batch queues its sessions'
-- days for roll_up_attribution, which runs once at the end (their rollup does not change). Stopped halfway (lock timeout,
-- Ctrl-C), the batches done stay; running it again goes on with the sessions left. Then the
-- final CHECK (a snapshot has snapshot_document) added NOT VALID, committed, for
-- 0036_post_enrichment_documents_backfill.upgrade.sql to validate in another transaction.
DO $$
DECLARE
    v_last text := '';
    v_next text;
BEGIN
    LOOP
        PERFORM set_config('lock_timeout', '5s', true);
        SELECT max(k.session_id) INTO v_next
        FROM (SELECT s.session_id FROM ipintel.session_summaries s
              WHERE s.session_id > v_last AND s.snapshot_enrichment IS NOT NULL
              ORDER BY s.session_id LIMIT 10000) k;
        EXIT WHEN v_next IS NULL;
        INSERT INTO ipintel.enrichment_documents (document, first_used_at)
        SELECT DISTINCT ON (ipintel.enrichment_digest(s.snapshot_enrichment)) s.snapshot_enrichment, s.snapshot_at
        FROM ipintel.session_summaries s
        WHERE s.session_id > v_last AND s.session_id <= v_next
          AND s.snapshot_enrichment IS NOT NULL AND s.snapshot_document IS NULL
        ORDER BY ipintel.enrichment_digest(s.snapshot_enrichment), s.snapshot_at
        ON CONFLICT (digest) DO NOTHING;
        UPDATE ipintel.session_summaries s
        SET snapshot_document = coalesce(s.snapshot_document,
                                         (SELECT d.document_id FROM ipintel.enrichment_documents d
                                          WHERE d.digest = ipintel.enrichment_digest(s.snapshot_enrichment))),
            snapshot_enrichment = NULL
        WHERE s.session_id > v_last AND s.session_id <= v_next AND s.snapshot_enrichment IS NOT NULL;
        v_last := v_next;
        COMMIT;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                   WHERE c.conrelid = 'ipintel.session_summaries'::regclass
                     AND c.conname = 'session_summaries_snapshot_is_consistent') THEN
        PERFORM set_config('lock_timeout', '5s', true);
        ALTER TABLE ipintel.session_summaries ADD CONSTRAINT session_summaries_snapshot_is_consistent CHECK (
        (snapshot_at IS NULL) = (snapshot_document IS NULL)
        AND (snapshot_complete_at IS NULL
             OR (snapshot_at IS NOT NULL AND snapshot_asn_source IS NOT NULL AND snapshot_country_source IS NOT NULL
                 AND snapshot_ip_type_source IS NOT NULL AND snapshot_is_scanner_source IS NOT NULL))) NOT VALID;
    END IF;
    COMMIT;
    -- The days the batches queued, rolled up (their rollup is what it was: no snapshot field moved).
    PERFORM ipintel.roll_up_attribution();
    COMMIT;
END;
$$;
