"""A merge reads the inventory by one index probe per IP of its batch, never by a scan of it.

Revision 0049: lock_for_merge.

Ingest chunks and every merge_batch call it first. With `ip = ANY (p_ips)` the planner chose a
sequential scan of the whole inventory as soon as a batch was a few percent of it (ip_inventory
twice, enrichment_state once), so each batch cost in proportion to the inventory. Here a batch is
two thirds of a small inventory, where that plan is the planner's choice: the statements of
lock_for_merge must still read ip_inventory and enrichment_state by index only, one probe per IP,
and lock the same rows as before: the batch's IPs, and the ASNs given, current or said by a source.
"""

from __future__ import annotations

from typing import Any

import psycopg

from tests.explain import nested_plans, nodes

INVENTORY = 3_000
BATCH = 2_000

SEED = f"""
INSERT INTO ipintel.asn_inventory (asn) SELECT 64500 + g FROM generate_series(0, 29) g;
INSERT INTO ipintel.ip_inventory (ip, current_asn, first_seen, last_seen)
SELECT '45.0.0.0'::inet + g * 7, CASE WHEN g % 10 = 0 THEN 64500 + g % 20 END, now(), now()
FROM generate_series(1, {INVENTORY}) g;
-- what a source said: ASNs 64520..64529 for some IPs, none of them current
INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, changed_at, asn, asn_observed)
SELECT '45.0.0.0'::inet + g * 7, 'maxmind', now(), now(), 64520 + g % 10, true
FROM generate_series(1, {INVENTORY}, 3) g;
ANALYZE ipintel.asn_inventory, ipintel.ip_inventory, ipintel.enrichment_state;
"""
BATCH_IPS = f"SELECT array_agg('45.0.0.0'::inet + g * 7 ORDER BY g) FROM generate_series(1, {BATCH}) g"


def locked(db: str, table: str, key: str) -> set[Any]:
    """The rows of `table` another transaction cannot lock FOR UPDATE now (held by a lock_for_merge)."""
    with psycopg.connect(db) as other:
        free = {r[0] for r in other.execute(f"SELECT {key} FROM ipintel.{table} FOR UPDATE SKIP LOCKED")}
        every = {r[0] for r in other.execute(f"SELECT {key} FROM ipintel.{table}")}
        other.rollback()
    return every - free


def test_a_large_batch_is_locked_by_index_probes_and_the_same_rows(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SEED)
    with psycopg.connect(db) as conn:
        ips = conn.execute(BATCH_IPS).fetchone()
        assert ips is not None
        with nested_plans(conn, actual_loops=True) as plans:
            conn.execute("SELECT ipintel.lock_for_merge(%s, ARRAY[64529]::bigint[])", (ips[0],))
        scans = [(n["Node Type"], n.get("Relation Name"), n.get("Actual Loops", 0) * n.get("Actual Rows", 0))
                 for p in plans for n in nodes(p["Plan"]) if n.get("Relation Name") in {"ip_inventory", "enrichment_state"}]
        # Before 0049: Seq Scan on ip_inventory (twice) and on enrichment_state.
        assert scans and all(kind in {"Index Scan", "Index Only Scan"} for kind, _, _ in scans), scans
        # one probe per IP: the batch's rows, each read once
        assert sum(rows for _, table, rows in scans if table == "ip_inventory") == BATCH

        held_ips = locked(db, "ip_inventory", "host(ip)")
        held_asns = locked(db, "asn_inventory", "asn")
        expected_asns = {r[0] for r in conn.execute(
            "SELECT current_asn FROM ipintel.ip_inventory WHERE ip = ANY (%(ips)s) AND current_asn IS NOT NULL "
            "UNION SELECT asn FROM ipintel.enrichment_state WHERE ip = ANY (%(ips)s) UNION SELECT 64529",
            {"ips": ips[0]})}
        conn.rollback()
    assert held_ips == {str(ip) for ip in ips[0]}
    assert held_asns == expected_asns
    assert 64529 in held_asns and len(expected_asns) > 10  # given, current and said ASNs all present


def test_an_ingest_chunk_finds_its_enriched_ips_by_probe(db: str) -> None:
    """Revision 0051: the chunk's IPs some source answered (whose snapshots it takes) are found by
    one probe per IP; as a semi-join the planner hashed all of enrichment_state for every chunk."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SEED)
    chunk = ("INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor) "
             "SELECT -5, g, 'cowrie.session.connect', now() - interval '1 hour', 's' || g, '45.0.0.0'::inet + g * 7, 'hp1' "
             "FROM generate_series(1, 30) g")
    with psycopg.connect(db) as conn:
        conn.execute(chunk)
        with nested_plans(conn, actual_loops=True) as plans:
            conn.execute("SELECT * FROM ipintel.merge_cowrie_events(-5)")
        conn.commit()
    [found] = [p for p in plans if p["Query Text"].lstrip().startswith("v_enriched_ips")]
    state = [(n["Node Type"], n.get("Actual Loops", 0))
             for n in nodes(found["Plan"]) if n.get("Relation Name") == "enrichment_state"]
    # Before 0051: [('Seq Scan', 1000)], every answer read for a chunk of 30 IPs
    assert state and all(kind in {"Index Scan", "Index Only Scan"} for kind, _ in state), state
    assert sum(loops for _, loops in state) == 30  # a probe per IP of the chunk
    # and the IPs found: the 10 of the 30 a source answered (every third)
    assert [n["Actual Rows"] for n in nodes(found["Plan"]) if n["Node Type"] == "Nested Loop"] == [10]
