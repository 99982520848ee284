"""Index scans on ip must find every row a sequential scan finds (issue 9, item 3).

GiST index scans on ip_inventory.ip lost live rows: GiST's LP_DEAD hinting marked the leaf
entry of a live row dead when a statement updated the table through a GiST scan of its own
index (an inner-unique nested loop), so `=` lookups, the foreign-key check and `<<=` scans
skipped it until a REINDEX. Both inet opclasses did it (in-core inet_ops and btree_gist's
gist_inet_ops). Since revision 0010 lookups by ip go through btrees only, and the one GiST
index left on ip_asn_history is keyed on host(ip), which no query on ip can use.

These tests churn the tables the way ingest and enrich do (random IPv4 and IPv6 inserts,
non-HOT updates driven by nested-loop index scans, address moves), each round in its own
transaction so that old versions die and scans hint them dead, then compare every index
path with a sequential scan: `=` for every row, `<<=` for random networks, and the exclusion
constraint for every range. All data is generated in SQL from a fixed seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

# IPs asked for (half IPv4, half IPv6, a quarter of them in /64 clusters; duplicates dropped).
# Two sizes: a few thousand IPs keep a GiST index on ip two levels deep, the shape in which the
# old index lost rows within a few rounds (checked against the 0009 schema); tens of thousands
# for volume (slow: the whole file takes about 20 s, this and the history test most of it).
INVENTORY_SIZES = [6_000, pytest.param(40_000, marks=pytest.mark.slow)]
NETWORKS = 300  # random networks for <<=, plus a few fixed ones
HISTORY_IPS = 6_000  # IPs with ASN history, 4 to 8 ranges each
HISTORY_NETWORKS = 120  # fewer: the same btree mechanism as ip_inventory's
UPDATE_ROUNDS = 4

# Plans are forced by switching scan types off: a disabled scan type costs 1e10 and so is only
# chosen when nothing else can answer (what the EXPLAIN assertions below make sure of). An
# index-only scan is costed as an index scan (enable_indexscan must stay on) and wins over it
# once the table is vacuumed, which the index-only mode does first; it comes last.
SEQ_ONLY = "SET enable_seqscan = on; SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off"
SCAN_MODES = {
    "index scan": "SET enable_seqscan = off; SET enable_indexscan = on; SET enable_indexonlyscan = off; SET enable_bitmapscan = off",
    "bitmap scan": "SET enable_seqscan = off; SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = on",
    "index-only scan": "SET enable_seqscan = off; SET enable_indexscan = on; SET enable_indexonlyscan = on; SET enable_bitmapscan = off",
}
SCAN_NODES = {"index scan": "Index Scan using", "bitmap scan": "Bitmap Index Scan on",
              "index-only scan": "Index Only Scan using"}
NESTED_LOOPS_ONLY = "SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off; SET enable_tidscan = off"
RESET = "RESET enable_seqscan; RESET enable_indexscan; RESET enable_indexonlyscan; RESET enable_bitmapscan; " \
        "RESET enable_hashjoin; RESET enable_mergejoin; RESET enable_material; RESET enable_tidscan"

# Random host addresses, no IPv4-mapped IPv6 (ip_inventory refuses those): IPv4 anywhere,
# IPv6 with random upper 64 bits, and IPv6 clusters of 20 addresses sharing a /64 and
# differing only in their lowest bits (what one scanning host in a /64 looks like).
POPULATE_INVENTORY = """
SELECT setseed(0.42);
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count)
SELECT a.ip, timestamptz '2026-01-01', timestamptz '2026-01-01', 0
FROM (
    SELECT '0.0.0.0'::inet + floor(random() * 4294967296)::bigint AS ip
    FROM generate_series(1, {n} / 2)
    UNION ALL
    SELECT format('%s:%s:%s:%s::', to_hex(8192 + floor(random() * 8192)::int), to_hex(floor(random() * 65536)::int),
                  to_hex(floor(random() * 65536)::int), to_hex(floor(random() * 65536)::int))::inet
           + floor(random() * 9.2e18)::bigint
    FROM generate_series(1, {n} / 4)
    UNION ALL
    SELECT p.prefix + (p.k * 16 + floor(random() * 16)::int)
    FROM (SELECT format('2a0%s:%s:%s:%s::', floor(random() * 10)::int, to_hex(floor(random() * 65536)::int),
                        to_hex(floor(random() * 65536)::int), to_hex(floor(random() * 65536)::int))::inet AS prefix
          FROM generate_series(1, {n} / 80)) c
    CROSS JOIN LATERAL (SELECT c.prefix, k FROM generate_series(0, 19) AS k) p
) a
ON CONFLICT (ip) DO NOTHING;
"""

# One round of ingest-like churn: new addresses arrive (a 20th of the table), and a random
# third of the rows, listed in random order in a staging table, get a non-HOT update (last_seen
# is indexed) found through a nested loop over the index on ip: merge_cowrie_events' pattern,
# the one that lost GiST entries.
CHURN_ROUND = """
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen)
SELECT CASE WHEN random() < 0.5 THEN '0.0.0.0'::inet + floor(random() * 4294967296)::bigint
            ELSE '2a0a::'::inet + floor(random() * 9.2e18)::bigint END,
       timestamptz '2026-01-01', timestamptz '2026-01-01'
FROM generate_series(1, {new})
ON CONFLICT (ip) DO NOTHING;
CREATE TEMP TABLE picks AS SELECT ip FROM ipintel.ip_inventory WHERE random() < 0.35 ORDER BY random();
UPDATE ipintel.ip_inventory i
SET session_count = i.session_count + 1, last_seen = i.last_seen + interval '1 hour', updated_at = now()
FROM picks p
WHERE i.ip = p.ip;
DROP TABLE picks;
"""

# Address moves (ip itself updated): IPv4 rows below 128.0.0.0 with a random pick move up by
# 2^31 unless the target is taken; IPv6 rows in 2a00::/12 move to 2c00::/12 the same way.
MOVE_ADDRESSES = """
UPDATE ipintel.ip_inventory i SET ip = m.new_ip
FROM (SELECT ip, CASE family(ip) WHEN 4 THEN ip + 2147483648
                 ELSE ('2c' || substr(host(ip), 3))::inet END AS new_ip
      FROM ipintel.ip_inventory
      WHERE random() < 0.1
        AND ((family(ip) = 4 AND ip < '128.0.0.0'::inet) OR ip <<= '2a00::/12'::inet)) m
WHERE i.ip = m.ip AND NOT EXISTS (SELECT 1 FROM ipintel.ip_inventory t WHERE t.ip = m.new_ip);
"""

# Random networks around existing addresses, of every prefix length that makes sense.
NETWORKS_SQL = """
SELECT setseed(0.17);
CREATE TEMP TABLE nets AS
SELECT DISTINCT network(set_masklen(ip, CASE family(ip) WHEN 4 THEN 4 + floor(random() * 29)::int
                                                      ELSE 8 + floor(random() * 121)::int END)) AS net
FROM (SELECT ip FROM {table} ORDER BY random() LIMIT {n}) s
UNION SELECT unnest(ARRAY['0.0.0.0/0', '::/0', '128.0.0.0/1', '2a00::/12', '2c00::/12', '::/96']::inet[]);
"""

# Per-network counts through whatever plan the current settings allow; the network is a
# literal so that the planner can turn `<<=` into a btree range (network_subset_support).
COUNT_PER_NETWORK = """
DO $$
DECLARE
    n inet;
    c bigint;
BEGIN
    FOR n IN SELECT net FROM nets LOOP
        EXECUTE format('SELECT count(*) FROM {table} WHERE ip <<= %L::inet', n) INTO c;
        INSERT INTO net_counts VALUES (%(mode)s, n, c);
    END LOOP;
END $$;
"""


@pytest.fixture(params=INVENTORY_SIZES, ids=["6000-ips", "40000-ips"])
def churned(db: str, request: pytest.FixtureRequest) -> Iterator[tuple[psycopg.Connection, int]]:
    """A database whose ip_inventory went through inserts, updates and moves, round by round."""
    size: int = request.param
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(POPULATE_INVENTORY.format(n=size))
        conn.execute(NESTED_LOOPS_ONLY)
        conn.execute("SET enable_seqscan = off")
        for _ in range(UPDATE_ROUNDS):  # a transaction per round: old versions die in between
            conn.execute(CHURN_ROUND.format(new=size // 20))
            conn.execute(MOVE_ADDRESSES)
        conn.execute(RESET)
        yield conn, size


def _explain(conn: psycopg.Connection, query: str) -> str:
    return "\n".join(r[0] for r in conn.execute("EXPLAIN (COSTS OFF) " + query))


def _rows_missed_by_index(conn: psycopg.Connection, table: str, index: str, key: str,
                          index_only: bool = True, rows: str = "true") -> dict[str, int]:
    """Rows a sequential scan finds (those where `rows` holds: a partial index's predicate) that a
    nested loop through `index` on `key` does not, per scan mode: the very row (ctid), and any
    matching row (EXISTS, index-only scans too)."""
    conn.execute(SEQ_ONLY)
    conn.execute(f"CREATE TEMP TABLE truth AS SELECT ctid AS tid, ip FROM {table} WHERE {rows}")
    conn.execute("ANALYZE truth")
    match = key.format(x="x", t="t")
    queries = {
        "row": f"SELECT count(*) FROM truth t WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE {match} AND x.ctid = t.tid)",
        "any": f"SELECT count(*) FROM truth t WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE {match})",
    }
    missed = {}
    for mode, settings in SCAN_MODES.items():
        for what, query in queries.items():
            if mode == "index-only scan" and (what == "row" or not index_only):
                continue  # ctid is not in the index; an expression index cannot answer `ip` alone
            if mode == "index-only scan":
                conn.execute(f"VACUUM (ANALYZE) {table}")
            conn.execute(settings)
            conn.execute(NESTED_LOOPS_ONLY)  # truth, with no index, is still read by a (disabled) seq scan
            plan = _explain(conn, query)
            assert f"{SCAN_NODES[mode]} {index}" in plan and f"Seq Scan on {table.split('.')[1]}" not in plan, plan
            missed[f"{mode}, {what}"] = conn.execute(query).fetchone()[0]  # type: ignore[index]  # count(*): one row
    conn.execute(RESET)
    conn.execute("DROP TABLE truth")
    return missed


def _network_counts_disagree(conn: psycopg.Connection, table: str, index: str,
                             networks: int = NETWORKS) -> list[tuple[str, str, int, int]]:
    conn.execute(NETWORKS_SQL.format(table=table, n=networks))
    conn.execute("CREATE TEMP TABLE net_counts (mode text, net inet, n bigint)")
    conn.execute(SEQ_ONLY)
    conn.execute(COUNT_PER_NETWORK.format(table=table).replace("%(mode)s", "'seq'"))
    for mode, settings in SCAN_MODES.items():
        conn.execute(settings)
        for sample in ("198.51.100.0/22", "2a00::/12"):
            plan = _explain(conn, f"SELECT count(*) FROM {table} WHERE ip <<= '{sample}'::inet")
            assert f"{SCAN_NODES[mode]} {index}" in plan and "Seq Scan" not in plan, plan
        conn.execute(COUNT_PER_NETWORK.format(table=table).replace("%(mode)s", f"'{mode}'"))
    conn.execute(RESET)
    rows = conn.execute(
        """SELECT i.mode, s.net::text, s.n, i.n FROM net_counts s JOIN net_counts i USING (net)
           WHERE s.mode = 'seq' AND i.mode <> 'seq' AND i.n <> s.n ORDER BY 1, 2""").fetchall()
    checked = conn.execute("SELECT count(*), sum(n) FROM net_counts WHERE mode = 'seq'").fetchone()
    assert checked is not None and checked[0] >= networks // 2 and checked[1] > 0, checked
    conn.execute("DROP TABLE nets, net_counts")
    return rows


def test_no_gist_index_and_no_btree_gist_inet_opclass_in_the_schema(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        """SELECT c.relname, am.amname, opc.opcname
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_am am ON am.oid = c.relam
           CROSS JOIN LATERAL unnest(i.indclass::oid[]) AS k(opclass)
           JOIN pg_opclass opc ON opc.oid = k.opclass
           WHERE n.nspname LIKE 'ipintel%%' AND am.amname = 'gist'
           ORDER BY 1, 3""").fetchall()
    # The exclusion constraint's index (inet_key(ip) as uuid with btree_gist, and the range), and
    # the lookups' indexes of geolocation builds (ranges that are not prefixes) on ip4r's own
    # iprange type (its opclass, not btree_gist's inet one). Routing history's and range lists'
    # are SP-GiST since revisions 0082 and 0083 (below).
    assert rows == [("geo_asns_network_range_idx", "gist", "gist_iprange_ops"),
                    ("geo_countries_network_range_idx", "gist", "gist_iprange_ops"),
                    ("ip_asn_history_closed_ranges_do_not_overlap", "gist", "gist_uuid_ops"),
                    ("ip_asn_history_closed_ranges_do_not_overlap", "gist", "range_ops")]


# Nested and overlapping prefixes of every length, IPv4 and IPv6, loaded as a snapshot of the day
# %(day)s; each day (by hash) a twentieth of the prefixes is left out and a twentieth is given
# another origin, so that loads after the first close runs, open new ones and move them (updates of
# prefix_origins through its indexes, as daily loads do).
RANDOM_ROUTES = """
WITH b AS (SELECT nextval('ipintel_staging.batch_id_seq') AS id), staged AS (
    INSERT INTO ipintel_staging.routing_prefixes (batch_id, prefix, asn)
    SELECT DISTINCT ON (p) b.id, p, 64512 + g %% 1000 + (abs(hashtext(p::text || %(day)s::text)::bigint) %% 20 = 0)::int
    FROM b, generate_series(1, 20000) g,
         LATERAL (SELECT CASE WHEN g %% 5 = 0
                              THEN set_masklen(('2a00::'::inet + (abs(hashtext('v6' || g)::bigint) * 232831)::bigint), 20 + (g %% 44))
                              ELSE set_masklen(('11.0.0.0'::inet + (abs(hashtext('v4' || g)::bigint) %% 16777215)::bigint), 8 + (g %% 25))
                         END::cidr AS p) x
    WHERE abs(hashtext(g::text || %(day)s::text)::bigint) %% 20 <> 0
    RETURNING batch_id)
SELECT ipintel.load_routing_snapshot('routeviews', current_date - 3 + %(day)s, 'random-' || %(day)s,
                                     (SELECT min(batch_id) FROM staged))
"""


def test_routing_spgist_finds_every_prefix_a_scan_finds(conn: psycopg.Connection) -> None:
    """The SP-GiST index on prefix_origins.prefix (revision 0082) answers containment exactly as a
    sequential scan, after loads that close, open and move runs; and routing_asns, which probes it,
    answers as the same lookup by scan."""
    for day in range(3):
        conn.execute(RANDOM_ROUTES, {"day": day})
    runs = conn.execute("SELECT count(*), count(*) FILTER (WHERE upper(valid) IS NOT NULL) "
                        "FROM ipintel.prefix_origins").fetchone()
    assert runs is not None and runs[0] > 10000 and runs[1] > 1000, runs  # runs were closed
    conn.execute("CREATE TEMP TABLE probes AS "
                 "SELECT '11.0.0.0'::inet + (abs(hashtext('p' || g)::bigint) % 16777215)::bigint AS ip FROM generate_series(1, 1500) g "
                 "UNION ALL SELECT '2a00::'::inet + (abs(hashtext('q' || g)::bigint) * 232831)::bigint FROM generate_series(1, 500) g")
    probe = """SELECT q.ip, array_agg(o.prefix::text || ' ' || o.asn || ' ' || o.valid::text ORDER BY o.prefix, o.asn, o.valid)
               FROM probes q
               JOIN ipintel.prefix_origins o ON o.prefix OPERATOR(pg_catalog.>>=) q.ip
               GROUP BY q.ip ORDER BY q.ip"""
    # Attack-time ASNs of every probe on each loaded day, by routing_asns (the index), against the
    # longest prefix of the day's run found by a scan, its smallest origin. Both arrays are in IP
    # order, so they stay aligned (an IP's three days may come in any order: the same pairs).
    asns = """SELECT r.ip, r.day, r.asn, r.prefix::text
              FROM ipintel.routing_asns(ARRAY(SELECT q.ip FROM probes q CROSS JOIN generate_series(0, 2) d ORDER BY q.ip),
                                        ARRAY(SELECT current_date - 3 + d FROM probes q CROSS JOIN generate_series(0, 2) d
                                              ORDER BY q.ip)) r
              ORDER BY 1, 2"""
    by_scan_asns = """SELECT DISTINCT ON (q.ip, d.day) q.ip, d.day, o.asn, o.prefix::text
                      FROM probes q
                      CROSS JOIN (SELECT current_date - 3 + d AS day FROM generate_series(0, 2) d) d
                      JOIN ipintel.prefix_origins o ON o.prefix OPERATOR(pg_catalog.>>=) q.ip AND o.valid @> d.day
                      ORDER BY q.ip, d.day, masklen(o.prefix) DESC, o.asn"""
    conn.execute("SET enable_seqscan = off")
    by_index = conn.execute(probe).fetchall()
    assert "prefix_origins_prefix_idx" in _explain(conn, probe)
    asns_by_index = conn.execute(asns).fetchall()
    conn.execute("SET enable_seqscan = on")
    conn.execute("SET enable_indexscan = off")
    conn.execute("SET enable_bitmapscan = off")
    by_scan = conn.execute(probe).fetchall()
    assert "prefix_origins_prefix_idx" not in _explain(conn, probe)
    asns_by_scan = conn.execute(by_scan_asns).fetchall()
    assert len(by_scan) > 1000
    assert by_index == by_scan
    assert len(asns_by_scan) > 3000
    assert asns_by_index == asns_by_scan


# The same for a range list: nested and overlapping ranges, IPv4 and IPv6, one snapshot.
RANDOM_RANGES = """
WITH b AS (SELECT nextval('ipintel_staging.batch_id_seq') AS id), staged AS (
    INSERT INTO ipintel_staging.listed_ranges (batch_id, prefix, service, region)
    SELECT DISTINCT ON (p) b.id, p, '', ''
    FROM b, generate_series(1, 20000) g,
         LATERAL (SELECT CASE WHEN g % 5 = 0
                              THEN set_masklen(('2a00::'::inet + (random() * 1e15)::bigint), 20 + (g % 44))
                              ELSE set_masklen(('11.0.0.0'::inet + (random() * 16777215)::bigint), 8 + (g % 25))
                         END::cidr AS p) x
    RETURNING batch_id)
SELECT ipintel.load_range_snapshot('aws', current_date, 'random', (SELECT min(batch_id) FROM staged))
"""


def test_range_list_spgist_finds_every_range_a_scan_finds(conn: psycopg.Connection) -> None:
    """The SP-GiST index on listed_ranges.prefix (ip_classes' one probe per IP, revision 0083)
    answers containment exactly as a sequential scan."""
    conn.execute("SELECT setseed(0.29)")
    conn.execute(RANDOM_RANGES)
    probe = """SELECT q.ip, array_agg(o.prefix::text ORDER BY o.prefix)
               FROM (SELECT '11.0.0.0'::inet + (random() * 16777215)::bigint AS ip FROM generate_series(1, 1500)
                     UNION ALL
                     SELECT '2a00::'::inet + (random() * 1e15)::bigint FROM generate_series(1, 500)) q
               JOIN ipintel.listed_ranges o ON o.prefix OPERATOR(pg_catalog.>>=) q.ip
               GROUP BY q.ip ORDER BY q.ip"""
    conn.execute("SET enable_seqscan = off")
    conn.execute("SELECT setseed(0.5)")
    by_index = conn.execute(probe).fetchall()
    assert "listed_ranges_prefix_idx" in _explain(conn, probe)
    conn.execute("SET enable_seqscan = on")
    conn.execute("SET enable_indexscan = off")
    conn.execute("SET enable_bitmapscan = off")
    conn.execute("SELECT setseed(0.5)")
    by_scan = conn.execute(probe).fetchall()
    assert len(by_scan) > 1000
    assert by_index == by_scan


def test_btree_primary_key_serves_network_containment(conn: psycopg.Connection) -> None:
    conn.execute("SET enable_seqscan = off")  # an empty table: ask whether the btree can, not whether it pays
    for net, upper in (("198.51.100.0/22", "198.51.103.255"), ("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")):
        plan = _explain(conn, f"SELECT ip FROM ipintel.ip_inventory WHERE ip <<= '{net}'")
        assert "ip_inventory_pkey" in plan, plan
        assert f"(ip >= '{net}'::inet) AND (ip <= '{upper}'::inet)" in plan, plan
    plan = _explain(conn, "SELECT 1 FROM ONLY ipintel.ip_inventory x WHERE ip OPERATOR(pg_catalog.=) '192.0.2.1' FOR KEY SHARE OF x")
    assert "Index Scan using ip_inventory_pkey" in plan, plan  # the foreign-key check's query


def test_every_ip_inventory_row_is_found_through_the_index(churned: tuple[psycopg.Connection, int]) -> None:
    conn, size = churned
    counts = conn.execute(
        """SELECT count(*), count(*) FILTER (WHERE family(ip) = 6),
                  count(*) FILTER (WHERE session_count > 0), count(*) FILTER (WHERE ip <<= '2c00::/12' OR ip >= '128.0.0.0' AND family(ip) = 4)
           FROM ipintel.ip_inventory""").fetchone()
    assert counts is not None
    total, ipv6, updated, moved_or_high = counts
    assert total > size * 0.95 and ipv6 > total * 0.4 and updated > total * 0.5 and moved_or_high > 0, counts

    missed = _rows_missed_by_index(conn, "ipintel.ip_inventory", "ip_inventory_pkey", "{x}.ip = {t}.ip")
    assert missed == dict.fromkeys(missed, 0), missed

    disagree = _network_counts_disagree(conn, "ipintel.ip_inventory", "ip_inventory_pkey")
    assert disagree == [], disagree[:10]

    # The foreign-key check from session_summaries finds every IP (what failed in issue 9).
    conn.execute(
        """INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
           SELECT 'integrity-' || row_number() OVER (), timestamptz '2026-01-01', timestamptz '2026-01-01', ip
           FROM ipintel.ip_inventory""")


HISTORY_SQL = """
SELECT setseed(0.23);
INSERT INTO ipintel.asn_inventory (asn) SELECT 64500 + g FROM generate_series(0, 99) g;
-- IPv4 addresses, the IPv4-compatible IPv6 address with the same 32 bits (::a.b.c.d), and IPv6
-- addresses in pairs differing only in their lowest bit.
CREATE TEMP TABLE v4 AS
SELECT DISTINCT '0.0.0.0'::inet + (16777216 + floor(random() * 4000000000)::bigint) AS ip FROM generate_series(1, {n} / 4);
CREATE TEMP TABLE hist_ips AS
SELECT DISTINCT ip FROM (
    SELECT ip FROM v4
    UNION ALL
    SELECT ('::' || host(ip))::inet FROM v4
    UNION ALL
    SELECT base + d FROM (SELECT '2a01::'::inet + floor(random() * 4.6e18)::bigint * 2 AS base
                          FROM generate_series(1, {n} / 4)) c CROSS JOIN (VALUES (0), (1)) AS d(d)
) s;
INSERT INTO ipintel.ip_inventory (ip) SELECT ip FROM hist_ips ON CONFLICT DO NOTHING;
-- Four weekly ranges per IP, the last one open, ASNs at random.
INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
SELECT h.ip, 64500 + floor(random() * 100)::int,
       tstzrange(timestamptz '2026-01-01' + w * interval '7 days',
                 CASE WHEN w < 3 THEN timestamptz '2026-01-01' + (w + 1) * interval '7 days' END),
       'cymru'
FROM hist_ips h CROSS JOIN generate_series(0, 3) AS w;
"""

# Enrich-like churn through ipintel.record_asn_history: a random third of the IPs is observed
# in another ASN, closing its open range and opening a new one.
HISTORY_ROUND = """
WITH o AS (
    SELECT ip, 64500 + floor(random() * 100)::bigint AS asn FROM hist_ips WHERE random() < 0.33)
SELECT ipintel.record_asn_history(array_agg('maxmind'::text), array_agg(ip), array_agg(asn),
                                  array_agg(timestamptz '2026-02-01' + {round} * interval '1 day'))
FROM o;
"""

# Every existing range, inserted again for its own IP but shifted by a second: each must be
# refused (one subtransaction per row, counted in the database).
REFUSE_EVERY_OVERLAP = """
CREATE TEMP TABLE overlap_result (refused bigint, accepted bigint);
DO $$
DECLARE
    r record;
    refused bigint := 0;
    accepted bigint := 0;
BEGIN
    FOR r IN SELECT ip, valid FROM ipintel.ip_asn_history LOOP
        BEGIN
            INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
            VALUES (r.ip, NULL, tstzrange(lower(r.valid) + interval '1 second', lower(r.valid) + interval '2 seconds'), 'cymru');
            accepted := accepted + 1;
        EXCEPTION WHEN exclusion_violation THEN
            refused := refused + 1;
        END;
    END LOOP;
    INSERT INTO overlap_result VALUES (refused, accepted);
END $$;
"""


@pytest.mark.slow
def test_ip_asn_history_index_and_exclusion_constraint_hold_under_churn(conn: psycopg.Connection) -> None:
    conn.execute(HISTORY_SQL.format(n=HISTORY_IPS))
    conn.execute(NESTED_LOOPS_ONLY)
    conn.execute("SET enable_seqscan = off")
    for round_ in range(UPDATE_ROUNDS):  # a transaction per round
        conn.execute(HISTORY_ROUND.format(round=round_))
    conn.execute(RESET)
    counts = conn.execute(
        """SELECT count(*), count(DISTINCT ip), count(*) FILTER (WHERE upper_inf(valid)),
                  count(*) FILTER (WHERE source = 'maxmind') FROM ipintel.ip_asn_history""").fetchone()
    assert counts is not None
    rows, ips, open_ranges, observed = counts
    assert ips > HISTORY_IPS * 0.95 and open_ranges == ips and rows > 4 * ips and observed > ips // 2, counts

    missed = _rows_missed_by_index(conn, "ipintel.ip_asn_history", "ip_asn_history_ip_idx", "{x}.ip = {t}.ip")
    assert missed == dict.fromkeys(missed, 0), missed
    # The exclusion constraint's own GiST index (inet_key(ip) uuid, range; closed ranges only)
    # finds every closed range too.
    missed = _rows_missed_by_index(conn, "ipintel.ip_asn_history", "ip_asn_history_closed_ranges_do_not_overlap",
                                   "ipintel.inet_key({x}.ip) = ipintel.inet_key({t}.ip) AND NOT upper_inf({x}.valid)",
                                   index_only=False, rows="NOT upper_inf(valid)")
    assert missed == dict.fromkeys(missed, 0), missed

    disagree = _network_counts_disagree(conn, "ipintel.ip_asn_history", "ip_asn_history_ip_idx", HISTORY_NETWORKS)
    assert disagree == [], disagree[:10]

    conn.execute(REFUSE_EVERY_OVERLAP)
    assert conn.execute("SELECT refused, accepted FROM overlap_result").fetchone() == (rows, 0)

    # Different IPs may overlap, however close: an IPv4 address and the IPv6 address with the
    # same 32 bits (::a.b.c.d), and IPv6 addresses differing only in their lowest bit. Their
    # IPv6 histories are replaced by one and the same week, which also overlaps the first
    # range of every IPv4 twin: one statement, so any refusal fails it.
    pairs = conn.execute(
        """SELECT count(*) FILTER (WHERE family(ip) = 6 AND ip <<= '::/96'
                                    AND ('0.0.0.0'::inet + (ip - '::'::inet)) IN (SELECT ip FROM v4)),
                  count(*) FILTER (WHERE ip <<= '2a01::/16' AND (ip - '2a01::'::inet) % 2 = 1
                                    AND ip - 1 IN (SELECT ip FROM hist_ips))
           FROM hist_ips""").fetchone()
    assert pairs is not None and pairs[0] > HISTORY_IPS // 5 and pairs[1] > HISTORY_IPS // 5, pairs
    conn.execute("DELETE FROM ipintel.ip_asn_history WHERE family(ip) = 6")
    conn.execute(
        """INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
           SELECT h.ip, 64500, tstzrange(timestamptz '2026-01-01', timestamptz '2026-01-08'), 'cymru'
           FROM hist_ips h WHERE family(h.ip) = 6""")
    # ... while the same IP still may not overlap itself.
    with pytest.raises(psycopg.errors.ExclusionViolation):
        conn.execute(
            """INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source)
               SELECT h.ip, 64502, tstzrange(timestamptz '2026-01-02', timestamptz '2026-01-04'), 'cymru'
               FROM hist_ips h WHERE h.ip <<= '2a01::/16' AND (h.ip - '2a01::'::inet) % 2 = 1 LIMIT 1""")
