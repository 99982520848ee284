"""The ASN counts are added to where an ASN only gains, not recounted (revision 0050).

refresh_asn_counts recounts an ASN from every IP whose current_asn it is. Ingest called it for the
ASNs of each chunk's IPs and apply_answers for the ASNs each merged batch moved IPs into, so every
chunk and every batch read the biggest ASNs whole. Now ingest and a merge add what an ASN gains
(add_to_asn_counts), and only an ASN that loses an IP is recounted. Here: the counts stay exactly
those a recount from scratch gives (verify_counts) through ingest, a first enrichment, IPs moving
between ASNs and more ingest; and a chunk, or a batch, that touches a big ASN reads none of its IPs.
"""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg
from psycopg.types.json import Jsonb

from tests.explain import nested_plans, nodes

BIG = 64500  # 400 IPs: 45.1.0.1 .. 45.1.1.144
SMALL = 64501  # 20 IPs: 45.2.0.1 .. 45.2.0.20

# One session per IP and call: ingest makes the IPs (their times are those of their sessions).
CHUNK: LiteralString = """
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
SELECT %(batch)s, n, 'cowrie.session.connect', %(at)s::timestamptz + n * interval '1 second',
       %(tag)s || n, ip, 'hp1'
FROM unnest(%(ips)s::inet[]) WITH ORDINALITY AS u(ip, n)
"""
# MaxMind answers: each IP in the ASN given for its /16 (a dict: first two octets -> ASN)
ANSWERS: LiteralString = """
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, result)
SELECT %(run)s, %(batch)s, 'maxmind', u.ip, now(), %(build)s,
       jsonb_build_object('country', 'NL', 'asn', (%(asns)s::jsonb ->> (host(set_masklen(u.ip, 16)::cidr)))::bigint,
                          'as_org', 'AS-' || (%(asns)s::jsonb ->> (host(set_masklen(u.ip, 16)::cidr))),
                          'asn_db', jsonb_build_object('type', 'GeoLite2-ASN'))
FROM unnest(%(ips)s::inet[]) AS u(ip)
"""


def ips(first: str, n: int) -> list[str]:
    a, b, c, d = (int(x) for x in first.split("."))
    return [f"{a}.{b}.{c + (d + k) // 256}.{(d + k) % 256}" for k in range(n)]


def ingest(conn: psycopg.Connection[Any], addresses: list[str], at: str, tag: str) -> None:
    with conn.transaction():
        batch = conn.execute("SELECT -nextval('ipintel_staging.batch_id_seq')").fetchone()
        assert batch is not None
        conn.execute(CHUNK, {"batch": batch[0], "at": at, "tag": tag, "ips": addresses})
        conn.execute("SELECT * FROM ipintel.merge_cowrie_events(%s)", (batch[0],))


def answer(conn: psycopg.Connection[Any], addresses: list[str], asns: dict[str, int], build: int) -> None:
    with conn.transaction():
        run = conn.execute("SELECT ipintel.start_run('maxmind', '{}'::jsonb)").fetchone()
        batch = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchone()
        assert run is not None and batch is not None
        conn.execute(ANSWERS, {"run": run[0], "batch": batch[0], "build": build, "ips": addresses,
                               "asns": Jsonb(asns)})
        conn.execute("SELECT * FROM ipintel.merge_batch(%s, %s)", (run[0], batch[0]))
        conn.execute("SELECT ipintel.finish_run(%s, 'succeeded', NULL)", (run[0],))


def drift(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM ipintel.verify_counts() WHERE table_name = 'asn_inventory'").fetchall()


def counts(conn: psycopg.Connection[Any], asn: int) -> tuple[Any, ...] | None:
    return conn.execute("SELECT ip_count, session_count FROM ipintel.asn_inventory WHERE asn = %s", (asn,)).fetchone()


def reads_by_asn(plans: list[dict[str, Any]]) -> int:
    """Rows read from ip_inventory through its current_asn index (a recount's reads)."""
    return sum(n.get("Actual Rows", 0) * n.get("Actual Loops", 0) for p in plans for n in nodes(p["Plan"])
               if n.get("Index Name") == "ip_inventory_current_asn_idx")


def test_the_counts_stay_a_recount_through_ingest_enrichment_and_moves(conn: psycopg.Connection[Any]) -> None:
    big, small = ips("45.1.0.1", 400), ips("45.2.0.1", 20)
    ingest(conn, big + small, "2026-11-01 10:00+00", "a")
    answer(conn, big + small, {"45.1.0.0": BIG, "45.2.0.0": SMALL}, 1)  # first enrichment: only gains
    assert drift(conn) == []
    assert counts(conn, BIG) == (400, 400) and counts(conn, SMALL) == (20, 20)

    # more sessions, older and newer than those seen: the ASNs' times widen
    ingest(conn, big[:50] + small[:5], "2026-10-01 10:00+00", "b")
    ingest(conn, big[:10], "2026-11-20 10:00+00", "c")
    assert drift(conn) == []
    assert counts(conn, BIG) == (400, 460)

    # 30 IPs of the big ASN move to the small one, among them the one seen first: both recounted or added
    answer(conn, big[:30], {"45.1.0.0": SMALL}, 2)
    assert drift(conn) == []
    # the 30 carry their 70 sessions (each one of a, one of b, ten of them one of c)
    assert counts(conn, BIG) == (370, 460 - 70) and counts(conn, SMALL) == (50, 25 + 70)
    ingest(conn, big[:40], "2026-11-21 10:00+00", "d")
    assert drift(conn) == []


def test_a_chunk_or_batch_touching_a_big_asn_reads_none_of_its_ips(db: str) -> None:
    big, small = ips("45.1.0.1", 400), ips("45.2.0.1", 20)
    with psycopg.connect(db, autocommit=True) as conn:
        ingest(conn, big + small, "2026-11-01 10:00+00", "a")
        answer(conn, big + small[:10], {"45.1.0.0": BIG, "45.2.0.0": SMALL}, 1)
        conn.execute("ANALYZE ipintel.ip_inventory")
    with psycopg.connect(db, autocommit=True) as conn:
        with nested_plans(conn, actual_loops=True) as chunk_plans:
            ingest(conn, big[:3], "2026-11-02 10:00+00", "b")  # 3 sessions of the big ASN's IPs
        with nested_plans(conn, actual_loops=True) as batch_plans:
            answer(conn, small[10:], {"45.2.0.0": BIG}, 1)  # 10 new IPs join the big ASN
        # Before 0050 each recounted the big ASN: 400 and 410 IPs read.
        assert (reads_by_asn(chunk_plans), reads_by_asn(batch_plans)) == (0, 0)
        assert counts(conn, BIG) == (410, 413)
        assert drift(conn) == []
