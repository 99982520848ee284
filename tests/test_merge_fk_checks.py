"""The ingest merge checks each inserted session's foreign key once (revision 0047).

PostgreSQL checks an updated row's foreign key again, equal or not, when the same transaction
inserted the row. merge_cowrie_events inserts a chunk's sessions and then fills the snapshots of
those whose IP is already enriched (take_snapshots): checked row by row, each such session's key
was checked twice, once per statement. The merge now defers the key to its own end, where the
inserted versions (dead by then) are skipped: neither statement checks a row, and the one check
per session runs when the merge ends (tests/sql/merge_cowrie_events/foreign_key_checked_at_its_end
shows a violation is still refused there). Since revision 0080 the insert itself writes those
snapshots: no statement updates the chunk's sessions at all.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bench.ingest_pass import answer_every_ip
from tests.explain import nested_plans

FK = "session_summaries_source_ip_fkey"

# 20 IPs, answered by MaxMind (the bench's enriched-ingest setup) before the chunk arrives.
INVENTORY = """
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen)
SELECT '203.0.113.0'::inet + g, now() - interval '1 day', now() - interval '1 day' FROM generate_series(1, 20) g
"""
# 60 sessions of the 20 enriched IPs, and 10 of IPs never seen (no snapshot at ingest).
CHUNK = """
INSERT INTO ipintel_staging.cowrie_events (batch_id, line_no, eventid, event_ts, session_id, src_ip, sensor)
SELECT -7, g, 'cowrie.session.connect', now() - interval '1 hour' + g * interval '1 second', 's' || g,
       CASE WHEN g <= 60 THEN '203.0.113.0'::inet + (1 + g % 20) ELSE '198.51.100.0'::inet + g END, 'hp1'
FROM generate_series(1, 70) g
"""


def fk_calls(plan: dict[str, Any]) -> int:
    return sum(t.get("Calls", 0) for t in plan.get("Triggers", []) if t.get("Constraint Name") == FK)


def test_merge_checks_no_session_row_by_row_and_takes_their_snapshots(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(INVENTORY)
        answer_every_ip(conn)
    with psycopg.connect(db) as conn:
        conn.execute(CHUNK)
        with nested_plans(conn, actual_loops=True, triggers=True) as plans:
            merged = conn.execute("SELECT sessions_new FROM ipintel.merge_cowrie_events(-7)").fetchone()
        conn.commit()
    assert merged == (70,)
    inserting = [p for p in plans if "INSERT INTO ipintel.session_summaries" in p["Query Text"]
                 and p["Query Text"].lstrip().startswith("WITH updated")]
    snapshotting = [p for p in plans if p["Query Text"].lstrip().startswith("WITH todo")]
    # The snapshots are the insert's (revision 0080): take_snapshots' per-session statement, which
    # updated the 60 sessions again (0047 to 0079), does not run.
    assert len(inserting) == 1 and snapshotting == []
    # Checked row by row (0046), the insert checked 70 keys and the snapshot the 60 it filled again.
    assert fk_calls(inserting[0]) == 0
    # The checks themselves: PostgreSQL's query for each key checked, once per session (0046: 130).
    checks = [p for p in plans if p["Query Text"].startswith('SELECT 1 FROM ONLY "ipintel"."ip_inventory"')]
    assert len(checks) == 70
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FILTER (WHERE snapshot_complete_at IS NOT NULL), count(*) "
                           "FROM ipintel.session_summaries").fetchone()
    assert row == (60, 70)
