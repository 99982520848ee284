"""take_snapshots stays linear: its plan never loops over the due set (issue 19).

The statement inside ipintel.take_snapshots() is captured with auto_explain (JSON, nested
statements) on generated data shaped like the case that made it quadratic: many sessions from
IPs still due for one source. Every Nested Loop of the plan must look up its inner side by an
index (one probe per outer row), or loop over the registry (a handful of rows); a Nested Loop
whose inner side is a scan of sessions, IPs, answers or an aggregate (the due set) is the
quadratic shape and fails the test.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from bench.snapshot_step import seed
from tests.explain import nested_plans, nodes

# Relations small by nature (the source, dataset and edition registries, failures): a loop over
# them costs a constant per outer row.
SMALL_RELATIONS = {"enrichment_policy", "enrichment_failures", "routing_datasets", "geo_editions"}
INDEXED = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}


def _inner_is_indexed_or_small(node: dict[str, Any], small: set[str]) -> bool:
    while node["Node Type"] in {"Materialize", "Memoize"}:
        node = node["Plans"][0]
    if node["Node Type"] in INDEXED:
        return True
    # session_summaries is partitioned by month: one probe per outer row is an index probe into
    # each partition (an Append of them; the partitions pruned at run time are not in it).
    if node["Node Type"] in {"Append", "Merge Append"}:
        return all(_inner_is_indexed_or_small(child, small) for child in node.get("Plans", []))
    return node.get("Relation Name") in small


def _outer_is_small(node: dict[str, Any], small: set[str]) -> bool:
    """A loop over a registry's rows (the enabled sources, crossed with the IPs to find the ones
    each source owes an answer: snapshot_pending_sources) repeats its inner side a handful of
    times: linear."""
    while node["Node Type"] in {"Materialize", "Memoize", "Sort"}:
        node = node["Plans"][0]
    return node.get("Relation Name") in small


def quadratic_loops(plan: dict[str, Any], small: set[str] = SMALL_RELATIONS) -> list[str]:
    """Nested Loops whose inner side is neither an index probe nor a small relation. In a plan
    with actual counts (ANALYZE), a loop whose inner side never ran (its outer side gave no row)
    cost nothing: revision 0066 leaves routing_asns and geo_build_facts no pair to look up when
    there is no dated data, and their pairs, planned at one row, are looped over zero times. One
    whose inner side ran once (its outer side gave one row: a geolocation edition) did its work
    once."""
    found = []
    if (plan["Node Type"] == "Nested Loop" and plan["Plans"][1].get("Actual Loops") not in {0, 1}
            and not _inner_is_indexed_or_small(plan["Plans"][1], small)
            and not _outer_is_small(plan["Plans"][0], small)):
        inner = plan["Plans"][1]
        found.append(f"{plan.get('Join Type', '')} Nested Loop over {inner['Node Type']} "
                     f"{inner.get('Relation Name', inner.get('Alias', ''))}".strip())
    for child in plan.get("Plans", []):
        found += quadratic_loops(child, small)
    return found


# session_summaries is partitioned by month: a month with few sessions (the first or last days of
# the generated window) is a partition of a few pages, which the planner scans instead of probing
# its index. Looping over one costs a constant per outer row, like the registries.
FEW_PAGES = 64


def small_partitions(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'ipintel.session_summaries'::regclass AND c.relpages < %s", (FEW_PAGES,))}


def snapshot_statements(plans: list[dict[str, Any]]) -> dict[str, Any]:
    """The statements of take_snapshots among captured plans, as one plan (a node whose children
    are theirs): the per-session statement (`WITH todo AS`; for some IPs, and the IPs of a whole
    pass whose ASN moved among a key's sessions), and a whole pass's per-key ones (revision
    0074): snapshot_key_values' statement (a BEGIN ATOMIC body has no query text: the one whose
    CTEs are keys, history and in_play) and the update that joins its keys to the sessions; and
    the body of snapshot_classes, which both call (revision 0075: its one statement reads
    ip_classes)."""
    statements = [p["Plan"] for p in plans
                  if "WITH todo AS" in p["Query Text"] or "WITH filled AS" in p["Query Text"]
                  or {"keys", "history", "in_play"} <= {n.get("Subplan Name", "").removeprefix("CTE ")
                                                        for n in nodes(p["Plan"])}
                  or p["Plan"].get("Function Name") == "ip_classes"]
    assert statements, f"take_snapshots' statements not captured: {[p['Query Text'][:80] for p in plans[:3]]}"
    return {"Node Type": "Statements", "Plans": statements}


def snapshot_plan(dsn: str, *, actual_loops: bool = False,
                  ips: list[Any] | None = None) -> tuple[dict[str, Any], int]:
    """Runs take_snapshots() (of `ips`, as an ingest chunk does, when given): the plan of its
    statements (snapshot_statements), and how many sessions it changed."""
    with psycopg.connect(dsn) as conn, nested_plans(conn, actual_loops=actual_loops) as plans:
        changed = (conn.execute("SELECT ipintel.take_snapshots()") if ips is None else
                   conn.execute("SELECT ipintel.take_snapshots(%s::inet[])", (ips,))).fetchone()
        assert changed is not None and changed[0] > 0
    return snapshot_statements(plans), changed[0]


def test_the_rule_finds_a_nested_loop_over_an_aggregate() -> None:
    """The check itself: a plan with the quadratic shape is caught, an index probe is not."""
    due = {"Node Type": "Subquery Scan", "Alias": "due", "Plans": [{"Node Type": "Aggregate"}]}
    probe = {"Node Type": "Index Scan", "Relation Name": "session_summaries"}
    outer = {"Node Type": "Seq Scan", "Relation Name": "ip_inventory"}
    assert quadratic_loops({"Node Type": "Nested Loop", "Join Type": "Anti", "Plans": [outer, due]}) == [
        "Anti Nested Loop over Subquery Scan due"]
    assert quadratic_loops({"Node Type": "Nested Loop", "Plans": [outer, probe]}) == []
    # A probe into each monthly partition of session_summaries is a probe; a scan of one is not.
    scan = {"Node Type": "Seq Scan", "Relation Name": "session_summaries_2026_11"}
    assert quadratic_loops({"Node Type": "Nested Loop", "Plans": [outer, {"Node Type": "Append", "Plans": [probe, probe]}]}) == []
    assert quadratic_loops({"Node Type": "Nested Loop", "Join Type": "Semi",
                            "Plans": [outer, {"Node Type": "Append", "Plans": [probe, scan]}]}) == [
        "Semi Nested Loop over Append"]
    # With actual counts: the same loop is the quadratic shape once its inner side runs, and
    # nothing when it never does.
    assert quadratic_loops({"Node Type": "Nested Loop", "Plans": [outer, due | {"Actual Loops": 2000}]}) == [
        "Nested Loop over Subquery Scan due"]
    assert quadratic_loops({"Node Type": "Nested Loop", "Plans": [outer, due | {"Actual Loops": 0}]}) == []
    assert quadratic_loops({"Node Type": "Nested Loop", "Plans": [outer, due | {"Actual Loops": 1}]}) == []
    # A loop over the sources' registry (its outer side) repeats the inner side a handful of times.
    registry = {"Node Type": "Index Scan", "Relation Name": "enrichment_policy"}
    assert quadratic_loops({"Node Type": "Nested Loop", "Plans": [registry, due | {"Actual Loops": 3}]}) == []


# Routing history for the generated IPs (11.0.0.0 + 37 n): /24s of 11.0.0.0/16, /16s above it.
ROUTING = """
WITH b AS (SELECT nextval('ipintel_staging.batch_id_seq') AS id), staged AS (
    INSERT INTO ipintel_staging.routing_prefixes (batch_id, prefix, asn)
    SELECT b.id, set_masklen('11.0.0.0'::inet + g * 256, 24)::cidr, 65000 + g % 50 FROM b, generate_series(0, 255) g
    UNION ALL
    SELECT b.id, set_masklen('11.0.0.0'::inet + g * 65536, 16)::cidr, 64000 + g FROM b, generate_series(1, 40) g
    RETURNING batch_id)
SELECT ipintel.load_routing_snapshot('routeviews', current_date - 40, 'generated', (SELECT min(batch_id) FROM staged))
"""


# A geolocation build 40 days old for the same IPs; MaxMind's answers are of a build made today, so
# every session (of the last 30 days) is older than ipintel's own observation and takes the build.
GEO_BUILD = """
WITH b AS (SELECT nextval('ipintel_staging.batch_id_seq') AS id), staged AS (
    INSERT INTO ipintel_staging.geo_ranges (batch_id, first_ip, last_ip, country)
    SELECT b.id, '11.0.0.0'::inet + g * 65536, '11.0.0.0'::inet + g * 65536 + 65535, 'NL' FROM b, generate_series(0, 3) g
    RETURNING batch_id)
SELECT ipintel.load_geo_build('dbip_country_lite', 'dbip', extract(epoch FROM now() - interval '40 days')::bigint,
                              'DBIP-Country-Lite', 'generated', repeat('0', 64), (SELECT min(batch_id) FROM staged))
"""


def load_history(dsn: str, history: str | None) -> None:
    """Routing history 40 days old (max_age 60 days), or a geolocation build of that age that
    MaxMind's answers (of a build made today) are newer than, or nothing."""
    with psycopg.connect(dsn) as conn:
        if history == "routing":
            conn.execute(ROUTING)
            conn.execute("UPDATE ipintel.routing_datasets SET max_age = interval '60 days'")
        if history == "geo":
            conn.execute(GEO_BUILD)
            conn.execute("UPDATE ipintel.geo_editions SET max_age = interval '60 days'")
            conn.execute("UPDATE ipintel.enrichment_state SET build = extract(epoch FROM now())::bigint "
                         "WHERE source = 'maxmind'")


@pytest.mark.slow
@pytest.mark.parametrize("history", [None, "routing", "geo"],
                         ids=["without routing history", "with routing history", "with geolocation builds"])
def test_take_snapshots_has_no_nested_loop_over_the_due_set(db: str, history: str | None) -> None:
    shape = seed(db, sessions=40_000, ips=4_000, answered_every=2)
    assert shape["ips_due_for_greynoise"] == 2_000
    load_history(db, history)
    plan, _ = snapshot_plan(db, actual_loops=True)
    # With no history loaded, its tables are empty: looping over them costs nothing.
    empty = {"prefix_origins", "geo_countries", "geo_asns"} - {
        "routing": {"prefix_origins"}, "geo": {"geo_countries"}}.get(history or "", set())
    small = SMALL_RELATIONS | small_partitions(db) | empty
    with psycopg.connect(db) as conn:
        busiest = conn.execute("SELECT tableoid::regclass::text FROM ipintel.session_summaries "
                               "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()
    assert busiest is not None and busiest[0].removeprefix("ipintel.") not in small, "the rule still sees the sessions"
    assert quadratic_loops(plan, small) == []
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FILTER (WHERE snapshot_complete_at IS NOT NULL), "
                           "count(*) FILTER (WHERE snapshot_asn_source LIKE %s), "
                           "count(*) FILTER (WHERE snapshot_is_scanner_source IS NULL), "
                           "count(*) FILTER (WHERE snapshot_country_source LIKE %s), "
                           "count(*) FILTER (WHERE (first_event_at AT TIME ZONE 'UTC')::date "
                           "                       < (now() AT TIME ZONE 'UTC')::date) "
                           "FROM ipintel.session_summaries",
                           ("routing:routeviews:%" if history == "routing" else "maxmind:%",
                            "dbip:build:%" if history == "geo" else "maxmind")).fetchone()
    assert row is not None
    # Half the IPs answered by every source: complete. The other half waits for GreyNoise only:
    # their ASN and country are known, their scanner field is not. With routing history (a
    # snapshot 40 days old, max_age 60 days), every session's ASN comes from it; with a
    # geolocation build, the country of every session before today (MaxMind's build day).
    assert row[:4] == (20_000, 40_000, 20_000, row[4] if history == "geo" else 40_000)
    assert row[4] > 30_000


@pytest.mark.slow
def test_take_snapshots_of_a_chunks_ips_has_no_nested_loop_over_the_due_set(db: str) -> None:
    """Revision 0065: take_snapshots(ips), as an ingest chunk calls it, of 1,000 IPs' queued
    sessions. Joined to the queue by both columns of the key, the planner expected one session
    where there were thousands, and compared every session with every IP of the chunk and with
    every IP's awaited sources (the test of ingest and enrich at once: 10 to 14 s a chunk, 350 s in
    all against 38 s at 0063)."""
    seed(db, sessions=40_000, ips=4_000, answered_every=2)
    with psycopg.connect(db) as conn:
        # Sessions of these IPs ingested since (queued, nothing filled yet), as a chunk leaves them.
        conn.execute("""INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
                        SELECT 'chunk-' || host(i.ip) || '-' || g, now() - interval '1 minute', now(), i.ip
                        FROM (SELECT ip FROM ipintel.ip_inventory ORDER BY ip LIMIT 1000) i,
                             generate_series(1, 3) g""")
        ips = conn.execute("SELECT array_agg(ip) FROM (SELECT ip FROM ipintel.ip_inventory ORDER BY ip LIMIT 1000) i"
                           ).fetchone()
        conn.execute("ANALYZE ipintel.snapshot_queue")
    assert ips is not None
    plan, changed = snapshot_plan(db, actual_loops=True, ips=ips[0])
    assert changed >= 3_000
    # no routing history nor geolocation build loaded: those tables are empty
    empty = {"prefix_origins", "geo_countries", "geo_asns"}
    assert quadratic_loops(plan, SMALL_RELATIONS | small_partitions(db) | empty) == []


@pytest.mark.slow
@pytest.mark.parametrize("history", [None, "geo"], ids=["without dated data", "with a geolocation build"])
def test_a_chunks_snapshots_are_planned_for_its_sessions_when_the_statistics_are_stale(
        db: str, history: str | None) -> None:
    """Revision 0073: the daily steady state. Every snapshot is complete after an enrich, so the
    queue is empty, and its statistics are those of the last ANALYZE that saw rows (a backlog:
    ANALYZE of an empty table keeps them); the month's partition was analyzed with none
    incomplete, and the chunk's sessions are newer than its histogram. Then an ingest chunk of
    sessions from IPs still awaiting GreyNoise: with the estimates those statistics gave (a few
    sessions), the awaited sources (and the dated builds' facts) were worked out again for each
    session of the chunk (the 2M seed, 3,000 sessions of 300 IPs: 10.9 s)."""
    seed(db, sessions=40_000, ips=4_000, answered_every=2)  # analyzed with 40,000 queued sessions
    load_history(db, history)
    with psycopg.connect(db, autocommit=True) as conn:
        # Every snapshot completed (GreyNoise not awaited for this pass), then analyzed: the
        # queue empty, its statistics still those of the backlog.
        conn.execute("UPDATE ipintel.enrichment_policy SET enabled = false WHERE source = 'greynoise'")
        conn.execute("SELECT ipintel.take_snapshots()")
        conn.execute("UPDATE ipintel.enrichment_policy SET enabled = true WHERE source = 'greynoise'")
        conn.execute("VACUUM (ANALYZE)")
        row = conn.execute("SELECT (SELECT count(*) FROM ipintel.snapshot_queue), "
                           "(SELECT n_distinct FROM pg_stats WHERE schemaname = 'ipintel' "
                           " AND tablename = 'snapshot_queue' AND attname = 'source_ip')").fetchone()
        assert row is not None and row[0] == 0 and row[1] is not None, "the queue is empty, its statistics stale"
        # The chunk: 10 sessions each of 300 IPs that GreyNoise has not answered.
        conn.execute("""CREATE TEMP TABLE chunk_ips AS
                        SELECT i.ip FROM ipintel.ip_inventory i
                        WHERE NOT EXISTS (SELECT 1 FROM ipintel.enrichment_state e
                                          WHERE e.ip = i.ip AND e.source = 'greynoise')
                        ORDER BY i.ip LIMIT 300""")
        conn.execute("""INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
                        SELECT 'chunk-' || host(c.ip) || '-' || g, now() - interval '1 minute', now(), c.ip
                        FROM chunk_ips c, generate_series(1, 10) g""")
        ips = conn.execute("SELECT array_agg(ip) FROM chunk_ips").fetchone()
        assert ips is not None and len(ips[0]) == 300
    plan, changed = snapshot_plan(db, actual_loops=True, ips=ips[0])
    empty = {"prefix_origins", "geo_asns"} | ({"geo_countries"} if history is None else set())
    assert quadratic_loops(plan, SMALL_RELATIONS | small_partitions(db) | empty) == []
    # The chunk's snapshots as the rule says: ASN and country now, the scanner field left for
    # GreyNoise; queued by key (revision 0084): one per IP, its ten sessions ingested at once.
    assert changed == 3_000
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FILTER (WHERE snapshot_asn_source IS NOT NULL AND snapshot_country_source IS NOT NULL), "
                           "count(*) FILTER (WHERE snapshot_is_scanner_source IS NULL AND snapshot_complete_at IS NULL), "
                           "(SELECT count(*) FROM ipintel.snapshot_queue) "
                           "FROM ipintel.session_summaries WHERE session_id LIKE 'chunk-%'").fetchone()
    assert row == (3_000, 3_000, 300)


def executed_unnests(plan: dict[str, Any]) -> int:
    """How many scans of routing_asns' and geo_build_facts' unnest(p_ips, p_days) ran (inlined, each is alias q...)."""
    is_pairs = plan.get("Node Type") == "Function Scan" and (plan.get("Alias") == "q" or plan.get("Alias", "").startswith("q_"))
    found = 1 if is_pairs and plan.get("Actual Loops", 0) > 0 else 0
    return found + sum(executed_unnests(child) for child in plan.get("Plans", []))


@pytest.mark.parametrize("history", [None, "routing", "geo"],
                         ids=["nothing loaded", "routing history loaded", "a geolocation build loaded"])
def test_history_pairs_are_gathered_only_when_some_is_loaded(db: str, history: str | None) -> None:
    """Revision 0048: without a routing snapshot (a geolocation build), routing_asns (geo_build_facts) gathers no pair."""
    # 2,000 sessions, one a minute back from now: always some of them before today.
    seed(db, sessions=2_000, ips=100, answered_every=2)
    load_history(db, history)
    plan, _ = snapshot_plan(db, actual_loops=True)
    # Both functions are inlined into take_snapshots' statement, each unnesting its arrays once
    # when it runs (before 0048: both, always).
    assert executed_unnests(plan) == (0 if history is None else 1)
    with psycopg.connect(db) as conn:
        sources = dict(conn.execute(
            "SELECT split_part(snapshot_asn_source, ':', 1) || ':' || split_part(snapshot_country_source, ':', 1), "
            "count(*) FROM ipintel.session_summaries GROUP BY 1").fetchall())
        [(before_today,)] = conn.execute(
            "SELECT count(*) FROM ipintel.session_summaries "
            "WHERE (first_event_at AT TIME ZONE 'UTC')::date < (now() AT TIME ZONE 'UTC')::date").fetchall()
    # What each loaded history says still reaches the snapshots: every session's ASN from routing
    # history; the country of the sessions before today (MaxMind's build day) from the build.
    expected = {None: {"maxmind:maxmind": 2_000}, "routing": {"routing:maxmind": 2_000},
                "geo": {"maxmind:dbip": before_today, "maxmind:maxmind": 2_000 - before_today}}[history]
    assert before_today > 0 and sources == {k: v for k, v in expected.items() if v}


def widest_node(plan: dict[str, Any]) -> tuple[int, str]:
    """The most rows any node of the plan produced (actual rows x loops), and which node."""
    found = [(n.get("Actual Rows", 0) * n.get("Actual Loops", 1),
              f"{n.get('Join Type', '')} {n['Node Type']} {n.get('Relation Name', n.get('Alias', ''))}".strip())
             for n in nodes(plan)]
    return max(found)


@pytest.mark.slow
def test_awaited_sources_are_found_per_ip_not_per_session(db: str) -> None:
    """Revision 0058: snapshot_waits finds each IP's awaited sources once, then joins its sessions;
    revision 0059: no merge join sorts the rows the update writes.

    Flattened into one join, the planner paired every incomplete session with every enabled
    source before the per-IP checks (sessions x sources rows: 2M sessions, 6M pairs). No node of
    take_snapshots' statement may produce more rows than there are sessions to fill.
    """
    shape = seed(db, sessions=40_000, ips=4_000, answered_every=2)
    assert shape["ips_due_for_greynoise"] == 2_000
    with psycopg.connect(db) as conn:
        [(sources,)] = conn.execute("SELECT count(*) FROM ipintel.enrichment_policy WHERE enabled").fetchall()
    assert sources >= 2, "sessions x sources would not exceed the sessions"
    plan, changed = snapshot_plan(db, actual_loops=True)
    assert changed == 40_000
    rows, node = widest_node(plan)
    assert rows <= 40_000, f"{node} produced {rows:,} rows for 40,000 sessions"
    # Revision 0059: the rows the update writes meet their classes and documents in hash joins,
    # which keep the order of the heap; merge joins sorted all of them by IP, then by place again.
    merges = [n.get("Join Type", "") for n in nodes(plan) if n["Node Type"] == "Merge Join"]
    assert merges == [], f"merge joins in take_snapshots: {merges}"


def group_keys(plan: dict[str, Any]) -> list[tuple[str, int]]:
    """Each grouping node of the plan: its group key, and the groups it produced."""
    return [(", ".join(n.get("Group Key", [])), n.get("Actual Rows", 0) * n.get("Actual Loops", 1))
            for n in nodes(plan) if n["Node Type"] == "Aggregate" and n.get("Group Key")]


@pytest.mark.slow
def test_awaited_sources_are_grouped_per_ip_and_ingest_time_not_per_session(db: str) -> None:
    """Revision 0061: take_snapshots compares the awaited sources' windows once per IP and ingest
    time (the seed ingests every session at once), not once per waiting session."""
    seed(db, sessions=40_000, ips=4_000, answered_every=2)
    plan, changed = snapshot_plan(db, actual_loops=True)
    assert changed == 40_000
    keys = group_keys(plan)
    assert not [k for k in keys if "session_id" in k[0]], f"sessions grouped one by one: {keys}"
    # The 2,000 IPs that wait for GreyNoise (20,000 sessions), each ingested at one time, grouped
    # once each. The queue's 4,000 keys are not grouped at all: it holds them as they are
    # (revision 0084; grouped from its rows, one per session, at 0067 to 0083). Never a group per
    # session (40,000).
    groups = {groups for key, groups in keys if "created_at" in key} - {0}
    assert groups == {2_000}, keys


def nothing_new_plan(db: str) -> tuple[dict[str, Any], int]:
    """20,000 sessions of 2,000 IPs, GreyNoise answering half: a first take_snapshots(), then a
    second with nothing new (the other half waits for GreyNoise). The second's statements
    (snapshot_statements, with actual counts) and the incomplete sessions (10,000)."""
    seed(db, sessions=20_000, ips=2_000, answered_every=2)
    with psycopg.connect(db) as conn:
        conn.execute("SELECT ipintel.take_snapshots()")
        conn.commit()
        [(total, incomplete)] = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE snapshot_complete_at IS NULL) "
            "FROM ipintel.session_summaries").fetchall()
    assert (total, incomplete) == (20_000, 10_000)
    with psycopg.connect(db) as conn, nested_plans(conn, actual_loops=True) as plans:
        [(changed,)] = conn.execute("SELECT ipintel.take_snapshots()").fetchall()
    assert changed == 0
    return snapshot_statements(plans), incomplete


def sessions_read(plan: dict[str, Any]) -> int:
    """The session rows the plan's nodes over session_summaries produced (rows x loops)."""
    return sum(n.get("Actual Rows", 0) * n.get("Actual Loops", 1) for n in nodes(plan)
               if n.get("Relation Name", "").startswith("session_summaries"))


@pytest.mark.slow
def test_the_update_reads_the_incomplete_sessions_not_every_session_kept(db: str) -> None:
    """Revision 0062: the update finds the rows it writes among the incomplete sessions only.

    Joined to every session, it hashed all the months kept on every run, even a run with nothing
    to fill. After a first pass half the sessions are complete; a second pass (nothing new: the
    other half waits for GreyNoise) may read no more rows in any node than there are incomplete
    sessions.
    """
    plan, incomplete = nothing_new_plan(db)
    rows, node = widest_node(plan)
    assert rows <= incomplete, f"{node} produced {rows:,} rows for {incomplete:,} incomplete sessions"
    # Revision 0069: with nothing to fill the update reads no session (a one-time filter); its
    # hash of the incomplete sessions was built before (each of them read twice in all).
    read = sessions_read(plan)
    assert read <= incomplete, f"{read:,} sessions read for {incomplete:,} incomplete ones"


@pytest.mark.slow
def test_a_pass_with_nothing_new_reads_no_waiting_session(db: str) -> None:
    """Revision 0084: snapshot_key_values finds the keys some session of which has a field to fill
    from what the queue's keys know their sessions have (snapshot_queue.known), reading no session.

    After a first pass, the sessions waiting for GreyNoise have every field MaxMind gives known:
    their keys have fields ready (the ASN, the country) and nothing to fill. Probed once per key
    (an index scan of the IP's sessions, then the heap of each; 0074), a pass with nothing new
    read every waiting session again for each key (150,000 keys: about 8 s of random reads); by a
    semi-join (0075 to 0083), once. Now no node reads a session at all.
    """
    plan, incomplete = nothing_new_plan(db)
    loops = [(n.get("Relation Name"), n.get("Actual Loops", 1)) for n in nodes(plan)
             if n.get("Relation Name", "").startswith("session_summaries") and n.get("Actual Loops", 1) > 1]
    assert loops == [], f"sessions probed once per key: {loops}"
    read = sessions_read(plan)
    assert incomplete == 10_000 and read == 0, f"{read:,} sessions read for {incomplete:,} waiting ones"


@pytest.mark.slow
def test_classes_are_asked_once_per_ip_and_epoch_not_per_session_day(db: str) -> None:
    """Revision 0070: take_snapshots groups the sessions it fills by IP, epoch and ASN
    (class_epochs) before it asks ip_classes; before, by IP, day, ASN and source.

    The seed's 10 sessions of each IP fall on about 10 days of the last month, and no range list
    has a snapshot, so every day is one epoch. The class is filled for the 1,000 IPs GreyNoise
    answered (the others wait for it: it says ip_type too): ip_classes is asked (and answers) once
    per IP, where it answered once per IP and day (about 10,000 rows).
    """
    seed(db, sessions=20_000, ips=2_000, answered_every=2)
    with psycopg.connect(db) as conn:
        [(ip_days,)] = conn.execute(
            "SELECT count(DISTINCT (source_ip, (first_event_at AT TIME ZONE 'UTC')::date)) "
            "FROM ipintel.session_summaries").fetchall()
    assert ip_days > 10_000, "the sessions of an IP would not span several days"
    plan, changed = snapshot_plan(db, actual_loops=True)
    assert changed == 20_000
    answered = [n.get("Actual Rows", 0) * n.get("Actual Loops", 1) for n in nodes(plan)
                if n["Node Type"] == "Function Scan" and n.get("Function Name") == "ip_classes"]
    assert answered == [1_000], f"ip_classes answered {answered} rows for 1,000 IPs in one epoch"
    with psycopg.connect(db) as conn:
        [(classed,)] = conn.execute("SELECT count(*) FROM ipintel.session_summaries "
                                    "WHERE snapshot_ip_type = 'routed' AND snapshot_ip_type_source = 'maxmind'").fetchall()
    assert classed > 0, "the sessions' classes rest on MaxMind's ASN"


def test_some_ips_sessions_are_read_once_per_ip_not_once_per_key(db: str) -> None:
    """Revision 0084: take_snapshots(ips), as an ingest chunk calls it, stages the incomplete
    sessions of the IPs' queued keys reading each IP's sessions once. An IP that chunk after chunk
    brings keeps a key per chunk until its sources answer; probed once per key, its sessions were
    read again for each (an IP with 100,000 sessions in the month and 32 keys: 0.09 to 0.25 s a
    call, against 0.06 s by IP)."""
    seed(db, sessions=2_000, ips=100, answered_every=2)
    with psycopg.connect(db, autocommit=True) as conn:
        ips = [r[0] for r in conn.execute("SELECT ip FROM ipintel.ip_inventory ORDER BY ip LIMIT 10")]
        for chunk in range(20):  # 20 ingest transactions: 20 more keys for each of the 10 IPs
            conn.execute("""INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
                            SELECT 'chunk-' || %s || '-' || host(ip) || '-' || g, now() - interval '1 hour', now(), ip
                            FROM unnest(%s::inet[]) ip, generate_series(1, 3) g""", (chunk, ips))
        [(keys, incomplete)] = conn.execute(
            "SELECT (SELECT count(*) FROM ipintel.snapshot_queue WHERE source_ip = ANY (%(ips)s)), "
            "(SELECT count(*) FROM ipintel.session_summaries "
            " WHERE source_ip = ANY (%(ips)s) AND snapshot_complete_at IS NULL)", {"ips": ips}).fetchall()
    assert keys >= 210 and incomplete >= 600
    with psycopg.connect(db) as conn, nested_plans(conn, actual_loops=True) as plans:
        conn.execute("SELECT ipintel.take_snapshots(%s::inet[])", (ips,))
    [staging] = [p["Plan"] for p in plans if "INSERT INTO ipintel_staging.snapshot_sessions" in p["Query Text"]]
    loops = {n.get("Actual Loops", 1) for n in nodes(staging)
             if n.get("Relation Name", "").startswith("session_summaries")}
    assert loops and max(loops) == len(ips), f"sessions probed {loops} times for {len(ips)} IPs and {keys} keys"
    staged = staging["Plans"][0]["Actual Rows"]  # the rows the insert was given
    assert staged == incomplete, f"{staged} sessions staged of {incomplete} incomplete"
