"""attribution_of_days (roll_up_attribution, verify_attribution) recounts the days asked, reading
only their months, each session matched to its day once (revision 0078).

Until 0078 the days were joined to every session by its time range: a nested loop that read every
month and compared each session with each day asked (an ingest's one day in a month of 2M
sessions: 2.0 s; 31 days of 2M sessions: 62M comparisons). Here: its rows equal a plain recount
for any set of days (gaps, months apart, days without sessions, NULL, none), and its plan reads
no month outside the days asked and runs no node once per session.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.explain import nested_plans, nodes

# Sessions in September and November 2026 (UTC), some on the edges of a day, one without a
# snapshot (never counted). The session's TimeZone is not UTC: days are UTC days all the same.
SEED = """
SELECT ipintel.ensure_session_partitions(ARRAY[timestamptz '2026-09-15', timestamptz '2026-11-15']);
INSERT INTO ipintel.ip_inventory (ip) SELECT '198.51.100.0'::inet + g FROM generate_series(1, 40) g;
INSERT INTO ipintel.enrichment_documents (document) VALUES ('{"test": "attribution_of_days"}');
INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, source_ip,
                                       login_attempts, login_successes, command_count, download_count,
                                       snapshot_asn, snapshot_asn_source, snapshot_country, snapshot_country_source,
                                       snapshot_ip_type, snapshot_ip_type_source, snapshot_is_scanner_source,
                                       snapshot_at, snapshot_document)
SELECT 'day-' || g, 'sensor-' || g % 3, t, t + interval '1 minute', '198.51.100.0'::inet + (1 + g % 40),
       g % 4, g % 2, g % 5, g % 2,
       64500 + g % 3, 'maxmind:current', (ARRAY['NL', 'DE', 'US'])[1 + g % 3], 'maxmind',
       'routed', 'maxmind:current', 'none', now(), (SELECT min(document_id) FROM ipintel.enrichment_documents)
FROM generate_series(0, 599) g,
     LATERAL (SELECT CASE WHEN g < 300 THEN timestamptz '2026-09-10 00:00+00' ELSE timestamptz '2026-11-03 00:00+00' END
                     + (g % 300) * interval '2 hours 7 minutes' AS t) x;
-- the edges of a UTC day: its first and last microsecond
INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, source_ip, login_attempts,
                                       snapshot_asn_source, snapshot_country_source, snapshot_ip_type_source,
                                       snapshot_is_scanner_source, snapshot_at, snapshot_document)
SELECT 'edge-' || t, 'sensor-edge', t, t + interval '1 minute', '198.51.100.1', 1,
       'none', 'none', 'none', 'none', now(), (SELECT min(document_id) FROM ipintel.enrichment_documents)
FROM unnest(ARRAY[timestamptz '2026-11-05 00:00:00+00', timestamptz '2026-11-05 23:59:59.999999+00',
                  timestamptz '2026-11-06 00:00:00+00']) t;
-- no snapshot yet: not counted
INSERT INTO ipintel.session_summaries (session_id, sensor, first_event_at, last_event_at, source_ip, login_attempts)
VALUES ('unsnapshotted', 'sensor-0', '2026-11-05 12:00+00', '2026-11-05 12:01+00', '198.51.100.2', 1);
ANALYZE ipintel.session_summaries;
"""

RECOUNT = """
SELECT day, sensor, asn, country, ip_type, sessions, login_attempts, login_successes, commands, downloads,
       distinct_ips::text
FROM ({query}) a
ORDER BY 1, 2, 3, 4, 5
"""

# Independent of the function: every snapshotted session grouped by its UTC day, then the days kept.
PLAIN = """
SELECT (s.first_event_at AT TIME ZONE 'UTC')::date AS day, s.sensor, s.snapshot_asn AS asn,
       s.snapshot_country AS country, s.snapshot_ip_type AS ip_type, count(*) AS sessions,
       sum(s.login_attempts)::bigint AS login_attempts, sum(s.login_successes)::bigint AS login_successes,
       sum(s.command_count)::bigint AS commands, sum(s.download_count)::bigint AS downloads,
       public.hll_add_agg(public.hll_hash_any(s.source_ip), 12, 5) AS distinct_ips
FROM ipintel.session_summaries s
WHERE s.snapshot_at IS NOT NULL AND (s.first_event_at AT TIME ZONE 'UTC')::date = ANY (%(days)s::date[])
GROUP BY 1, 2, 3, 4, 5
"""


@pytest.fixture
def seeded(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute("SET TimeZone = 'America/New_York'")
    conn.execute(SEED)
    return conn


@pytest.mark.parametrize("days", [
    ["2026-11-05"],                              # one day, its edges included
    ["2026-11-04", "2026-11-06"],                # a gap between them
    ["2026-09-12", "2026-11-20"],                # months apart
    ["2026-10-15"],                              # a day without sessions
    ["2026-11-05", None, "2026-11-05"],          # NULL (skipped: roll_up_attribution expands it) and a repeat
    [],
    [f"2026-09-{d:02d}" for d in range(1, 31)] + [f"2026-11-{d:02d}" for d in range(1, 31)],
])
def test_rows_are_a_plain_recount_of_the_days_asked(seeded: psycopg.Connection, days: list[str | None]) -> None:
    got = seeded.execute(RECOUNT.format(query="SELECT * FROM ipintel.attribution_of_days(%(days)s::date[])"),
                         {"days": days}).fetchall()
    want = seeded.execute(RECOUNT.format(query=PLAIN), {"days": days}).fetchall()
    assert got == want
    if "2026-11-05" in days:
        edge = [r for r in got if r[0].isoformat() == "2026-11-05" and r[1] == "sensor-edge"]
        assert [r[5] for r in edge] == [2], "a UTC day holds its first and its last microsecond, not the next day's first"


def session_scans(plan: dict[str, Any]) -> dict[str, int]:
    """Loops of each scan of a session_summaries partition in the plan."""
    return {n["Relation Name"]: n["Actual Loops"] for n in nodes(plan)
            if n.get("Relation Name", "").startswith("session_summaries")}


def test_one_day_reads_its_month_only_and_each_session_once(seeded: psycopg.Connection) -> None:
    with nested_plans(seeded, actual_loops=True) as plans:
        got = seeded.execute("SELECT count(*) FROM ipintel.attribution_of_days('{2026-11-05}')").fetchone()
    assert got is not None and got[0] > 0
    inner = [p["Plan"] for p in plans if session_scans(p["Plan"])]
    assert len(inner) == 1, [p["Query Text"][:80] for p in plans]
    scans = session_scans(inner[0])
    assert scans.get("session_summaries_2026_11") == 1, scans
    read = {name: loops for name, loops in scans.items() if loops > 0 and name != "session_summaries_2026_11"}
    assert read == {}, f"months outside the day asked were read: {read}"
    repeated = [(n["Node Type"], n["Actual Loops"]) for n in nodes(inner[0]) if n.get("Actual Loops", 0) > 1]
    assert repeated == [], f"nodes run more than once (once per session: the range join of revision 0077): {repeated}"
