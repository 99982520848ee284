"""A merge classifies its batch once, not once per IP (issue 12).

apply_answers classifies the IPs of a batch with one call of ipintel.ip_classes. Joined back to the
batch, that call must run once: the planner cannot see how many IPs its arrays hold, and a first
version that let it choose re-ran the whole classification for every IP of the batch (a
50,000-IP batch in bench.snapshot_step: hours, and tens of GB of temporary files). The fix is in
the shape (the classes are a MATERIALIZED CTE; ip_classes is never inlined). The statement is
captured here with auto_explain (JSON, nested statements, actual loops) on a 16,000-IP batch
merged right after ingest, before any ANALYZE: no scan of a CTE, a function or a subquery may run
more than once. (The original bad plan also needed statistics left by earlier batches, which this
test does not recreate: it guards the shape, it does not replay the failure.)
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from bench.snapshot_step import GENERATE
from tests.explain import nested_plans

IPS, BATCH = 50_000, 16_000
LOOPED = {"CTE Scan", "Function Scan", "Subquery Scan"}


def one_probe(plan: dict[str, Any]) -> bool:
    """A subquery that is one index probe (a LATERAL lookup by key, revision 0056): meant per row."""
    children = plan.get("Plans", [])
    return (plan["Node Type"] == "Subquery Scan" and len(children) == 1
            and children[0]["Node Type"] in {"Index Scan", "Index Only Scan"} and not children[0].get("Plans"))


def repeated_scans(plan: dict[str, Any]) -> list[str]:
    """Scans of a CTE, a function or a subquery that ran more than once (but a subquery that is
    one index probe per row)."""
    found = []
    if plan["Node Type"] in LOOPED and plan.get("Actual Loops", 1) > 1 and not one_probe(plan):
        found.append(f"{plan['Node Type']} {plan.get('CTE Name', plan.get('Function Name', plan.get('Alias', '')))} "
                     f"x{plan['Actual Loops']}")
    for child in plan.get("Plans", []):
        found += repeated_scans(child)
    return found


STAGE = """
INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, result, build)
SELECT %(run)s, 1, 'maxmind', i.ip, now(),
       jsonb_build_object('found', true, 'country', 'US', 'asn', 64500 + (hashtext(host(i.ip)) & 1023),
                          'as_org', 'AS-X', 'asn_db', jsonb_build_object('type', 'GeoLite2-ASN')), 1
FROM ipintel.ip_inventory i
ORDER BY i.ip
LIMIT %(batch)s
"""


@pytest.mark.slow
def test_a_big_batch_is_classified_in_one_call(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        # Sessions and IPs freshly ingested, no ANALYZE since: the planner's estimates are stale.
        conn.execute(sql.SQL(GENERATE).format(ips=sql.Literal(IPS), sessions=sql.Literal(2 * IPS)))
        [(run,)] = conn.execute("SELECT ipintel.start_run('maxmind', '{}'::jsonb)").fetchall()
        conn.execute(STAGE, {"run": run, "batch": BATCH})
        conn.execute("SET statement_timeout = '2min'")  # the quadratic shape fails, it does not hang
        with nested_plans(conn, actual_loops=True) as plans:
            [(fetched, merged, _)] = conn.execute("SELECT * FROM ipintel.merge_batch(%s, 1)", (run,)).fetchall()
        assert (fetched, merged) == (BATCH, BATCH)
        [(classified,)] = conn.execute("SELECT count(*) FROM ipintel.ip_inventory WHERE ip_type = 'routed'").fetchall()
        assert classified == BATCH
    statements = [p for p in plans if "WITH changed AS MATERIALIZED" in p["Query Text"]]
    assert len(statements) == 1, "apply_answers' statement not captured"
    assert repeated_scans(statements[0]["Plan"]) == []
