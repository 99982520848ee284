"""The plans of the statements a test runs, the statements inside functions included.

auto_explain logs each plan as a NOTICE (JSON: "Query Text" and "Plan"); a plpgsql or SQL
function's own statements are logged too (log_nested_statements), so a test can assert on the
shape of a statement it cannot EXPLAIN directly. A BEGIN ATOMIC body has no query text: find its
statement by what its plan scans.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.errors import Diagnostic


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a JSON plan, the plan itself first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@contextmanager
def nested_plans(conn: psycopg.Connection, *, actual_loops: bool,
                 triggers: bool = False) -> Iterator[list[dict[str, Any]]]:
    """Yields a list that holds, once the block ends, the plan of every statement run on conn inside it.

    actual_loops: plans with ANALYZE (actual rows and loops; no timing, which would slow every node).
    triggers (with actual_loops): each plan's "Triggers", the row triggers the statement fired and
    how often ("Calls"), foreign key checks included ("Constraint Name").
    """
    notices: list[str] = []

    def keep(notice: Diagnostic) -> None:
        notices.append(notice.message_primary or "")

    settings = [("log_min_duration", "0"), ("log_nested_statements", "on"), ("log_format", "json"),
                ("log_level", "notice")]
    if actual_loops:
        settings += [("log_analyze", "on"), ("log_timing", "off")]
    if triggers:
        assert actual_loops, "trigger calls are counted by ANALYZE"
        settings += [("log_triggers", "on")]
    conn.add_notice_handler(keep)
    conn.execute("LOAD 'auto_explain'")
    for name, value in settings:
        conn.execute(f"SET auto_explain.{name} = '{value}'")
    plans: list[dict[str, Any]] = []
    try:
        yield plans
        conn.execute("SET auto_explain.log_min_duration = -1")  # the statements after the block are not explained
    finally:
        conn.remove_notice_handler(keep)
        plans.extend(json.loads(n[n.index("{"):]) for n in notices if n.startswith("duration:"))
