-- From sql/030_tiers.sql
-- The three tiers and the IP -> ASN history. Foreign keys between them are in
-- sql/050_foreign_keys.sql: on a populated database they are added NOT VALID and validated
-- in a second step (see migrations), so they are kept apart here too.

------------------------------------------------------------------------------------------
-- Tier 1: asn_inventory
------------------------------------------------------------------------------------------
CREATE TABLE ipintel.asn_inventory (
    asn             bigint      NOT NULL,
    as_name         text,
    as_country      text,
    rir             text,
    allocated       date,
    first_seen      timestamptz,
    last_seen       timestamptz,
    ip_count        bigint      NOT NULL DEFAULT 0,
    session_count   bigint      NOT NULL DEFAULT 0,
    sources         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT asn_inventory_pkey PRIMARY KEY (asn),
    CONSTRAINT asn_inventory_asn_is_32_bit CHECK (asn BETWEEN 0 AND 4294967295),
    CONSTRAINT asn_inventory_as_country_is_iso_alpha2 CHECK (as_country ~ '^[A-Z]{2}$'),
    CONSTRAINT asn_inventory_rir_is_lower_case_word CHECK (rir ~ '^[a-z]+$'),
    CONSTRAINT asn_inventory_counts_are_not_negative CHECK (ip_count >= 0 AND session_count >= 0),
    CONSTRAINT asn_inventory_seen_in_order CHECK (first_seen <= last_seen),
    CONSTRAINT asn_inventory_sources_is_object CHECK (jsonb_typeof(sources) = 'object')
);
COMMENT ON TABLE ipintel.asn_inventory IS
    'Tier 1: one row per autonomous system seen as the current ASN of a source IP. Counts are maintained by the merge and ingest functions.';
COMMENT ON COLUMN ipintel.asn_inventory.asn IS 'Autonomous system number (32-bit).';
COMMENT ON COLUMN ipintel.asn_inventory.as_name IS 'AS name / organisation, from Team Cymru (preferred) or MaxMind ASN.';
COMMENT ON COLUMN ipintel.asn_inventory.as_country IS 'Registration country of the AS (ISO 3166-1 alpha-2, from the RIR via Team Cymru); not geolocation.';
COMMENT ON COLUMN ipintel.asn_inventory.rir IS 'Regional Internet Registry holding the allocation: arin, ripencc, apnic, lacnic, afrinic or other.';
COMMENT ON COLUMN ipintel.asn_inventory.allocated IS 'Date the RIR allocated the AS (Team Cymru).';
COMMENT ON COLUMN ipintel.asn_inventory.first_seen IS 'Earliest session start among the IPs attributed to this AS.';
COMMENT ON COLUMN ipintel.asn_inventory.last_seen IS 'Latest session activity among the IPs attributed to this AS.';
COMMENT ON COLUMN ipintel.asn_inventory.ip_count IS 'Number of ip_inventory rows whose current_asn is this AS.';
COMMENT ON COLUMN ipintel.asn_inventory.session_count IS 'Sum of session_count over the IPs whose current_asn is this AS.';
COMMENT ON COLUMN ipintel.asn_inventory.sources IS 'Latest per-source AS facts, keyed by source (maxmind, cymru).';

CREATE INDEX asn_inventory_as_country_idx ON ipintel.asn_inventory (as_country);

------------------------------------------------------------------------------------------
-- Tier 2: ip_inventory
------------------------------------------------------------------------------------------
-- The classes of ip_inventory.ip_type, in the order that decides between them: an IP that
-- qualifies for several gets the one with the lowest precedence (ipintel.ip_classes). Cloud and
-- CDN share a level: between them the most specific range wins.
CREATE TABLE ipintel.ip_types (
    ip_type     text     NOT NULL,
    precedence  bigint   NOT NULL,
    ttl         interval,
    description text     NOT NULL,
    CONSTRAINT ip_types_pkey PRIMARY KEY (ip_type),
    CONSTRAINT ip_types_name_is_a_lower_case_name CHECK (ip_type ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT ip_types_ttl_is_positive CHECK (ttl > interval '0')
);
COMMENT ON TABLE ipintel.ip_types IS
    'The infrastructure classes of ip_inventory.ip_type: what each means, which wins when an IP qualifies for several (precedence), and how soon the IPs of a class are asked again (ttl). Edit ttl to change the freshness policy.';
COMMENT ON COLUMN ipintel.ip_types.ip_type IS 'Class name, the value of ip_inventory.ip_type and session_summaries.snapshot_ip_type.';
COMMENT ON COLUMN ipintel.ip_types.precedence IS
    'Lower wins: an IP in several classes gets the one with the lowest precedence; within one level, the most specific range (then the list''s rank).';
COMMENT ON COLUMN ipintel.ip_types.ttl IS
    'When set, the answers of every remote source for an IP of this class are stale after ttl instead of the source''s own (enrichment_policy.ttl): volatile infrastructure (rented cloud machines, VPN exits) is asked again sooner, residential lines later. NULL: the source''s ttl.';
COMMENT ON COLUMN ipintel.ip_types.description IS 'What the class means and what decides it.';
INSERT INTO ipintel.ip_types (ip_type, precedence, ttl, description) VALUES
    ('bogon', 1, NULL, 'Special-purpose or not globally routable address (RFC 6890): never sent to a source.'),
    ('tor', 2, interval '7 days', 'A Tor exit relay, in a Tor exit list of the day.'),
    ('cloud', 3, interval '7 days', 'In a cloud provider''s published ranges (AWS, Google Cloud, Azure, Oracle, DigitalOcean...): a rented machine.'),
    ('cdn', 3, interval '7 days', 'In a CDN''s published ranges (Cloudflare): a proxy or worker of the CDN.'),
    ('hosting', 4, interval '7 days', 'Announced by an AS in the curated hosting-ASN list: a hosting or VPS provider.'),
    ('riot', 5, NULL, 'A known benign business service, by a source that says (GreyNoise RIOT).'),
    ('scanner', 6, NULL, 'Seen scanning the internet, by a source that says (GreyNoise noise).'),
    ('anonymizer', 7, interval '7 days', 'An anonymous proxy or VPN, by a source that says (MaxMind).'),
    ('residential', 8, interval '30 days', 'Announced by an AS whose name reads as a consumer access network (ipintel.as_name_looks_residential): a guess from the name.'),
    ('unrouted', 9, NULL, 'Allocated but not announced in BGP, by a source that says (Team Cymru NA).'),
    ('routed', 10, NULL, 'Announced by a known AS, nothing more specific known.'),
    ('unknown', 11, NULL, 'No source has said anything yet.');

-- The generated columns (ip_family, is_bogon) read only the address. The facts the sources give
-- (current_asn, geo_country, is_scanner, is_riot, ip_type, is_known_attacker, threatfeeds) are
-- resolved across sources by the registry's ranks and written by the merges (apply_answers), each
-- with the source it came from: no source's name is spelled out in this table.
CREATE TABLE ipintel.ip_inventory (
    ip              inet        NOT NULL,
    first_seen      timestamptz,
    last_seen       timestamptz,
    session_count   bigint      NOT NULL DEFAULT 0,
    enrichment      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    current_asn     bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- An address family is 4 or 6.
    -- squawk-ignore prefer-bigint-over-smallint
    ip_family       smallint    NOT NULL GENERATED ALWAYS AS (family(ip)) STORED,
    is_bogon        boolean     NOT NULL GENERATED ALWAYS AS (ipintel.is_bogon(ip)) STORED,
    geo_country     text        NOT NULL DEFAULT 'XX',
    is_scanner      boolean,
    is_riot         boolean,
    ip_type         text        NOT NULL DEFAULT 'unknown',
    current_asn_source  text,
    geo_country_source  text,
    is_scanner_source   text,
    ip_type_source      text,
    is_known_attacker   boolean,
    is_known_attacker_source text,
    threatfeeds         text[],
    ip_provider         text,
    ip_class_basis      jsonb,
    CONSTRAINT ip_inventory_pkey PRIMARY KEY (ip),
    CONSTRAINT ip_inventory_ip_is_host_address CHECK (masklen(ip) = CASE family(ip) WHEN 4 THEN 32 ELSE 128 END),
    CONSTRAINT ip_inventory_ip_is_not_ipv4_mapped CHECK (NOT (ip <<= '::ffff:0:0/96'::inet)),
    CONSTRAINT ip_inventory_session_count_is_not_negative CHECK (session_count >= 0),
    CONSTRAINT ip_inventory_seen_in_order CHECK (first_seen <= last_seen),
    CONSTRAINT ip_inventory_enrichment_is_object CHECK (jsonb_typeof(enrichment) = 'object'),
    CONSTRAINT ip_inventory_geo_country_is_iso_alpha2 CHECK (geo_country ~ '^[A-Z]{2}$'),
    CONSTRAINT ip_inventory_ip_class_basis_is_object CHECK (jsonb_typeof(ip_class_basis) = 'object')
);
COMMENT ON TABLE ipintel.ip_inventory IS
    'Tier 2: one row per source IP seen by a honeypot, with the latest answer of every enrichment source and the facts resolved from them for the hot filters, each with its source.';
COMMENT ON COLUMN ipintel.ip_inventory.ip IS 'Source address: a host address; IPv4-mapped IPv6 is stored as IPv4.';
COMMENT ON COLUMN ipintel.ip_inventory.first_seen IS 'Start of the earliest session from this IP.';
COMMENT ON COLUMN ipintel.ip_inventory.last_seen IS 'Latest event of any session from this IP.';
COMMENT ON COLUMN ipintel.ip_inventory.session_count IS 'Number of session_summaries rows from this IP.';
COMMENT ON COLUMN ipintel.ip_inventory.enrichment IS
    'Latest answer of each source under its key (maxmind, cymru, greynoise): its facts only, rewritten only when they change. When each source last answered, and from which data build, is in enrichment_state. A missing key means never answered.';
COMMENT ON COLUMN ipintel.ip_inventory.current_asn IS 'ASN announcing this IP as of the latest observation, from the first-ranked source that observed one (enrichment_policy.asn_rank; current_asn_source says which); history in ip_asn_history.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_family IS 'Generated: 4 or 6.';
COMMENT ON COLUMN ipintel.ip_inventory.is_bogon IS 'Generated: address is special-purpose / not globally routable (RFC 6890); never sent to remote sources.';
COMMENT ON COLUMN ipintel.ip_inventory.geo_country IS
    'Geolocation country of the first-ranked source that gives one (enrichment_policy.country_rank; geo_country_source says which), else XX (unknown).';
COMMENT ON COLUMN ipintel.ip_inventory.is_scanner IS 'Seen scanning the internet, by the first-ranked source that says (is_scanner_rank). NULL when no such source has answered.';
COMMENT ON COLUMN ipintel.ip_inventory.is_riot IS 'A known benign business service (CDN, search crawler...), by the first-ranked source that says (is_riot_rank). NULL when none has answered.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_type IS
    'Infrastructure class as of today (ipintel.ip_types, ipintel.ip_classes): of the classes the IP qualifies for, the one of lowest precedence: bogon, tor, cloud or cdn (range lists; the most specific range wins), hosting (its AS in a hosting-ASN list), riot, scanner, anonymizer (what sources say), residential (its AS name), unrouted, routed (an ASN is known), unknown. Kept by SQL: every merge, range-list load and ipintel.classify_inventory. No foreign key to ip_types (written by every merge): ipintel.verify_integrity checks it.';
COMMENT ON COLUMN ipintel.ip_inventory.current_asn_source IS 'The source whose observation current_asn is (enrichment_policy); NULL: none yet.';
COMMENT ON COLUMN ipintel.ip_inventory.geo_country_source IS 'The source geo_country came from; NULL: none (XX).';
COMMENT ON COLUMN ipintel.ip_inventory.is_scanner_source IS 'The source is_scanner came from; NULL: none.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_type_source IS
    'The registered source ip_type came from: the one that said riot, scanner, anonymizer or unrouted; for hosting, residential and routed, the source of current_asn. NULL for bogon, unknown and the range-list classes (tor, cloud, cdn): ip_class_basis says which list.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_provider IS
    'Who runs the infrastructure, for the classes that say: aws, gcp, azure, oracle, digitalocean, cloudflare, tor (range lists), the hosting AS''s name (hosting), the AS name (residential). NULL otherwise.';
COMMENT ON COLUMN ipintel.ip_inventory.ip_class_basis IS
    'Why ip_type is what it is: {"rule": bogon | range | hosting_asn | source | residential | routed | unknown, ...}: for range, the list, its snapshot day, the prefix, service and region; for hosting_asn, the list, its snapshot day, the ASN, its name and the entry''s source; for source, the source; for residential and routed, the ASN (and AS name). NULL: not classified yet (an IP ingested since the last merge or range load that saw it).';
COMMENT ON COLUMN ipintel.ip_inventory.is_known_attacker IS
    'Reported attacking other networks, by the first-ranked source that says (is_known_attacker_rank; DShield: reports > 0). false: that source has no report of it; NULL: no such source has answered.';
COMMENT ON COLUMN ipintel.ip_inventory.is_known_attacker_source IS 'The source is_known_attacker (and threatfeeds) came from; NULL: none.';
COMMENT ON COLUMN ipintel.ip_inventory.threatfeeds IS
    'Names of the threat feeds that list the IP (sorted), as said by the source is_known_attacker came from; empty: none lists it; NULL: no such source has answered. Each feed''s first and last sighting are in enrichment -> source.';

-- A bogon is classified when it arrives, by whoever inserts it: no source is ever asked about it.
CREATE FUNCTION ipintel.classify_bogon()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF ipintel.is_bogon(NEW.ip) THEN
        NEW.ip_type := 'bogon';
        NEW.ip_type_source := NULL;
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION ipintel.classify_bogon() IS 'Trigger function: a bogon''s ip_type is bogon, whatever the writer set.';
-- WHEN: the function runs only for a bogon not typed so (the merges' updates of every other
-- row skip the call).
CREATE TRIGGER ip_inventory_bogon_is_typed
    BEFORE INSERT OR UPDATE OF ip, ip_type ON ipintel.ip_inventory
    FOR EACH ROW
    WHEN (NEW.ip_type IS DISTINCT FROM 'bogon' AND ipintel.is_bogon(NEW.ip))
    EXECUTE FUNCTION ipintel.classify_bogon();

CREATE INDEX ip_inventory_current_asn_idx ON ipintel.ip_inventory (current_asn);
CREATE INDEX ip_inventory_geo_country_idx ON ipintel.ip_inventory (geo_country);
CREATE INDEX ip_inventory_last_seen_idx ON ipintel.ip_inventory (last_seen DESC);
-- No GiST index on ip: GiST scans of it lost live rows (issue 9; see revision 0010).
COMMENT ON INDEX ipintel.ip_inventory_pkey IS
    'The one index on ip: serves = (and the foreign-key checks) and network containment (ip <<= ''198.51.100.0/22'' becomes a btree range scan). No GiST index on ip: GiST scans lost live rows (issue 9).';
CREATE INDEX ip_inventory_is_scanner_idx ON ipintel.ip_inventory (ip) WHERE is_scanner;
COMMENT ON INDEX ipintel.ip_inventory_is_scanner_idx IS 'Small partial index: the known scanners.';

------------------------------------------------------------------------------------------
-- Tier 3: session_summaries
------------------------------------------------------------------------------------------
CREATE TABLE ipintel.session_summaries (
    session_id          text        NOT NULL,
    sensor              text,
    first_event_at      timestamptz NOT NULL,
    last_event_at       timestamptz NOT NULL,
    protocol            text,
    source_ip           inet        NOT NULL,
    -- TCP ports fit in integer (0-65535, checked below).
    -- squawk-ignore prefer-bigint-over-int
    src_port            integer,
    dst_ip              inet,
    -- TCP ports fit in integer (0-65535, checked below).
    -- squawk-ignore prefer-bigint-over-int
    dst_port            integer,
    duration_seconds    double precision,
    client_version      text,
    hassh               text,
    login_attempts      bigint      NOT NULL DEFAULT 0,
    login_successes     bigint      NOT NULL DEFAULT 0,
    command_count       bigint      NOT NULL DEFAULT 0,
    download_count      bigint      NOT NULL DEFAULT 0,
    event_count         bigint      NOT NULL DEFAULT 0,
    snapshot_asn        bigint,
    snapshot_country    text,
    snapshot_ip_type    text,
    snapshot_is_scanner boolean,
    snapshot_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    snapshot_asn_source        text,
    snapshot_country_source    text,
    snapshot_ip_type_source    text,
    snapshot_is_scanner_source text,
    snapshot_complete_at       timestamptz,
    snapshot_is_known_attacker        boolean,
    snapshot_threatfeeds              text[],
    snapshot_is_known_attacker_source text,
    snapshot_ip_provider              text,
    -- added by revision 0035 (in place of snapshot_enrichment, dropped by 0036); no foreign key:
    -- see the column's comment
    snapshot_document                 bigint,
    -- A partitioned table's keys must include its partition key; session_id alone is unique too,
    -- kept so by merge_cowrie_events (see the COMMENT on the constraint) and checked by verify_sessions.
    CONSTRAINT session_summaries_pkey PRIMARY KEY (session_id, first_event_at),
    CONSTRAINT session_summaries_events_in_order CHECK (first_event_at <= last_event_at),
    CONSTRAINT session_summaries_counts_are_not_negative CHECK (
        login_attempts >= 0 AND login_successes >= 0 AND command_count >= 0
        AND download_count >= 0 AND event_count >= 0),
    CONSTRAINT session_summaries_successes_within_attempts CHECK (login_successes <= login_attempts),
    CONSTRAINT session_summaries_ports_in_range CHECK (src_port BETWEEN 0 AND 65535 AND dst_port BETWEEN 0 AND 65535),
    CONSTRAINT session_summaries_source_ip_is_host_address CHECK (masklen(source_ip) = CASE family(source_ip) WHEN 4 THEN 32 ELSE 128 END),
    CONSTRAINT session_summaries_snapshot_country_is_iso_alpha2 CHECK (snapshot_country ~ '^[A-Z]{2}$'),
    CONSTRAINT session_summaries_snapshot_is_consistent CHECK (
        (snapshot_at IS NULL) = (snapshot_document IS NULL)
        AND (snapshot_complete_at IS NULL
             OR (snapshot_at IS NOT NULL AND snapshot_asn_source IS NOT NULL AND snapshot_country_source IS NOT NULL
                 AND snapshot_ip_type_source IS NOT NULL AND snapshot_is_scanner_source IS NOT NULL)))
) PARTITION BY RANGE (first_event_at);
COMMENT ON TABLE ipintel.session_summaries IS
    'Tier 3: one row per Cowrie session, with point-in-time snapshot_* columns: what ipintel knew about the source IP for the session''s time. A snapshot field is known once its *_source is set and is then never rewritten; an unknown field is filled when its source first answers, within that source''s snapshot_window (enrichment_policy) from the session''s created_at. Partitioned by month of first_event_at (UTC): session_summaries_YYYY_MM, made by ensure_session_partitions, and session_summaries_default for a session whose month has no partition yet. The partitions are filled to 40% (fillfactor) and no index covers a snapshot column, so that take_snapshots'' fills, the one that completes a snapshot too, stay on their page (HOT); the incomplete sessions are listed in ipintel.snapshot_queue.';
COMMENT ON CONSTRAINT session_summaries_pkey ON ipintel.session_summaries IS
    'The key includes first_event_at because a partitioned table''s keys must include its partition key. session_id alone names one session all the same: merge_cowrie_events, the one writer of new sessions, updates the row of a known session_id wherever it is and inserts the others one merge at a time; ipintel.verify_sessions() checks it.';
COMMENT ON COLUMN ipintel.session_summaries.session_id IS 'Cowrie session id.';
COMMENT ON COLUMN ipintel.session_summaries.sensor IS 'Cowrie sensor (honeypot) name that logged the session.';
COMMENT ON COLUMN ipintel.session_summaries.first_event_at IS 'Time of the first event of the session (UTC). The partition key: its month (UTC) says which partition holds the session; a filter on it reads only the months it covers.';
COMMENT ON COLUMN ipintel.session_summaries.last_event_at IS 'Time of the last event of the session (UTC).';
COMMENT ON COLUMN ipintel.session_summaries.protocol IS 'ssh or telnet (cowrie.session.connect).';
COMMENT ON COLUMN ipintel.session_summaries.source_ip IS 'Attacker address (normalised like ip_inventory.ip).';
COMMENT ON COLUMN ipintel.session_summaries.src_port IS 'Attacker TCP source port (cowrie.session.connect).';
COMMENT ON COLUMN ipintel.session_summaries.dst_ip IS 'Honeypot address the attacker connected to.';
COMMENT ON COLUMN ipintel.session_summaries.dst_port IS 'Honeypot TCP port the attacker connected to (22, 23, 2222...).';
COMMENT ON COLUMN ipintel.session_summaries.duration_seconds IS 'Session duration reported by cowrie.session.closed.';
COMMENT ON COLUMN ipintel.session_summaries.client_version IS 'SSH client version string (cowrie.client.version); attacker-chosen text.';
COMMENT ON COLUMN ipintel.session_summaries.hassh IS 'HASSH fingerprint of the SSH client key exchange (cowrie.client.kex).';
COMMENT ON COLUMN ipintel.session_summaries.login_attempts IS 'Login attempts: cowrie.login.failed plus cowrie.login.success events.';
COMMENT ON COLUMN ipintel.session_summaries.login_successes IS 'cowrie.login.success events.';
COMMENT ON COLUMN ipintel.session_summaries.command_count IS 'Commands entered (cowrie.command.input events).';
COMMENT ON COLUMN ipintel.session_summaries.download_count IS 'Files fetched by the attacker (cowrie.session.file_download events).';
COMMENT ON COLUMN ipintel.session_summaries.event_count IS 'All events of the session, known or not.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn IS 'Snapshot: origin AS of the source IP at the session''s time: from routing history (prefix_origins) at its day, else ip_asn_history at its time, else (a session before ipintel observed the IP''s current ASN) the dated geolocation build of its day (geo_asns), else its current_asn when the field was filled. Known once snapshot_asn_source is set (NULL then means not routed / not known by any source).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_country IS 'Snapshot: the country of the dated geolocation build of the session''s day (geo_countries) for a session before ipintel observed the IP''s current country, else ip_inventory.geo_country when the field was filled. Known once snapshot_country_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type IS
    'Snapshot: the infrastructure class as of the session''s day (ipintel.ip_classes: the range lists of that day, the snapshot''s ASN, what sources said when the field was filled; only once no source is still awaited). Known once snapshot_ip_type_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_provider IS
    'Snapshot: who ran the infrastructure as of the session''s day (ip_inventory.ip_provider''s meaning), filled with snapshot_ip_type. NULL: the class names none, or not known yet.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_is_scanner IS 'Snapshot: ip_inventory.is_scanner when the field was filled. Known once snapshot_is_scanner_source is set (NULL then means GreyNoise declined, e.g. IPv6).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_document IS
    'Snapshot: the full ip_inventory.enrichment document as it was when a snapshot field was last filled, stored once in ipintel.enrichment_documents (this is its document_id) and shared by every session that took the same document; the view ipintel.session_documents reads it back (snapshot_enrichment). Set exactly when snapshot_at is (CHECK session_summaries_snapshot_is_consistent). No per-row foreign key: take_snapshots writes only ids it has just found or stored in the same statement, and stored documents are never deleted (enrichment_documents_are_immutable); ipintel.verify_snapshots checks every reference in one pass. Before revision 0036: snapshot_enrichment, a copy of the document in every session.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_at IS 'When the first snapshot field was filled; NULL means no field is known yet.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_asn_source IS
    'Where snapshot_asn came from: routing:<dataset>:<snapshot day> (routing history), <source>:history (the ip_asn_history range at the session''s time), <source>:build:<day> (a dated geolocation build, geo_builds), <source>:current (current_asn when filled), bogon (never asked), none (every source answered or declined, none knew). Before revision 0022: the bare source name. NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_country_source IS
    'Where snapshot_country came from: <source>:build:<day> (a dated geolocation build, geo_builds), else the source of geo_country: maxmind, ipinfo, dbip (geolocation), cymru (registration country); bogon, none (XX: no source knew). NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_ip_type_source IS
    'What decided snapshot_ip_type: list:<list>:<snapshot day> (tor, cloud, cdn, hosting: the range or hosting-ASN list of that day), a source (riot, scanner, anonymizer, unrouted: greynoise, maxmind, cymru), the ASN''s source as in snapshot_asn_source (residential, routed), bogon, none (unknown). Before revision 0030 the bare source for routed too. NULL: not known yet (filled only once no source is awaited).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_is_scanner_source IS
    'Where snapshot_is_scanner came from: greynoise, bogon (never asked), none (GreyNoise declined or its window closed). NULL: not known yet, still fillable.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_is_known_attacker IS
    'Snapshot: ip_inventory.is_known_attacker when the field was filled. Known once snapshot_is_known_attacker_source is set.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_threatfeeds IS
    'Snapshot: ip_inventory.threatfeeds, filled together with snapshot_is_known_attacker (same source).';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_is_known_attacker_source IS
    'Where snapshot_is_known_attacker and snapshot_threatfeeds came from: dshield, bogon (never asked), none (no source said, or its window closed). NULL: not known yet, still fillable; also NULL for ever on a snapshot completed before revision 0028, which had no such field.';
COMMENT ON COLUMN ipintel.session_summaries.snapshot_complete_at IS
    'When every snapshot field became known: every enabled source had answered or declined (bogon, not applicable, not found), or its snapshot_window had closed. NULL: incomplete, listed in ipintel.snapshot_queue; see ipintel.snapshot_backlog.';

CREATE INDEX session_summaries_first_event_at_brin_idx ON ipintel.session_summaries USING brin (first_event_at);
COMMENT ON INDEX ipintel.session_summaries_first_event_at_brin_idx IS 'Sessions arrive roughly in time order: a tiny BRIN index serves time-window scans.';
CREATE INDEX session_summaries_source_ip_idx ON ipintel.session_summaries (source_ip);
-- No index on a column take_snapshots writes (revision 0038), nor an index predicate on one
-- (revision 0064), so that its fills stay on their page (HOT) and touch no index. Window
-- questions read attribution_daily and attribution_asn_daily; asn_sessions finds an ASN's days
-- there; the incomplete sessions are listed in snapshot_queue (sql/075).

-- Every session's key, in one table over all the months (revision 0060): the indexes of a
-- partitioned table are one per partition, so a session known by its session_id alone (what an
-- ingest chunk has) could only be looked for in every month, each chunk's sessions probing every
-- partition's key, or (chosen by the planner once the months hold a few million sessions) hashed
-- against a scan of all of them: 4.4M sessions over 27 months, 2.3 s for a chunk's 6,000
-- sessions. Here one probe finds the session's first_event_at, and with it the one partition to
-- read. Kept by the statement triggers below on every insert and delete of sessions, and by
-- merge_cowrie_events when it moves a session to an earlier first_event_at.
CREATE TABLE ipintel.session_keys (
    session_id     text        NOT NULL,
    first_event_at timestamptz NOT NULL,
    CONSTRAINT session_keys_pkey PRIMARY KEY (session_id)
);
COMMENT ON TABLE ipintel.session_keys IS
    'The key of every session of session_summaries: its session_id with its first_event_at, so that a session known by its id alone is found with one probe and then read in its one monthly partition (merge_cowrie_events). Written by the triggers session_summaries_keys_insert / _delete and by merge_cowrie_events; verify_sessions checks that it holds exactly the sessions'' keys.';
COMMENT ON COLUMN ipintel.session_keys.session_id IS 'The session (session_summaries.session_id).';
COMMENT ON COLUMN ipintel.session_keys.first_event_at IS 'Its session_summaries.first_event_at: with session_id, the session''s key, which names its partition.';

-- `changed`: the statement's inserted rows, or its deleted ones. An inserted session whose id is
-- already listed takes its place: ensure_session_partitions moves a month's sessions out of the
-- default partition by deleting them there (a statement on the partition, which the parent's
-- triggers do not see) and inserting them again.
CREATE FUNCTION ipintel.keep_session_keys()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM ipintel.session_keys k
        USING changed c
        WHERE k.session_id = c.session_id AND k.first_event_at = c.first_event_at;
    ELSE
        INSERT INTO ipintel.session_keys AS k (session_id, first_event_at)
        SELECT c.session_id, c.first_event_at FROM changed c
        ON CONFLICT (session_id) DO UPDATE SET first_event_at = excluded.first_event_at
        WHERE k.first_event_at IS DISTINCT FROM excluded.first_event_at;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.keep_session_keys() IS
    'Statement trigger function of session_summaries: lists the keys of inserted sessions in session_keys and removes those of deleted ones.';

-- Transition tables, as the attribution triggers (sql/077): one set of rows per statement for all.
CREATE TRIGGER session_summaries_keys_insert
    AFTER INSERT ON ipintel.session_summaries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.keep_session_keys();
COMMENT ON TRIGGER session_summaries_keys_insert ON ipintel.session_summaries IS
    'Lists the keys of inserted sessions in session_keys.';
CREATE TRIGGER session_summaries_keys_delete
    AFTER DELETE ON ipintel.session_summaries
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION ipintel.keep_session_keys();
COMMENT ON TRIGGER session_summaries_keys_delete ON ipintel.session_summaries IS
    'Removes the keys of deleted sessions from session_keys.';

-- The partitions. A session whose month has no partition yet goes to the default one rather than
-- being refused; ensure_session_partitions makes the month's partition (moving such sessions into
-- it). merge_cowrie_events calls it for the months of each chunk and for this month and the next,
-- so the next month's partition exists before the first session of that month arrives.
CREATE TABLE ipintel.session_summaries_default PARTITION OF ipintel.session_summaries DEFAULT;
COMMENT ON TABLE ipintel.session_summaries_default IS
    'Sessions whose month has no partition of its own yet (ensure_session_partitions could not take its locks, or a writer other than ingest). Normally empty: the next ensure_session_partitions for that month moves them into its partition.';

CREATE FUNCTION ipintel.ensure_session_partitions(p_times timestamptz[])
    RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = ''
    -- Months are UTC months, whatever the caller's time zone.
    SET timezone = 'UTC'
    -- Creating a partition takes ACCESS EXCLUSIVE on session_summaries and its default partition,
    -- and SHARE ROW EXCLUSIVE on ip_inventory (the foreign key), until the caller commits. It never
    -- queues long behind a reader or a merge: after a second it gives up on that month (its sessions
    -- wait in the default partition) and a later call makes it.
    SET lock_timeout = '1s'
AS $$
DECLARE
    v_month timestamptz;
    v_name text;
    v_created integer := 0;
    v_moved ipintel.session_summaries[];
    v_grant record;
BEGIN
    FOR v_month IN
        SELECT DISTINCT date_trunc('month', t) FROM unnest(p_times) AS t WHERE t IS NOT NULL ORDER BY 1
    LOOP
        v_name := 'session_summaries_' || to_char(v_month, 'YYYY_MM');
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                              JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                              WHERE i.inhparent = 'ipintel.session_summaries'::regclass AND c.relname = v_name);
        BEGIN
            -- The month's sessions that wait in the default partition move into the new one (the
            -- default partition may not hold a row of a range that has a partition). Normally none.
            WITH moved AS (
                DELETE FROM ipintel.session_summaries_default d
                WHERE d.first_event_at >= v_month AND d.first_event_at < v_month + interval '1 month'
                RETURNING d.*)
            SELECT array_agg(ROW(m.*)::ipintel.session_summaries) INTO v_moved FROM moved m;
            -- fillfactor 40: room on each page for the versions take_snapshots writes (revision 0038).
            EXECUTE format('CREATE TABLE ipintel.%I PARTITION OF ipintel.session_summaries FOR VALUES FROM (%L) TO (%L) '
                           'WITH (fillfactor = 40)', v_name, v_month, v_month + interval '1 month');
            EXECUTE format('COMMENT ON TABLE ipintel.%I IS %L', v_name,
                           format('Sessions that started in %s (UTC): a partition of session_summaries, made by ensure_session_partitions.',
                                  to_char(v_month, 'YYYY-MM')));
            -- Read as the table is: whoever may read session_summaries may read its partitions.
            FOR v_grant IN
                SELECT a.privilege_type, r.rolname
                FROM pg_catalog.pg_class c
                CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
                JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
                WHERE c.oid = 'ipintel.session_summaries'::regclass AND a.grantee <> c.relowner
            LOOP
                EXECUTE format('GRANT %s ON ipintel.%I TO %I', v_grant.privilege_type, v_name, v_grant.rolname);
            END LOOP;
            INSERT INTO ipintel.session_summaries SELECT * FROM unnest(v_moved);
            v_created := v_created + 1;
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            RAISE WARNING 'partition % of ipintel.session_summaries not made now (%): its sessions wait in session_summaries_default until a later call',
                v_name, SQLERRM;
        END;
    END LOOP;
    RETURN v_created;
END;
$$;
COMMENT ON FUNCTION ipintel.ensure_session_partitions(timestamptz[]) IS
    'Makes the monthly partition of session_summaries (session_summaries_YYYY_MM, UTC months) for the month of each of p_times that has none, moving that month''s sessions out of session_summaries_default; comments it and grants it as session_summaries is; fillfactor 40 (room for take_snapshots'' HOT updates). A month whose locks it cannot take within a second is left for a later call (its sessions wait in the default partition). Returns the partitions made. Called by merge_cowrie_events for every chunk.';

-- This month's and the next month's partitions (merge_cowrie_events keeps them coming).
SELECT ipintel.ensure_session_partitions(ARRAY[now(), now() + interval '1 month']);

------------------------------------------------------------------------------------------
-- ip_asn_history
------------------------------------------------------------------------------------------
CREATE TABLE ipintel.ip_asn_history (
    history_id  bigint      GENERATED ALWAYS AS IDENTITY,
    ip          inet        NOT NULL,
    asn         bigint,
    valid       tstzrange   NOT NULL,
    source      text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ip_asn_history_pkey PRIMARY KEY (history_id),
    CONSTRAINT ip_asn_history_valid_is_not_empty CHECK (NOT isempty(valid) AND lower(valid) IS NOT NULL),
    CONSTRAINT ip_asn_history_ip_is_host_address CHECK (masklen(ip) = CASE family(ip) WHEN 4 THEN 32 ELSE 128 END),
    -- Closed ranges only, keyed on inet_key(ip) (btree_gist's uuid opclass), never on ip with its
    -- inet opclass; open ranges: ip_asn_history_open_range_idx and the statement triggers below.
    CONSTRAINT ip_asn_history_closed_ranges_do_not_overlap
        EXCLUDE USING gist (ipintel.inet_key(ip) WITH =, valid WITH &&) WHERE (NOT upper_inf(valid))
);
COMMENT ON TABLE ipintel.ip_asn_history IS
    'Which ASN announced an IP over which time range. One IP''s ranges never overlap; the open range (upper bound infinite) is the current one.';
COMMENT ON COLUMN ipintel.ip_asn_history.ip IS 'Source IP (ip_inventory.ip).';
COMMENT ON COLUMN ipintel.ip_asn_history.asn IS 'Origin ASN during the range; NULL means allocated but not routed (Team Cymru NA).';
COMMENT ON COLUMN ipintel.ip_asn_history.valid IS 'Range during which the ASN was observed for the IP: [first observation, next change).';
COMMENT ON COLUMN ipintel.ip_asn_history.source IS 'Source that observed the ASN: cymru or maxmind.';
COMMENT ON CONSTRAINT ip_asn_history_ip_is_host_address ON ipintel.ip_asn_history IS
    'ip is a host address (as in ip_inventory), so equal inet_key(ip) (the address bytes, netmask ignored) means equal ip: the exclusion constraint relies on it.';
COMMENT ON CONSTRAINT ip_asn_history_closed_ranges_do_not_overlap ON ipintel.ip_asn_history IS
    'Closed ranges of one IP never overlap. Keyed on inet_key(ip) (btree_gist uuid opclass, exact), not on ip: btree_gist''s inet opclass is lossy and deprecated upstream, and queries on ip cannot pick this GiST index (they use ip_asn_history_ip_idx). Open ranges are left out (a first enrichment writes one per IP: a GiST entry each cost 45 us of the 60 us of a row): at most one per IP (ip_asn_history_open_range_idx), and the statement triggers ip_asn_history_ranges_do_not_overlap_* refuse any open range that overlaps another range of its IP; ipintel.verify_integrity checks all pairs again.';
CREATE INDEX ip_asn_history_ip_idx ON ipintel.ip_asn_history (ip);
COMMENT ON INDEX ipintel.ip_asn_history_ip_idx IS 'Every range of an IP (=, joins, the foreign key to ip_inventory): a btree, so lookups by ip never go through GiST.';
CREATE INDEX ip_asn_history_asn_idx ON ipintel.ip_asn_history (asn);
CREATE UNIQUE INDEX ip_asn_history_open_range_idx ON ipintel.ip_asn_history (ip) WHERE upper_inf(valid);
COMMENT ON INDEX ipintel.ip_asn_history_open_range_idx IS 'The current (open) range of an IP: at most one, found fast by every merge.';

-- An open range must not overlap any other range of its IP. Checked once per statement, on the
-- rows it wrote (a join through ip_asn_history_ip_idx), instead of a GiST entry per open range.
-- Writers of one IP are serialised by lock_for_merge (its ip_inventory row), so a concurrent
-- writer cannot slip an overlap between the check and the commit.
CREATE FUNCTION ipintel.asn_ranges_do_not_overlap()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = ''
AS $$
DECLARE
    v_ip inet;
BEGIN
    SELECT w.ip INTO v_ip
    FROM written w
    JOIN ipintel.ip_asn_history h ON h.ip = w.ip AND h.history_id <> w.history_id AND h.valid && w.valid
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ip_asn_history: two ranges of % overlap', v_ip
            USING ERRCODE = 'exclusion_violation', SCHEMA = 'ipintel', TABLE = 'ip_asn_history',
                  CONSTRAINT = 'ip_asn_history_ranges_do_not_overlap';
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION ipintel.asn_ranges_do_not_overlap() IS
    'Statement trigger function: refuses (exclusion_violation) a statement that leaves a range it wrote overlapping another range of the same IP in ip_asn_history.';
CREATE TRIGGER ip_asn_history_ranges_do_not_overlap_insert
    AFTER INSERT ON ipintel.ip_asn_history
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT
    EXECUTE FUNCTION ipintel.asn_ranges_do_not_overlap();
COMMENT ON TRIGGER ip_asn_history_ranges_do_not_overlap_insert ON ipintel.ip_asn_history IS
    'With ip_asn_history_closed_ranges_do_not_overlap: no two ranges of one IP overlap (inserted rows).';
CREATE TRIGGER ip_asn_history_ranges_do_not_overlap_update
    AFTER UPDATE ON ipintel.ip_asn_history
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT
    EXECUTE FUNCTION ipintel.asn_ranges_do_not_overlap();
COMMENT ON TRIGGER ip_asn_history_ranges_do_not_overlap_update ON ipintel.ip_asn_history IS
    'With ip_asn_history_closed_ranges_do_not_overlap: no two ranges of one IP overlap (updated rows).';
