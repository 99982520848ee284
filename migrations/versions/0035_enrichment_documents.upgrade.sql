-- From migrations/versions/0035_enrichment_documents.upgrade.sql
-- Pre step of issue 15's "snapshots without copies": the enrichment document a snapshot takes is
-- stored once per distinct document (enrichment_documents) and referenced by sessions
-- (session_summaries.snapshot_document), no longer copied into every session
-- (snapshot_enrichment: ~2.3 GB of heap at 2M sessions). Instant on a populated database: a new
-- table, a nullable column without default (no rewrite), a CHECK replaced NOT VALID (no scan) and
-- functions. Sessions snapshotted before keep their copy in snapshot_enrichment until 0036 (post)
-- moves it in batches; meanwhile the CHECK, the rewrite guard and session_documents accept either.
-- Locks: ACCESS EXCLUSIVE on session_summaries for the catalog changes only (the column, the
-- constraint, the guard trigger), with lock_timeout.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

-- The enrichment documents snapshots refer to: each distinct ip_inventory.enrichment document a
-- snapshot took, stored once however many sessions took it (issue 15: copied into every session,
-- the documents were most of session_summaries' heap). jsonb's text form is canonical (keys
-- sorted, duplicates dropped, no insignificant white space), so equal documents have equal
-- digests; the digest, not the document, is the key because a document may exceed the 2.7 kB a
-- btree entry can hold.
CREATE FUNCTION ipintel.enrichment_digest(p_document jsonb)
    RETURNS bytea
    LANGUAGE sql
    IMMUTABLE
    STRICT
    PARALLEL SAFE
-- sha256 of the document's text (UTF-8): text::bytea reads backslashes as escapes, hence doubled
-- (convert_to would say the same but is only STABLE, and a generated column needs IMMUTABLE).
RETURN sha256(replace(p_document::text, '\', '\\')::bytea);
COMMENT ON FUNCTION ipintel.enrichment_digest(jsonb) IS
    'SHA-256 of a jsonb document''s canonical text: the key of ipintel.enrichment_documents (equal documents, equal digests). Find the stored copy of a document with WHERE digest = ipintel.enrichment_digest(<document>).';

CREATE TABLE ipintel.enrichment_documents (
    document_id   bigint      GENERATED ALWAYS AS IDENTITY,
    document      jsonb       NOT NULL,
    digest        bytea       NOT NULL GENERATED ALWAYS AS (ipintel.enrichment_digest(document)) STORED,
    first_used_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT enrichment_documents_pkey PRIMARY KEY (document_id),
    CONSTRAINT enrichment_documents_digest_key UNIQUE (digest)
);
COMMENT ON TABLE ipintel.enrichment_documents IS
    'Every distinct ip_inventory.enrichment document a snapshot took, stored once and shared by the sessions that took it (session_summaries.snapshot_document; the view session_documents reads it back per session). Append-only: a stored document is never changed or deleted (trigger enrichment_documents_are_immutable), so a complete snapshot''s document stays as it was. A document no session refers to any more (after redo_snapshots) stays.';
COMMENT ON COLUMN ipintel.enrichment_documents.document_id IS 'Document number: what session_summaries.snapshot_document holds.';
COMMENT ON COLUMN ipintel.enrichment_documents.document IS 'The ip_inventory.enrichment document as it was when a snapshot took it: every source''s latest answer, keyed by source.';
COMMENT ON COLUMN ipintel.enrichment_documents.digest IS 'ipintel.enrichment_digest(document), computed by PostgreSQL: unique, so each document is stored once.';
COMMENT ON COLUMN ipintel.enrichment_documents.first_used_at IS 'When a snapshot (or revision 0036''s backfill of earlier snapshots) first stored it.';
COMMENT ON CONSTRAINT enrichment_documents_digest_key ON ipintel.enrichment_documents IS
    'One row per distinct document: take_snapshots inserts only the documents whose digest is not stored yet (ON CONFLICT DO NOTHING).';

CREATE FUNCTION ipintel.refuse_document_change()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    RAISE EXCEPTION 'enrichment document %: a stored document is never changed or deleted', OLD.document_id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
COMMENT ON FUNCTION ipintel.refuse_document_change() IS
    'Trigger function: refuses every UPDATE and DELETE of ipintel.enrichment_documents (sessions refer to its rows without a per-row foreign key; verify_snapshots checks the references).';
CREATE TRIGGER enrichment_documents_are_immutable
    BEFORE UPDATE OR DELETE ON ipintel.enrichment_documents
    FOR EACH ROW EXECUTE FUNCTION ipintel.refuse_document_change();
COMMENT ON TRIGGER enrichment_documents_are_immutable ON ipintel.enrichment_documents IS
    'A stored document is never changed or deleted: the snapshots that refer to it stay as they were taken.';

ALTER TABLE ipintel.session_summaries ADD COLUMN snapshot_document bigint;
COMMENT ON COLUMN ipintel.session_summaries.snapshot_document IS
    'Snapshot: the full ip_inventory.enrichment document as it was when a snapshot field was last filled, stored once in ipintel.enrichment_documents (this is its document_id) and shared by every session that took the same document; the view ipintel.session_documents reads it back (snapshot_enrichment). Set exactly when snapshot_at is (CHECK session_summaries_snapshot_is_consistent). No per-row foreign key: take_snapshots writes only ids it has just found or stored in the same statement, and stored documents are never deleted (enrichment_documents_are_immutable); ipintel.verify_snapshots checks every reference in one pass. Before revision 0036: snapshot_enrichment, a copy of the document in every session.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_enrichment IS
    'Before revision 0035: the full ip_inventory.enrichment document as it was when a snapshot field was last filled, copied into every session. Snapshots since take snapshot_document (enrichment_documents) instead; revision 0036 moves these copies there and drops this column.';

-- Until 0036: a snapshot has its document in either column. NOT VALID: the rows there satisfy it
-- (the CHECK it replaces asked for snapshot_enrichment), and 0036 replaces it in turn.
-- squawk-ignore ban-drop-constraint
ALTER TABLE ipintel.session_summaries DROP CONSTRAINT session_summaries_snapshot_is_consistent;
ALTER TABLE ipintel.session_summaries ADD CONSTRAINT session_summaries_snapshot_is_consistent_until_0036 CHECK (
        (snapshot_at IS NULL) = (snapshot_enrichment IS NULL AND snapshot_document IS NULL)
        AND (snapshot_complete_at IS NULL
             OR (snapshot_at IS NOT NULL AND snapshot_asn_source IS NOT NULL AND snapshot_country_source IS NOT NULL
                 AND snapshot_ip_type_source IS NOT NULL AND snapshot_is_scanner_source IS NOT NULL))) NOT VALID;

-- The stored document of each IP's enrichment as it is now, for the snapshots take_snapshots is
-- about to write: the documents not stored yet are stored first, each once. A function of an
-- array, as ip_classes is, so that take_snapshots joins its result by hash: inline CTEs of the
-- sessions to take and of their documents, estimated at a few rows each, were joined by a nested
-- loop, quadratic (20,000 sessions of 10,000 IPs: 200M comparisons, 60 s).
CREATE FUNCTION ipintel.snapshot_documents(p_ips inet[])
    RETURNS TABLE (ip inet, document_id bigint)
    LANGUAGE plpgsql
    ROWS 100000
    SET search_path = ''
    -- planned with the array's real length each call (a generic plan guesses 10 elements)
    SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
    WITH documents AS MATERIALIZED (
        -- once per IP (not per session), with its digest
        SELECT i.ip, i.enrichment, ipintel.enrichment_digest(i.enrichment) AS digest
        FROM ipintel.ip_inventory i
        WHERE i.ip = ANY (p_ips)
    ), stored AS (
        -- only the documents not stored yet, each once
        INSERT INTO ipintel.enrichment_documents (document)
        SELECT DISTINCT ON (d.digest) d.enrichment
        FROM documents d
        WHERE NOT EXISTS (SELECT 1 FROM ipintel.enrichment_documents e WHERE e.digest = d.digest)
        ORDER BY d.digest
        ON CONFLICT (digest) DO NOTHING
        RETURNING enrichment_documents.document_id, enrichment_documents.digest
    )
    -- A document another run is storing right now is neither visible here nor inserted (the
    -- insert waited for that run and did nothing): its IP is left out, and take_snapshots leaves
    -- its sessions for the next run, as a session locked by ingest is left.
    SELECT d.ip, coalesce(e.document_id, n.document_id)
    FROM documents d
    LEFT JOIN ipintel.enrichment_documents e ON e.digest = d.digest
    LEFT JOIN stored n ON n.digest = d.digest
    WHERE e.document_id IS NOT NULL OR n.document_id IS NOT NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.snapshot_documents(inet[]) IS
    'For take_snapshots: stores the enrichment documents of the IPs p_ips that are not stored yet (each distinct document once), and returns each IP with the document_id of its document as it is now. An IP whose document another transaction is storing at this moment is left out (taken by the next run).';

CREATE OR REPLACE FUNCTION ipintel.take_snapshots()
    RETURNS bigint
    LANGUAGE plpgsql
    -- One big set-based statement: compiling it (JIT) costs more than it saves.
    SET jit = off
    SET search_path = ''
AS $$
DECLARE
    v_changed bigint;
    v_ips inet[];
    v_days date[];
BEGIN
    -- Routing history and the dated geolocation builds are asked only about sessions whose ASN
    -- or country is still unknown, once per IP and day.
    SELECT array_agg(x.ip), array_agg(x.day) INTO v_ips, v_days
    FROM (SELECT DISTINCT s.source_ip AS ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day
          FROM ipintel.session_summaries s
          WHERE s.snapshot_complete_at IS NULL
            AND (s.snapshot_asn_source IS NULL OR s.snapshot_country_source IS NULL)) x;

    WITH todo AS (
        SELECT s.session_id, s.source_ip, (s.first_event_at AT TIME ZONE 'UTC')::date AS day,
               s.snapshot_ip_type_source IS NULL AS ip_type_unknown, r.*,
               -- the ASN: routing history at the session's day, else ip_asn_history at its time,
               -- else a dated geolocation build (g), else the current ASN; its source says which
               -- (routing:<dataset>:<snapshot day>, <source>:history, <source>:build:<day>,
               -- <source>:current)
               CASE WHEN rt.asn IS NOT NULL THEN rt.asn WHEN h.ip IS NOT NULL THEN h.asn
                    WHEN g.asn_from_build THEN gb.asn ELSE i.current_asn END AS asn,
               CASE WHEN i.is_bogon THEN 'bogon'
                    WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || rt.taken_on::text
                    WHEN h.ip IS NOT NULL THEN h.source || ':history'
                    WHEN g.asn_from_build THEN gb.asn_build
                    ELSE coalesce(i.current_asn_source || ':current', 'none') END AS asn_source,
               -- the country: a dated geolocation build (g), else the current one
               CASE WHEN g.country_from_build THEN gb.country ELSE i.geo_country END AS country,
               CASE WHEN i.is_bogon THEN 'bogon' WHEN g.country_from_build THEN gb.country_build
                    ELSE coalesce(i.geo_country_source, 'none') END AS country_source,
               i.is_scanner,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_scanner_source, 'none') END AS is_scanner_source,
               -- the registered source of that ASN (for the classes resting on it), or its routing
               -- snapshot or geolocation build
               CASE WHEN rt.asn IS NOT NULL THEN 'routing:' || rt.dataset || ':' || rt.taken_on::text
                    WHEN h.ip IS NOT NULL THEN h.source WHEN g.asn_from_build THEN gb.asn_build
                    ELSE i.current_asn_source END AS class_asn_source,
               -- known attacker and threat feeds: one field, filled together from one source (0028)
               i.is_known_attacker, i.threatfeeds,
               CASE WHEN i.is_bogon THEN 'bogon' ELSE coalesce(i.is_known_attacker_source, 'none') END
                   AS known_attacker_source
        FROM ipintel.session_summaries s
        JOIN ipintel.ip_inventory i ON i.ip = s.source_ip
        LEFT JOIN ipintel.snapshot_waits w ON w.session_id = s.session_id
        LEFT JOIN ipintel.enrichment_policy ka ON ka.source = i.current_asn_source
        LEFT JOIN ipintel.enrichment_policy kc ON kc.source = i.geo_country_source
        LEFT JOIN ipintel.enrichment_policy ks ON ks.source = i.is_scanner_source
        LEFT JOIN ipintel.enrichment_policy kt ON kt.source = i.ip_type_source
        LEFT JOIN ipintel.enrichment_policy kk ON kk.source = i.is_known_attacker_source
        LEFT JOIN ipintel.ip_asn_history h ON h.ip = s.source_ip AND h.valid @> s.first_event_at
        LEFT JOIN ipintel.routing_asns(v_ips, v_days) rt
               ON rt.ip = s.source_ip AND rt.day = (s.first_event_at AT TIME ZONE 'UTC')::date
        LEFT JOIN ipintel.geo_build_facts(v_ips, v_days) gb
               ON gb.ip = s.source_ip AND gb.day = (s.first_event_at AT TIME ZONE 'UTC')::date
        CROSS JOIN LATERAL (
            -- A dated build gives a field only for a session before ipintel's own observation of
            -- the IP's current value (observed_since: the enrichment_state row is read only where
            -- a build has a value), or when no source gives one.
            SELECT CASE WHEN i.is_bogon OR gb.country IS NULL THEN false
                        WHEN i.geo_country_source IS NULL THEN true
                        ELSE gb.day < coalesce(ipintel.observed_since(i.ip, i.geo_country_source), 'infinity') END
                       AS country_from_build,
                   CASE WHEN i.is_bogon OR gb.asn_build IS NULL THEN false
                        WHEN i.current_asn_source IS NULL THEN true
                        ELSE gb.day < coalesce(ipintel.observed_since(i.ip, i.current_asn_source), 'infinity') END
                       AS asn_from_build) g
        CROSS JOIN LATERAL (
            -- ready: no awaited source of the field, or the value's source is ranked before them
            SELECT w.session_id IS NULL AS all_ready,
                   -- routing history at the session's day needs no source
                   rt.asn IS NOT NULL OR w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false)
                       AS asn_ready,
                   w.country_wait_rank IS NULL OR coalesce(kc.country_rank < w.country_wait_rank, false)
                       AS country_ready,
                   w.is_scanner_wait_rank IS NULL OR coalesce(ks.is_scanner_rank < w.is_scanner_wait_rank, false)
                       AS scanner_ready,
                   -- ip_type also needs the ASN (an IP no source classified is routed once it has one)
                   (rt.asn IS NOT NULL OR w.asn_wait_rank IS NULL OR coalesce(ka.asn_rank < w.asn_wait_rank, false))
                   AND (w.ip_type_wait_rank IS NULL OR coalesce(kt.ip_type_rank < w.ip_type_wait_rank, false))
                       AS ip_type_ready,
                   w.is_known_attacker_wait_rank IS NULL
                   OR coalesce(kk.is_known_attacker_rank < w.is_known_attacker_wait_rank, false)
                       AS known_attacker_ready) r
        WHERE s.snapshot_complete_at IS NULL
          AND (r.all_ready
               OR (r.asn_ready AND s.snapshot_asn_source IS NULL)
               OR (r.country_ready AND s.snapshot_country_source IS NULL)
               OR (r.scanner_ready AND s.snapshot_is_scanner_source IS NULL)
               OR (r.ip_type_ready AND s.snapshot_ip_type_source IS NULL)
               OR (r.known_attacker_ready AND s.snapshot_is_known_attacker_source IS NULL))
        -- A session an ingest chunk is updating right now is left for the next run: snapshots
        -- never wait for ingest, so the two can never deadlock.
        FOR NO KEY UPDATE OF s SKIP LOCKED
    ), classes AS MATERIALIZED (
        -- ip_type and ip_provider as of the session's day (issue 12): the range lists of that day
        -- and the snapshot's ASN, weighed with what the sources said (ip_classes), for the
        -- sessions whose ip_type is filled now. One call for them all.
        SELECT c.*
        FROM ipintel.ip_classes(
            ARRAY(SELECT t.source_ip FROM todo t WHERE t.ip_type_ready AND t.ip_type_unknown ORDER BY t.session_id),
            ARRAY(SELECT t.day FROM todo t WHERE t.ip_type_ready AND t.ip_type_unknown ORDER BY t.session_id),
            ARRAY(SELECT t.asn FROM todo t WHERE t.ip_type_ready AND t.ip_type_unknown ORDER BY t.session_id),
            ARRAY(SELECT t.class_asn_source FROM todo t WHERE t.ip_type_ready AND t.ip_type_unknown
                  ORDER BY t.session_id)) c
    ), document_ids AS MATERIALIZED (
        -- Each IP's document as it is now, stored once (snapshot_documents: joined by hash).
        SELECT x.ip, x.document_id
        FROM ipintel.snapshot_documents(ARRAY(SELECT DISTINCT t.source_ip FROM todo t)) x
    ), filled AS (
        UPDATE ipintel.session_summaries s
        SET snapshot_asn = CASE WHEN s.snapshot_asn_source IS NULL AND t.asn_ready THEN t.asn ELSE s.snapshot_asn END,
            snapshot_asn_source = CASE WHEN s.snapshot_asn_source IS NULL AND t.asn_ready THEN t.asn_source
                                       ELSE s.snapshot_asn_source END,
            snapshot_country = CASE WHEN s.snapshot_country_source IS NULL AND t.country_ready THEN t.country
                                    ELSE s.snapshot_country END,
            snapshot_country_source = CASE WHEN s.snapshot_country_source IS NULL AND t.country_ready THEN t.country_source
                                           ELSE s.snapshot_country_source END,
            snapshot_is_scanner = CASE WHEN s.snapshot_is_scanner_source IS NULL AND t.scanner_ready THEN t.is_scanner
                                       ELSE s.snapshot_is_scanner END,
            snapshot_is_scanner_source = CASE WHEN s.snapshot_is_scanner_source IS NULL AND t.scanner_ready
                                              THEN t.is_scanner_source ELSE s.snapshot_is_scanner_source END,
            snapshot_ip_type = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN c.ip_type
                                    ELSE s.snapshot_ip_type END,
            -- list:<list>:<day> for a class from a range or ASN list; else the source that said it
            -- (for routed and residential: the ASN's), bogon, none
            snapshot_ip_type_source = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready
                                           THEN CASE WHEN c.ip_class_basis ? 'list'
                                                     THEN 'list:' || (c.ip_class_basis ->> 'list') || ':'
                                                          || (c.ip_class_basis ->> 'snapshot')
                                                     WHEN c.ip_type = 'bogon' THEN 'bogon'
                                                     ELSE coalesce(c.ip_type_source, 'none') END
                                           ELSE s.snapshot_ip_type_source END,
            snapshot_is_known_attacker = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                              THEN t.is_known_attacker ELSE s.snapshot_is_known_attacker END,
            snapshot_threatfeeds = CASE WHEN s.snapshot_is_known_attacker_source IS NULL AND t.known_attacker_ready
                                        THEN t.threatfeeds ELSE s.snapshot_threatfeeds END,
            snapshot_is_known_attacker_source = CASE WHEN s.snapshot_is_known_attacker_source IS NULL
                                                          AND t.known_attacker_ready
                                                     THEN t.known_attacker_source
                                                     ELSE s.snapshot_is_known_attacker_source END,
            snapshot_ip_provider = CASE WHEN s.snapshot_ip_type_source IS NULL AND t.ip_type_ready THEN c.ip_provider
                                        ELSE s.snapshot_ip_provider END,
            snapshot_document = x.document_id,
            snapshot_at = coalesce(s.snapshot_at, now()),
            snapshot_complete_at = CASE WHEN t.all_ready THEN now() END,
            updated_at = now()
        FROM todo t
        JOIN document_ids x ON x.ip = t.source_ip
        LEFT JOIN classes c ON c.ip = t.source_ip AND c.day = t.day AND coalesce(c.asn, -1) = coalesce(t.asn, -1)
        WHERE s.session_id = t.session_id
        RETURNING 1)
    SELECT count(*) INTO v_changed FROM filled;
    RETURN v_changed;
END;
$$;
COMMENT ON FUNCTION ipintel.take_snapshots() IS
    'Fills the unknown snapshot_* fields of incomplete sessions that no better-ranked source is still awaited for (see ipintel.snapshot_waits), and marks a snapshot complete once no source is awaited. Never changes a known field. The IP''s enrichment document as it is now goes to snapshot_document: stored in enrichment_documents only when no session took the same document before (once per distinct document, not per session). The ASN and the class (snapshot_ip_type, snapshot_ip_provider: ip_classes) are as of the session''s day. Linear in the incomplete sessions and their IPs. Returns the sessions changed.';
-- CREATE OR REPLACE resets a function's attributes: the loader's entry points stay SECURITY DEFINER.
ALTER FUNCTION ipintel.take_snapshots() SECURITY DEFINER;
CREATE OR REPLACE FUNCTION ipintel.protect_snapshot()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    -- Inside redo_snapshots (which records itself in snapshot_redos first): allowed.
    IF EXISTS (SELECT 1 FROM ipintel.snapshot_redos r
               WHERE r.redo_id::text = current_setting('ipintel.snapshot_redo', true) AND r.finished_at IS NULL) THEN
        RETURN NEW;
    END IF;
    IF (OLD.snapshot_asn_source IS NOT NULL
        AND (NEW.snapshot_asn, NEW.snapshot_asn_source) IS DISTINCT FROM (OLD.snapshot_asn, OLD.snapshot_asn_source))
       OR (OLD.snapshot_country_source IS NOT NULL
           AND (NEW.snapshot_country, NEW.snapshot_country_source)
               IS DISTINCT FROM (OLD.snapshot_country, OLD.snapshot_country_source))
       OR (OLD.snapshot_ip_type_source IS NOT NULL
           AND (NEW.snapshot_ip_type, NEW.snapshot_ip_type_source, NEW.snapshot_ip_provider)
               IS DISTINCT FROM (OLD.snapshot_ip_type, OLD.snapshot_ip_type_source, OLD.snapshot_ip_provider))
       OR (OLD.snapshot_is_scanner_source IS NOT NULL
           AND (NEW.snapshot_is_scanner, NEW.snapshot_is_scanner_source)
               IS DISTINCT FROM (OLD.snapshot_is_scanner, OLD.snapshot_is_scanner_source))
       OR (OLD.snapshot_is_known_attacker_source IS NOT NULL
           AND (NEW.snapshot_is_known_attacker, NEW.snapshot_threatfeeds, NEW.snapshot_is_known_attacker_source)
               IS DISTINCT FROM
               (OLD.snapshot_is_known_attacker, OLD.snapshot_threatfeeds, OLD.snapshot_is_known_attacker_source))
       OR (OLD.snapshot_at IS NOT NULL AND NEW.snapshot_at IS DISTINCT FROM OLD.snapshot_at)
       OR (OLD.snapshot_complete_at IS NOT NULL AND NEW.snapshot_complete_at IS DISTINCT FROM OLD.snapshot_complete_at) THEN
        RAISE EXCEPTION 'snapshot of session %: a known snapshot field is never rewritten', OLD.session_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    -- Until revision 0036 has moved every document to enrichment_documents: a complete snapshot's
    -- document, wherever it is held (snapshot_document, else the copy in snapshot_enrichment),
    -- never changes; moving it from one to the other (0036's backfill and downgrade) is allowed.
    IF OLD.snapshot_complete_at IS NOT NULL
       AND (NEW.snapshot_document, NEW.snapshot_enrichment) IS DISTINCT FROM (OLD.snapshot_document, OLD.snapshot_enrichment)
       AND (CASE WHEN NEW.snapshot_document IS NULL THEN NEW.snapshot_enrichment
                 ELSE (SELECT d.document FROM ipintel.enrichment_documents d WHERE d.document_id = NEW.snapshot_document) END)
           IS DISTINCT FROM
           (CASE WHEN OLD.snapshot_document IS NULL THEN OLD.snapshot_enrichment
                 ELSE (SELECT d.document FROM ipintel.enrichment_documents d WHERE d.document_id = OLD.snapshot_document) END) THEN
        RAISE EXCEPTION 'snapshot of session %: the document of a complete snapshot is never rewritten', OLD.session_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ipintel.protect_snapshot() IS
    'Trigger function: refuses to change a known snapshot field (its *_source set), snapshot_at once set, or anything of a complete snapshot (its document: snapshot_document, or until revision 0036 the copy in snapshot_enrichment), except inside redo_snapshots (audited in snapshot_redos). Unknown fields may be filled.';

DROP TRIGGER session_summaries_snapshot_is_immutable ON ipintel.session_summaries;
CREATE TRIGGER session_summaries_snapshot_is_immutable
    BEFORE UPDATE OF snapshot_asn, snapshot_country, snapshot_ip_type, snapshot_is_scanner, snapshot_enrichment, snapshot_document, snapshot_at,
                     snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source, snapshot_is_scanner_source,
                     snapshot_complete_at, snapshot_is_known_attacker, snapshot_threatfeeds,
                     snapshot_is_known_attacker_source, snapshot_ip_provider
    ON ipintel.session_summaries
    FOR EACH ROW EXECUTE FUNCTION ipintel.protect_snapshot();

CREATE OR REPLACE FUNCTION ipintel.redo_snapshots(p_since timestamptz, p_until timestamptz, p_reason text)
    RETURNS TABLE (redo_id bigint, sessions_reset bigint, sessions_taken bigint)
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_redo bigint;
    v_reset bigint;
    v_taken bigint;
BEGIN
    INSERT INTO ipintel.snapshot_redos (since, until, reason) VALUES (p_since, p_until, p_reason)
    RETURNING snapshot_redos.redo_id INTO v_redo;
    PERFORM set_config('ipintel.snapshot_redo', v_redo::text, true);
    UPDATE ipintel.session_summaries s
    SET snapshot_asn = NULL, snapshot_asn_source = NULL, snapshot_country = NULL, snapshot_country_source = NULL,
        snapshot_ip_type = NULL, snapshot_ip_type_source = NULL, snapshot_ip_provider = NULL, snapshot_is_scanner = NULL,
        snapshot_is_scanner_source = NULL, snapshot_is_known_attacker = NULL, snapshot_threatfeeds = NULL,
        snapshot_is_known_attacker_source = NULL, snapshot_enrichment = NULL, snapshot_document = NULL, snapshot_at = NULL,
        snapshot_complete_at = NULL, updated_at = now()
    WHERE s.first_event_at >= p_since AND s.first_event_at < p_until AND s.snapshot_at IS NOT NULL;
    GET DIAGNOSTICS v_reset = ROW_COUNT;
    PERFORM set_config('ipintel.snapshot_redo', '', true);
    v_taken := ipintel.take_snapshots();
    UPDATE ipintel.snapshot_redos r
    SET finished_at = clock_timestamp(), sessions_reset = v_reset, sessions_taken = v_taken
    WHERE r.redo_id = v_redo;
    RETURN QUERY SELECT v_redo, v_reset, v_taken;
END;
$$;
COMMENT ON FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) IS
    'Takes again the snapshots of the sessions that started in [p_since, p_until), recorded in snapshot_redos with p_reason and its counts: the one audited way a known snapshot is rewritten (e.g. after loading routing history for sessions snapshotted from the current ASN). Returns the redo and its counts.';
ALTER FUNCTION ipintel.redo_snapshots(timestamptz, timestamptz, text) SECURITY DEFINER;
CREATE OR REPLACE FUNCTION ipintel.verify_snapshots()
    RETURNS TABLE (rule text, violations bigint, examples text[])
    LANGUAGE sql
    STABLE
    SET search_path = ''
BEGIN ATOMIC
    WITH geo_build AS (  -- <source>:build:<day> of a loaded geolocation build (revision 0029)
        SELECT e.source || ':build:' || to_char(b.built_on, 'YYYY-MM-DD') AS build
        FROM ipintel.geo_builds b JOIN ipintel.geo_editions e ON e.edition = b.edition
    ), allowed_asn_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source || k.suffix FROM ipintel.enrichment_policy p
        CROSS JOIN (VALUES (':history'), (':current')) AS k(suffix)
        UNION
        SELECT 'routing:' || r.dataset || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.routing_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || r.taken_on::text FROM ipintel.routing_snapshots r
        UNION
        SELECT b.build FROM geo_build b
    ), allowed_source AS (
        SELECT v.source FROM (VALUES ('bogon'), ('none')) AS v(source)
        UNION
        SELECT p.source FROM ipintel.enrichment_policy p
    ), allowed_ip_type_source AS (
        -- a class from a range or ASN list names the list's snapshot; hosting, residential and
        -- routed name the ASN's source, which may be a routing snapshot or a geolocation build
        -- (revision 0030)
        SELECT a.source FROM allowed_source a
        UNION
        SELECT 'list:' || r.list || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.range_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || to_char(r.taken_on, 'YYYY-MM-DD') FROM ipintel.routing_snapshots r
        UNION
        SELECT 'routing:' || r.dataset || ':' || r.taken_on::text FROM ipintel.routing_snapshots r
        UNION
        SELECT b.build FROM geo_build b
    ), combos AS (
        -- the sessions grouped by what the rules read: a few groups, checked once each
        SELECT s.snapshot_asn_source AS asn_source, s.snapshot_country_source AS country_source,
               s.snapshot_ip_type_source AS ip_type_source, s.snapshot_is_scanner_source AS is_scanner_source,
               s.snapshot_complete_at IS NOT NULL AS complete, s.snapshot_at IS NOT NULL AS taken,
               -- revision 0022 made the ASN's source say how it was found (routing:, :history,
               -- :current); a bare source name is right only for snapshots taken before the first such
               s.snapshot_at < coalesce((SELECT min(x.snapshot_at) FROM ipintel.session_summaries x
                                         WHERE x.snapshot_asn_source LIKE '%:%'), 'infinity') AS before_0022_form,
               count(*) AS sessions, min(s.session_id) AS example
        FROM ipintel.session_summaries s
        WHERE s.snapshot_at IS NOT NULL OR s.snapshot_asn_source IS NOT NULL OR s.snapshot_country_source IS NOT NULL
           OR s.snapshot_ip_type_source IS NOT NULL OR s.snapshot_is_scanner_source IS NOT NULL
           OR s.snapshot_complete_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ), checked AS (
        SELECT r.n, r.rule, c.sessions, c.example
        FROM combos c
        CROSS JOIN LATERAL (VALUES
            (1, 'a complete snapshot names the source of every field',
             c.complete AND (c.asn_source IS NULL OR c.country_source IS NULL OR c.ip_type_source IS NULL
                             OR c.is_scanner_source IS NULL)),
            (2, 'a snapshot with a known field has snapshot_at',
             NOT c.taken),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded build, <source>:current, bogon or none (a bare source: before revision 0022)',
             c.asn_source IS NOT NULL
             AND c.asn_source NOT IN (SELECT a.source FROM allowed_asn_source a)
             AND NOT (c.before_0022_form AND c.asn_source IN (SELECT p.source FROM ipintel.enrichment_policy p))),
            (4, 'snapshot_country_source is a registered source, <source>:build:<day> of a loaded build, bogon or none',
             c.country_source IS NOT NULL AND c.country_source NOT IN (SELECT a.source FROM allowed_source a)
             AND c.country_source NOT IN (SELECT b.build FROM geo_build b)),
            (5, 'snapshot_ip_type_source is a registered source, list:<list>:<day> of a loaded range snapshot, routing:<dataset>:<day> of a loaded routing snapshot, <source>:build:<day> of a loaded build, bogon or none',
             c.ip_type_source IS NOT NULL AND c.ip_type_source NOT IN (SELECT a.source FROM allowed_ip_type_source a)),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none',
             c.is_scanner_source IS NOT NULL AND c.is_scanner_source NOT IN (SELECT a.source FROM allowed_source a))
        ) AS r(n, rule, violated)
        WHERE r.violated
    ), rules AS (
        SELECT r.n, r.rule FROM (VALUES
            (1, 'a complete snapshot names the source of every field'),
            (2, 'a snapshot with a known field has snapshot_at'),
            (3, 'snapshot_asn_source is routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded build, <source>:current, bogon or none (a bare source: before revision 0022)'),
            (4, 'snapshot_country_source is a registered source, <source>:build:<day> of a loaded build, bogon or none'),
            (5, 'snapshot_ip_type_source is a registered source, list:<list>:<day> of a loaded range snapshot, routing:<dataset>:<day> of a loaded routing snapshot, <source>:build:<day> of a loaded build, bogon or none'),
            (6, 'snapshot_is_scanner_source is a registered source, bogon or none')) AS r(n, rule)
    )
    SELECT x.rule, x.violations, x.examples
    FROM (
        SELECT r.n, r.rule, coalesce(sum(k.sessions), 0)::bigint AS violations,
               coalesce((array_agg(k.example ORDER BY k.example) FILTER (WHERE k.example IS NOT NULL))[1:3], '{}')
                   AS examples
        FROM rules r LEFT JOIN checked k ON k.n = r.n
        GROUP BY r.n, r.rule
        UNION ALL
        -- the guard: snapshot_redos is the only record of a rewrite only while the trigger refuses the others
        SELECT 7, 'the trigger that refuses unaudited rewrites (session_summaries_snapshot_is_immutable) is enabled',
               CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                 WHERE t.tgrelid = 'ipintel.session_summaries'::regclass
                                   AND t.tgname = 'session_summaries_snapshot_is_immutable' AND t.tgenabled <> 'D')
                    THEN 0 ELSE 1 END,
               '{}'::text[]
        UNION ALL
        -- an unfinished redo row would let anyone who names it rewrite snapshots unaudited
        SELECT 8, 'every redo in snapshot_redos is finished (an open one would allow rewrites)',
               count(*), coalesce((array_agg('redo ' || d.redo_id ORDER BY d.redo_id))[1:3], '{}')
        FROM ipintel.snapshot_redos d WHERE d.finished_at IS NULL
        UNION ALL
        -- snapshot_document has no per-row foreign key (revision 0035): every reference, in one pass
        SELECT 9, 'every snapshot_document is a document stored in enrichment_documents',
               count(*), coalesce((array_agg(s.session_id ORDER BY s.session_id))[1:3], '{}')
        FROM ipintel.session_summaries s
        WHERE s.snapshot_document IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM ipintel.enrichment_documents e WHERE e.document_id = s.snapshot_document)
        UNION ALL
        -- what makes the references safe without that key: a stored document is never deleted
        SELECT 10, 'the trigger that keeps stored documents unchanged (enrichment_documents_are_immutable) is enabled',
               CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                 WHERE t.tgrelid = 'ipintel.enrichment_documents'::regclass
                                   AND t.tgname = 'enrichment_documents_are_immutable' AND t.tgenabled <> 'D')
                    THEN 0 ELSE 1 END,
               '{}'::text[]
    ) x
    ORDER BY x.n;
END;
COMMENT ON FUNCTION ipintel.verify_snapshots() IS
    'The rules snapshots obey, each with its violations (sessions, or 1 for a rule about the schema) and up to three example session ids: complete snapshots name every field''s source, snapshot_at is set, every *_source is well-formed (the ASN''s: routing:<dataset>:<day> of a loaded snapshot, <source>:history, <source>:build:<day> of a loaded geolocation build, <source>:current, bogon, none, or a bare registered source for snapshots taken before revision 0022; the country''s: a registered source, <source>:build:<day>, bogon or none; the class''s: a registered source, list:<list>:<day> of a loaded range snapshot, the ASN''s routing:<dataset>:<day> or <source>:build:<day>, bogon or none), the rewrite guard is enabled and no redo is left open (snapshot_redos is the only record of a rewrite), every snapshot_document names a stored document (no per-row foreign key checks it) and the guard that keeps stored documents unchanged is enabled. violations = 0 everywhere: the snapshots are sound.';

-- The enrichment document each session's snapshot took (issue 15, revision 0035): stored once per
-- distinct document in enrichment_documents, read back here per session.
CREATE OR REPLACE VIEW ipintel.session_documents AS
SELECT s.session_id,
       s.first_event_at,
       s.source_ip,
       s.snapshot_at,
       s.snapshot_complete_at,
       s.snapshot_document,
       -- until revision 0036 has moved them: the copies taken before 0035
       coalesce(d.document, s.snapshot_enrichment) AS snapshot_enrichment
FROM ipintel.session_summaries s
LEFT JOIN ipintel.enrichment_documents d ON d.document_id = s.snapshot_document
WHERE s.snapshot_at IS NOT NULL;
COMMENT ON VIEW ipintel.session_documents IS
    'One row per session with a snapshot: the full ip_inventory.enrichment document as it was when its snapshot was last filled (the snapshot_* columns of session_summaries hold what was taken from it). The document is stored once per distinct version in enrichment_documents and shared by the sessions that took it; join on session_id for the rest of the session (session_attribution, session_summaries).';
COMMENT ON COLUMN ipintel.session_documents.snapshot_document IS 'session_summaries.snapshot_document: the document''s number in enrichment_documents (equal numbers, equal documents).';
COMMENT ON COLUMN ipintel.session_documents.snapshot_enrichment IS
    'The document as it was: every source''s answer then, keyed by source (ip_inventory.enrichment''s form). What session_summaries.snapshot_enrichment held before revision 0036.';

GRANT SELECT ON ipintel.enrichment_documents, ipintel.session_documents TO ipintel_reader, ipintel_loader;
GRANT EXECUTE ON FUNCTION ipintel.enrichment_digest(jsonb) TO ipintel_reader, ipintel_loader;
