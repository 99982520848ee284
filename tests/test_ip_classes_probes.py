"""ip_classes looks up what depends on the address alone once per IP, not once per (ip, day).

A session snapshot asks ip_classes for an IP on each day it was seen (the bench's 2M sessions:
about 1M (ip, day) tuples of 300K IPs). The range lists' GiST probe, the bogon test and the
sources' answers depend on the address alone, so revision 0045 makes them once per distinct IP,
and skips the probe while no range list has a snapshot for any day asked. Captured with
auto_explain (JSON, nested statements, actual loops): how many times listed_ranges was read.
The classes themselves are checked by tests/sql/ip_classes (pgTAP); here one IP's class on each
day must still follow that day's snapshot.

The day itself counts only through each list's snapshot of it, so revision 0063 classifies an IP
once per run of days on which every list has the same snapshot (an epoch), not once per day: the
keys classified (CTE q) are counted too.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg

from tests.explain import nested_plans, nodes

DAYS = 30
FIRST = date(2026, 10, 1)
TOR_DAY = FIRST + timedelta(days=20)  # the Tor list's only snapshot, naming the IP


def ctes(plan: dict[str, Any]) -> set[str]:
    """The CTEs a plan scans."""
    found = {plan["CTE Name"]} if "CTE Name" in plan else set()
    return found.union(*(ctes(child) for child in plan.get("Plans", [])))


def probes(plan: dict[str, Any]) -> int:
    """How many times listed_ranges was read (loops of its scans) in one plan."""
    found = plan.get("Actual Loops", 1) if plan.get("Relation Name") == "listed_ranges" else 0
    return found + sum(probes(child) for child in plan.get("Plans", []))


def cte_rows(plan: dict[str, Any], name: str) -> int:
    """The rows the CTE `name` produced in one plan (ANALYZE)."""
    found = [n["Actual Rows"] for n in nodes(plan) if n.get("Subplan Name") == f"CTE {name}"]
    assert len(found) == 1, f"CTE {name} not in the plan"
    return int(found[0])


def classify(conn: psycopg.Connection, ip: str) -> tuple[list[tuple[date, str]], int, int]:
    """The class of ip on each of the DAYS days, the listed_ranges reads of the call and the keys it classified."""
    with nested_plans(conn, actual_loops=True) as plans:
        rows = conn.execute(
            "SELECT c.day, c.ip_type FROM ipintel.ip_classes("
            "  array_fill(%(ip)s::inet, ARRAY[%(n)s]),"
            "  ARRAY(SELECT %(first)s::date + g FROM generate_series(0, %(n)s - 1) g),"
            "  array_fill(64500::bigint, ARRAY[%(n)s]), array_fill('maxmind'::text, ARRAY[%(n)s])) c "
            "ORDER BY c.day", {"ip": ip, "n": DAYS, "first": FIRST}).fetchall()
    # A BEGIN ATOMIC body has no query text: ip_classes' statement is the plan that scans its CTEs
    inner = [c for c in plans if {"q", "lists"} <= ctes(c["Plan"])]
    assert len(inner) == 1, "ip_classes' statement not captured"
    return rows, probes(inner[0]["Plan"]), cte_rows(inner[0]["Plan"], "q")


def test_the_ranges_are_probed_once_per_ip_and_not_at_all_without_a_snapshot(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        # No range list has a snapshot yet: nothing to probe.
        rows, reads, keys = classify(conn, "185.220.101.7")
        assert [t for _, t in rows] == ["routed"] * DAYS
        assert reads == 0
        # Every day alike (no list has a snapshot): one key for the 30 days (before 0063: 30).
        assert keys == 1
        # One Tor exit list snapshot, taken on TOR_DAY, naming the IP; an AWS range elsewhere.
        [(batch,)] = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchall()
        conn.execute("INSERT INTO ipintel_staging.listed_ranges (batch_id, prefix, service, region) "
                     "VALUES (%s, '185.220.101.7/32', '', '')", (batch,))
        conn.execute("SELECT ipintel.load_range_snapshot('tor_bulk_exit_list', %s, 'test', %s)", (TOR_DAY, batch))
        [(batch,)] = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchall()
        conn.execute("INSERT INTO ipintel_staging.listed_ranges (batch_id, prefix, service, region) "
                     "VALUES (%s, '3.0.0.0/9', '', 'us-east-1')", (batch,))
        conn.execute("SELECT ipintel.load_range_snapshot('aws', %s, 'test', %s)", (FIRST, batch))
        rows, reads, keys = classify(conn, "185.220.101.7")
        # Each day's snapshot decides: before the list's snapshot, and once it is older than the
        # list's max_age (7 days), the IP is only routed.
        tor_days = {TOR_DAY + timedelta(days=d) for d in range(8)}
        assert rows == [(day, "tor" if day in tor_days else "routed")
                        for day in (FIRST + timedelta(days=d) for d in range(DAYS))]
        # One probe for the one IP, not one per day (before 0045: 30).
        assert reads == 1
        # Two epochs: the days on which the Tor list's snapshot counts, and the others (before it,
        # and after its max_age: the same snapshots, aws's and none of Tor's).
        assert keys == 2
