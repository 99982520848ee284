"""`ipintel enrich --source cymru` end to end: the fake bulk whois server over real sockets, the
CymruPass, merge_cymru() and record_asn_history() on a real PostgreSQL.

Every test checks rows: the enrichment->'cymru' documents, asn_inventory, current_asn, ip_type,
ip_asn_history, enrichment_runs / enrichment_failures and session snapshots, and what the fake
was asked. Faults must end in correct data or in recorded, retryable failures: never a wrong
ASN, never a crash. Timeouts and backoff are tiny so the file runs in seconds.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from rich.console import Console

from ipintel import cli, config, passes, progress
from ipintel.enrich import EnrichOptions, EnrichSummary, StatusFile, enrich
from ipintel.passes import CymruPass
from ipintel.progress import Reporter
from tests.fakes.cymru_server import NO_MATCH, Behaviour, FakeCymruServer, _Hangup, cymru_server  # noqa: F401

# Tiny timeouts and backoff; batching and concurrency are the pass's own (from Settings).
# Timeouts generous for healthy answers (a loaded CI machine must not turn them into faults);
# the fault tests set their own short ones.
FAST = dict(connect_timeout=2.0, read_timeout=2.0, retries=1, backoff_base=0.01, backoff_max=0.02)

# Public (non-bogon) addresses with made-up answers; ASNs from the documentation ranges except
# Google's row, which is the example of the design page.
GOOGLE = "74.125.225.229"
GOOGLE2 = "74.125.225.230"
UNROUTED = "89.38.234.10"
MULTI = "45.60.12.7"
NOMATCH = "185.10.10.10"
OTHER = "100.42.10.5"
CYRILLIC = "95.165.1.1"
V6 = "2a02:6b8::feed:1"
BOGON4 = "192.168.1.10"
BOGON6 = "fe80::1"
CYRILLIC_NAME = "ТЕЛЕКОМ-АС, ООО «Связь», RU"
V6_ASN = 4_200_000_001  # a 32-bit ASN

TABLE = {
    GOOGLE: [(15169, "74.125.225.0/24", "US", "arin", "2007-03-13", "GOOGLE, US")],
    GOOGLE2: [(15169, "74.125.225.0/24", "US", "arin", "2007-03-13", "GOOGLE, US")],
    UNROUTED: [(None, None, "RO", "ripencc", "2005-11-29", None)],
    MULTI: [
        (64500, "45.60.0.0/16", "US", "arin", "2001-01-01", "WIDE, US"),
        (64502, "45.60.12.0/24", "US", "arin", "2001-01-02", "NARROW-B, US"),
        (64501, "45.60.12.0/24", "US", "arin", "2001-01-03", "NARROW-A, US"),
    ],
    NOMATCH: NO_MATCH,
    OTHER: [(64496, "100.42.0.0/16", "", "other", "", "EXAMPLE-OTHER")],
    CYRILLIC: [(64511, "95.165.0.0/16", "RU", "ripencc", "2010-05-05", CYRILLIC_NAME)],
    V6: [(V6_ASN, "2a02:6b8::/32", "DE", "ripencc", "2003-01-01", "EXAMPLE-V6, DE")],
}


def origin(asn: int | None, prefix: str | None, cc: str | None, registry: str | None, allocated: str | None,
           as_name: str | None) -> dict[str, Any]:
    return {"asn": asn, "prefix": prefix, "registered_country": cc, "registry": registry,
            "allocated": allocated, "as_name": as_name}


def document(current: dict[str, Any], *origins: dict[str, Any]) -> dict[str, Any]:
    return {"found": True, **current, "origins": list(origins or (current,))}


GOOGLE_ORIGIN = origin(15169, "74.125.225.0/24", "US", "arin", "2007-03-13", "GOOGLE, US")
NARROW_A = origin(64501, "45.60.12.0/24", "US", "arin", "2001-01-03", "NARROW-A, US")
# enrichment->'cymru' (facts only: the fetch time is in enrichment_state), written out by hand.
EXPECTED_DOCUMENTS = {
    GOOGLE: document(GOOGLE_ORIGIN),
    GOOGLE2: document(GOOGLE_ORIGIN),
    UNROUTED: document(origin(None, None, "RO", "ripencc", "2005-11-29", None)),
    MULTI: document(NARROW_A,  # most specific prefix, then the lowest ASN; every origin kept, as received
                    origin(64500, "45.60.0.0/16", "US", "arin", "2001-01-01", "WIDE, US"),
                    origin(64502, "45.60.12.0/24", "US", "arin", "2001-01-02", "NARROW-B, US"),
                    NARROW_A),
    NOMATCH: {"found": False, "asn": None, "origins": []},
    OTHER: document(origin(64496, "100.42.0.0/16", None, "other", None, "EXAMPLE-OTHER")),
    CYRILLIC: document(origin(64511, "95.165.0.0/16", "RU", "ripencc", "2010-05-05", CYRILLIC_NAME)),
    V6: document(origin(V6_ASN, "2a02:6b8::/32", "DE", "ripencc", "2003-01-01", "EXAMPLE-V6, DE")),
}
CURRENT_ASN = {GOOGLE: 15169, GOOGLE2: 15169, UNROUTED: None, MULTI: 64501, NOMATCH: None, OTHER: 64496,
               CYRILLIC: 64511, V6: V6_ASN, BOGON4: None, BOGON6: None}


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Session start times per IP (each session lasts 5 minutes).
SESSIONS = {
    GOOGLE: [t("2025-03-01 10:00"), t("2025-03-02 11:00"), t("2025-03-03 12:00")],
    GOOGLE2: [t("2025-02-01 09:00")],
    UNROUTED: [t("2025-03-04 08:00")],
    MULTI: [t("2025-03-05 07:00"), t("2025-03-06 07:30")],
    NOMATCH: [t("2025-03-07 06:00")],
    OTHER: [t("2025-03-08 05:00")],
    CYRILLIC: [t("2025-03-09 04:00"), t("2025-03-09 04:10")],
    V6: [t("2025-03-10 03:00")],
    BOGON4: [t("2025-03-11 02:00")],
    BOGON6: [t("2025-03-12 01:00")],
}
SESSION_LENGTH = timedelta(minutes=5)


# --- helpers ------------------------------------------------------------------------------------


def query(dsn: str, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def execute(dsn: str, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(sql, params)


def seed(dsn: str, sessions: Mapping[str, Sequence[datetime]]) -> None:
    """ip_inventory rows and their session_summaries, as `ipintel ingest` leaves them. Team Cymru
    is the only enabled source here, so its answers alone complete the sessions' snapshots."""
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE ipintel.enrichment_policy SET enabled = (source = 'cymru')")
        for ip, starts in sessions.items():
            conn.execute("INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) "
                         "VALUES (%s, %s, %s, %s)", (ip, min(starts), max(starts) + SESSION_LENGTH, len(starts)))
            for start in starts:
                add_session(conn, ip, start, update_ip=False)


def add_session(conn: psycopg.Connection[Any], ip: str, start: datetime, *, update_ip: bool = True) -> str:
    """One more session from `ip`; with update_ip, its counts move as the ingest merge moves them."""
    session_id = f"s-{ip}-{start.isoformat()}"
    conn.execute("INSERT INTO ipintel.session_summaries (session_id, source_ip, first_event_at, last_event_at) "
                 "VALUES (%s, %s, %s, %s)", (session_id, ip, start, start + SESSION_LENGTH))
    if update_ip:
        conn.execute("UPDATE ipintel.ip_inventory SET session_count = session_count + 1, "
                     "first_seen = least(first_seen, %(s)s), last_seen = greatest(last_seen, %(e)s) WHERE ip = %(ip)s",
                     {"ip": ip, "s": start, "e": start + SESSION_LENGTH})
        conn.execute("SELECT ipintel.refresh_asn_counts(ARRAY(SELECT current_asn FROM ipintel.ip_inventory "
                     "WHERE ip = %(ip)s AND current_asn IS NOT NULL))", {"ip": ip})
    return session_id


def seed_maxmind_asn(dsn: str, ip: str, asn: int, as_org: str, since: datetime) -> None:
    """An IP that MaxMind's ASN file attributed to `asn` at `since` (and Cymru never answered)."""
    maxmind = {"found": True, "country": "GB", "asn": asn, "as_org": as_org, "asn_network": None,
               "asn_db": {"type": "GeoLite2-ASN"}}
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO ipintel.asn_inventory (asn, as_name, sources) VALUES (%s, %s, %s) "
                     "ON CONFLICT (asn) DO NOTHING",
                     (asn, as_org, Jsonb({"maxmind": {"as_org": as_org}})))
        conn.execute("UPDATE ipintel.ip_inventory SET current_asn = %s, enrichment = jsonb_build_object('maxmind', %s::jsonb) "
                     "WHERE ip = %s", (asn, Jsonb(maxmind), ip))
        conn.execute("INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at) "
                     "VALUES (%s, 'maxmind', %s, 1704067200, %s)", (ip, since, since))
        conn.execute("INSERT INTO ipintel.ip_asn_history (ip, asn, valid, source) "
                     "VALUES (%s, %s, tstzrange(%s, NULL, '[)'), 'maxmind')", (ip, asn, since))
        conn.execute("SELECT ipintel.refresh_asn_counts(ARRAY[%s::bigint])", (asn,))


def settings_for(dsn: str, server: FakeCymruServer, **overrides: Any) -> config.Settings:
    return config.Settings(database_url=dsn, geoip_dir=None, cymru_addr=server.addr,
                           greynoise_url="http://127.0.0.1:9", greynoise_key=None, **overrides)


def run_cymru(settings: config.Settings, *, force: bool = False, reporter: Reporter | None = None,
              status_file: Path | None = None, **client: Any) -> EnrichSummary:
    """One `ipintel enrich --source cymru` run through the engine, with fast client timeouts."""
    pass_ = CymruPass(settings)
    pass_.settings = dataclasses.replace(pass_.settings, **{**FAST, **client})
    return enrich(settings, EnrichOptions(sources=("cymru",), force=force, status_file=status_file),
                  reporter=reporter, passes=[pass_])


def ips(dsn: str) -> dict[str, dict[str, Any]]:
    rows = query(dsn, """SELECT host(ip) AS ip, enrichment, current_asn, ip_type, geo_country, session_count
                         FROM ipintel.ip_inventory""")
    return {r.pop("ip"): r for r in rows}


def cymru_documents(dsn: str) -> dict[str, dict[str, Any]]:
    """enrichment->'cymru' per IP that has one."""
    return {ip: row["enrichment"]["cymru"] for ip, row in ips(dsn).items() if "cymru" in row["enrichment"]}


def fetched_at(dsn: str, ip: str) -> datetime:
    """When Team Cymru last answered for `ip` (enrichment_state)."""
    [row] = query(dsn, "SELECT fetched_at FROM ipintel.enrichment_state WHERE ip = %s AND source = 'cymru'", (ip,))
    return row["fetched_at"]


def age_answer(dsn: str, ip: str, source: str, days: int) -> None:
    """Make the last answer of `source` for `ip` `days` old (its facts as old as the answer)."""
    execute(dsn, "UPDATE ipintel.enrichment_state SET fetched_at = now() - make_interval(days => %(d)s), "
                 "changed_at = least(changed_at, now() - make_interval(days => %(d)s)) "
                 "WHERE ip = %(ip)s AND source = %(source)s", {"d": days, "ip": ip, "source": source})


def history(dsn: str, ip: str | None = None) -> list[tuple[Any, ...]]:
    """(ip, asn, lower, upper, source) rows, oldest first; upper None = open (current) range."""
    rows = query(dsn, """SELECT host(ip) AS ip, asn, lower(valid) AS lo, upper(valid) AS hi, source,
                                lower_inc(valid) AS li, upper_inc(valid) AS ui
                         FROM ipintel.ip_asn_history WHERE %(ip)s::inet IS NULL OR ip = %(ip)s::inet
                         ORDER BY ip, lower(valid)""", {"ip": ip})
    assert all(r["li"] and not r["ui"] for r in rows), "ranges are [lower, upper)"
    return [(r["ip"], r["asn"], r["lo"], r["hi"], r["source"]) for r in rows]


def asn_rows(dsn: str) -> dict[int, tuple[Any, ...]]:
    rows = query(dsn, "SELECT asn, as_name, as_country, rir, allocated, ip_count, session_count FROM ipintel.asn_inventory")
    return {r["asn"]: (r["as_name"], r["as_country"], r["rir"], r["allocated"], r["ip_count"], r["session_count"])
            for r in rows}


def snapshots(dsn: str) -> dict[str, dict[str, Any]]:
    rows = query(dsn, """SELECT session_id, host(source_ip) AS ip, first_event_at, snapshot_asn, snapshot_country,
                                snapshot_ip_type, d.document AS snapshot_enrichment, snapshot_at, snapshot_asn_source,
                                snapshot_complete_at
                         FROM ipintel.session_summaries s
                         LEFT JOIN ipintel.enrichment_documents d ON d.document_id = s.snapshot_document""")
    return {r.pop("session_id"): r for r in rows}


def failures(dsn: str) -> list[dict[str, Any]]:
    return query(dsn, """SELECT run_id, host(ip) AS ip, error, retryable, retry_after, resolved_at
                         FROM ipintel.enrichment_failures WHERE source = 'cymru' ORDER BY ip, failure_id""")


def runs(dsn: str) -> list[dict[str, Any]]:
    return query(dsn, "SELECT * FROM ipintel.enrichment_runs ORDER BY run_id")


def due(dsn: str) -> list[str]:
    """The IPs the next Cymru pass would ask, sorted."""
    return sorted(r["ip"] for r in query(dsn, "SELECT host(ip) AS ip FROM ipintel.ips_due('cymru')"))


def sent(server: FakeCymruServer, since: int = 0) -> list[str]:
    """Every IP line the fake received on connections since the `since`-th, sorted."""
    return sorted(ip for q in server.queries[since:] for ip in q)


def assert_no_wrong_asn(dsn: str, expected: Mapping[str, int | None]) -> None:
    """Every ASN the database holds anywhere for an IP is the one the fake's table gives it."""
    for ip, row in ips(dsn).items():
        assert row["current_asn"] in (None, expected[ip]), ip
        if "cymru" in row["enrichment"]:
            assert row["enrichment"]["cymru"]["asn"] == expected[ip], ip
            assert row["current_asn"] == expected[ip], ip
    for ip, asn, *_ in history(dsn):
        assert asn == expected[ip], ip
    assert set(asn_rows(dsn)) <= {asn for asn in expected.values() if asn is not None}


# --- one pass, every answer form --------------------------------------------------------------------


def test_pass_merges_every_answer_form(db, cymru_server):
    server = cymru_server(TABLE)
    seed(db, SESSIONS)
    before = datetime.now(UTC)

    summary = run_cymru(settings_for(db, server))

    after = datetime.now(UTC)
    assert summary.exit_code == 0
    [ps] = summary.passes
    assert (ps.source, ps.status, ps.due, ps.fetched, ps.merged, ps.failed) == ("cymru", "succeeded", 8, 8, 8, 0)

    # One bulk query with every non-bogon IP; the bogons never left the database.
    routable = sorted(ip for ip in SESSIONS if ip not in (BOGON4, BOGON6))
    assert len(server.queries) == 1 and sorted(server.queries[0]) == routable
    assert BOGON4 not in sent(server) and BOGON6 not in sent(server)

    assert cymru_documents(db) == EXPECTED_DOCUMENTS
    rows = ips(db)
    for ip, row in rows.items():
        assert row["current_asn"] == CURRENT_ASN[ip], ip
    # Every answer's fetch time is state beside the document, within the run; bogons have none.
    answered = query(db, "SELECT host(ip) AS ip, fetched_at, changed_at FROM ipintel.enrichment_state "
                         "WHERE source = 'cymru'")
    assert sorted(a["ip"] for a in answered) == routable
    assert all(before <= a["fetched_at"] == a["changed_at"] <= after for a in answered)
    # "No match" says nothing about routing (unknown); NA (allocated, not announced) is unrouted.
    assert {ip: row["ip_type"] for ip, row in rows.items()} == {
        GOOGLE: "routed", GOOGLE2: "routed", UNROUTED: "unrouted", MULTI: "routed", NOMATCH: "unknown",
        OTHER: "routed", CYRILLIC: "routed", V6: "routed", BOGON4: "bogon", BOGON6: "bogon"}
    # No MaxMind here: the registration country is the only country known.
    assert {ip: row["geo_country"] for ip, row in rows.items()} == {
        GOOGLE: "US", GOOGLE2: "US", UNROUTED: "RO", MULTI: "US", NOMATCH: "XX", OTHER: "XX",
        CYRILLIC: "RU", V6: "DE", BOGON4: "XX", BOGON6: "XX"}
    assert "cymru" not in rows[BOGON4]["enrichment"] and "cymru" not in rows[BOGON6]["enrichment"]

    def n(*these: str) -> int:
        return sum(len(SESSIONS[ip]) for ip in these)

    # Only the chosen (current) origin of each IP is a tier-1 row; the NA / no-match IPs add none.
    assert asn_rows(db) == {
        15169: ("GOOGLE, US", "US", "arin", date(2007, 3, 13), 2, n(GOOGLE, GOOGLE2)),
        64501: ("NARROW-A, US", "US", "arin", date(2001, 1, 3), 1, n(MULTI)),
        64496: ("EXAMPLE-OTHER", None, "other", None, 1, n(OTHER)),
        64511: (CYRILLIC_NAME, "RU", "ripencc", date(2010, 5, 5), 1, n(CYRILLIC)),
        V6_ASN: ("EXAMPLE-V6, DE", "DE", "ripencc", date(2003, 1, 1), 1, n(V6)),
    }
    [google] = query(db, "SELECT first_seen, last_seen, sources FROM ipintel.asn_inventory WHERE asn = 15169")
    assert google["first_seen"] == SESSIONS[GOOGLE2][0]
    assert google["last_seen"] == SESSIONS[GOOGLE][-1] + SESSION_LENGTH
    assert google["sources"] == {"cymru": {"as_name": "GOOGLE, US", "registered_country": "US",
                                           "registry": "arin", "allocated": "2007-03-13"}}

    # One open range per IP Cymru observed, starting at the observation; NULL ASN for NA. "No match"
    # means Cymru knows nothing of the address: no observation, no range.
    assert history(db) == sorted((ip, CURRENT_ASN[ip], fetched_at(db, ip), None, "cymru")
                                 for ip in routable if ip != NOMATCH)

    [run] = runs(db)
    assert (run["source"], run["status"], run["requested"], run["fetched"], run["merged"], run["failed"],
            run["message"]) == ("cymru", "succeeded", 8, 8, 8, 0, None)
    assert run["provenance"] == {"service": server.addr, "protocol": "bulk whois (begin/verbose/end)",
                                 "batch_size": 500, "concurrency": 2, "batch_timeout": 120.0, "pass_timeout": 1800.0}
    assert run["started_at"] <= run["finished_at"]
    assert failures(db) == []
    assert query(db, "SELECT count(*) AS n FROM ipintel_staging.enrichment_results")[0]["n"] == 0

    # Every IP is settled: each session has its snapshot. The ranges begin now, after every
    # session started, so each snapshot ASN is the current one.
    snaps = snapshots(db)
    assert summary.snapshots == len(snaps) == sum(len(s) for s in SESSIONS.values())
    for snap in snaps.values():
        row = rows[snap["ip"]]
        assert (snap["snapshot_asn"], snap["snapshot_country"], snap["snapshot_ip_type"], snap["snapshot_enrichment"]) \
            == (row["current_asn"], row["geo_country"], row["ip_type"], row["enrichment"])

    # Fresh now: a second default run asks nothing.
    queries = len(server.queries)
    again = run_cymru(settings_for(db, server))
    assert again.exit_code == 0 and again.passes[0].due == 0 and len(server.queries) == queries


# --- precedence over MaxMind, and the policy -----------------------------------------------------


def test_cymru_asn_takes_precedence_over_maxmind_and_policy_skips_maxmind_ips(db, cymru_server):
    mm_ip, no_asn, no_asn2 = "81.2.72.1", "81.2.72.2", "81.2.72.3"
    server = cymru_server({
        mm_ip: [(64506, "81.2.72.0/24", "GB", "ripencc", "2004-04-04", "CY-AS, GB")],
        no_asn: [(64507, "81.2.72.0/24", "GB", "ripencc", "2004-04-04", "OTHER-AS, GB")],
        no_asn2: [(64507, "81.2.72.0/24", "GB", "ripencc", "2004-04-04", "OTHER-AS, GB")],
    })
    seed(db, {mm_ip: [t("2025-01-05 10:00"), t("2025-01-06 10:00")], no_asn: [t("2025-01-07 10:00")],
              no_asn2: [t("2025-01-08 10:00")]})
    mm_since = t("2024-01-01 00:00")
    seed_maxmind_asn(db, mm_ip, 64505, "MM-AS", mm_since)
    # MaxMind looked these two up and found no ASN: Cymru is asked about them.
    execute(db, "UPDATE ipintel.ip_inventory SET enrichment = '{\"maxmind\": {\"found\": false, \"asn\": null}}' "
                "WHERE ip IN (%s, %s)", (no_asn, no_asn2))
    execute(db, "INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at) "
                "SELECT ip, 'maxmind', '2024-01-01', 1704067200, '2024-01-01' FROM ipintel.ip_inventory "
                "WHERE ip IN (%s, %s)", (no_asn, no_asn2))
    settings = settings_for(db, server)

    # By default (skip_when_maxmind_asn) the IP MaxMind attributed is not due.
    first = run_cymru(settings)
    assert first.exit_code == 0 and first.passes[0].due == 2
    assert sent(server) == sorted([no_asn, no_asn2])
    row = ips(db)[mm_ip]
    assert row["current_asn"] == 64505 and "cymru" not in row["enrichment"]
    assert history(db, mm_ip) == [(mm_ip, 64505, mm_since, None, "maxmind")]

    # --force asks it too; Cymru (live BGP) wins over MaxMind's snapshot of the ASN.
    queries = len(server.queries)
    forced = run_cymru(settings, force=True)
    assert forced.exit_code == 0 and forced.passes[0].due == 3
    assert sent(server, queries) == sorted([mm_ip, no_asn, no_asn2])
    row = ips(db)[mm_ip]
    assert row["current_asn"] == 64506
    assert row["enrichment"]["maxmind"]["asn"] == 64505  # MaxMind's answer is kept beside Cymru's
    assert row["enrichment"]["cymru"]["asn"] == 64506
    t_cymru = fetched_at(db, mm_ip)
    assert history(db, mm_ip) == [(mm_ip, 64505, mm_since, t_cymru, "maxmind"),
                                  (mm_ip, 64506, t_cymru, None, "cymru")]
    assert asn_rows(db) == {
        64505: ("MM-AS", None, None, None, 0, 0),  # kept, with nothing attributed to it any more
        64506: ("CY-AS, GB", "GB", "ripencc", date(2004, 4, 4), 1, 2),
        64507: ("OTHER-AS, GB", "GB", "ripencc", date(2004, 4, 4), 2, 2),
    }

    # Once Cymru has answered, its data is refreshed when stale (TTL 30 days), MaxMind ASN or not.
    age_answer(db, mm_ip, "cymru", 31)
    age_answer(db, no_asn, "cymru", 29)
    queries = len(server.queries)
    stale = run_cymru(settings)
    assert stale.exit_code == 0 and stale.passes[0].due == 1
    assert sent(server, queries) == [mm_ip]
    assert ips(db)[mm_ip]["current_asn"] == 64506 and fetched_at(db, mm_ip) > t_cymru
    assert len(history(db, mm_ip)) == 2  # the same ASN again: no new range

    # A later MaxMind merge does not take current_asn back from Cymru.
    with psycopg.connect(db) as conn:
        [batch] = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchone()  # type: ignore[misc]  # nextval(): one row
        maxmind = {"found": True, "asn": 64505, "as_org": "MM-AS", "asn_network": "81.2.0.0/16",
                   "asn_db": {"type": "GeoLite2-ASN"}}
        conn.execute("INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, build, "
                     "result) VALUES (0, %s, 'maxmind', %s, now(), 1735689600, %s)", (batch, mm_ip, Jsonb(maxmind)))
        conn.execute("SELECT ipintel.merge_maxmind(0, %s)", (batch,))
    assert ips(db)[mm_ip]["current_asn"] == 64506
    assert len(history(db, mm_ip)) == 2


# --- faults -------------------------------------------------------------------------------------

FAULT_IPS = [f"81.2.70.{i}" for i in range(1, 21)]
FAULT_ASN = {ip: 64496 + i % 8 for i, ip in enumerate(FAULT_IPS)}
POISON = "81.2.70.12"


def fault_table() -> dict[str, list[Any]]:
    return {ip: [(asn, "81.2.70.0/24", "GB", "ripencc", "2001-01-01", f"AS-{asn}, GB")] for ip, asn in FAULT_ASN.items()}


def poison(server: FakeCymruServer, how: str) -> None:
    """Make every connection whose batch holds POISON fail, whatever the attempt."""
    if how == "drop":  # the server hangs up when it reaches POISON's line
        answer = server._answer

        def dropping(text: str, line_number: int, verbose: bool) -> list[str]:
            if text == POISON:
                raise _Hangup
            return answer(text, line_number, verbose)

        server._answer = dropping  # type: ignore[method-assign]  # the fake's answer, patched for this test
    else:  # rows that must never become data: a prefix not covering the IP, a row for an IP not asked
        server.table[POISON] = [f"64499   | {POISON}        | 10.0.0.0/8          | ZZ | arin     | 2001-01-01 | WRONG",
                                "64499   | 81.2.70.99       | 81.2.70.0/24        | ZZ | arin     | 2001-01-01 | WRONG"]


@pytest.mark.parametrize("how", ["drop", "corrupt-rows"])
def test_failing_batch_is_recorded_then_retried_by_the_next_run(db, cymru_server, monkeypatch, capsys, cli_database,
                                                               how):
    server = cymru_server(fault_table())
    seed(db, {ip: [t("2025-04-01 00:00") + timedelta(minutes=i)] for i, ip in enumerate(FAULT_IPS)})
    cli_database(db)
    monkeypatch.setenv("IPINTEL_CYMRU_ADDR", server.addr)
    monkeypatch.setenv("IPINTEL_CYMRU_BATCH_SIZE", "5")
    monkeypatch.setenv("IPINTEL_CYMRU_CONCURRENCY", "2")
    init = CymruPass.__init__

    def fast_init(self: CymruPass, settings: config.Settings) -> None:
        init(self, settings)
        self.settings = dataclasses.replace(self.settings, **FAST)

    monkeypatch.setattr(passes.CymruPass, "__init__", fast_init)
    poison(server, how)

    assert cli.main(["enrich", "--source", "cymru"]) == 1

    # 20 IPs in batches of 5: three answered at once, the one holding POISON asked twice
    # (1 + retries; a dropping server stops reading at POISON's line) and recorded whole.
    [run1] = runs(db)
    assert (run1["status"], run1["requested"], run1["fetched"], run1["merged"], run1["failed"]) == \
        ("finished_with_failures", 20, 15, 15, 5)
    recorded = failures(db)
    failed = [f["ip"] for f in recorded]
    assert len(failed) == len(set(failed)) == 5 and POISON in failed
    poisoned = [q for q in server.queries if POISON in q]
    healthy = [q for q in server.queries if POISON not in q]
    assert len(poisoned) == 2 and all(set(q) <= set(failed) for q in poisoned)
    assert [len(q) for q in healthy] == [5, 5, 5]
    assert sorted(ip for q in healthy for ip in q) == sorted(set(FAULT_IPS) - set(failed))
    for f in recorded:
        assert f["run_id"] == run1["run_id"] and f["retryable"] and f["retry_after"] is None and f["resolved_at"] is None
        assert re.fullmatch(r"Cymru\w+Error: .* \(after 2 attempts, batch of 5\)", f["error"]), f["error"]
    # The other batches merged; the failed IPs have nothing from Cymru and no wrong ASN anywhere.
    rows = ips(db)
    assert sorted(ip for ip, row in rows.items() if "cymru" not in row["enrichment"]) == failed
    assert_no_wrong_asn(db, FAULT_ASN)
    assert {ip for ip, *_ in history(db)} == set(FAULT_IPS) - set(failed)
    # Still due, so their sessions wait for a snapshot.
    snaps = snapshots(db)
    # Their ASN and country wait for Cymru (is_scanner is known: GreyNoise is disabled here).
    assert sorted(s["ip"] for s in snaps.values() if s["snapshot_asn_source"] is None) == failed
    assert sorted(s["ip"] for s in snaps.values() if s["snapshot_complete_at"] is None) == failed
    # The operator sees them waiting.
    capsys.readouterr()
    assert cli.main(["status"]) == 0
    status_out = " ".join(capsys.readouterr().out.split())
    assert "failures waiting for retry (open)" in status_out
    assert re.search(r"cymru .*yes .*5 .*1 .*next run", status_out), status_out

    # The fake is healthy again: the next run asks exactly the failed IPs and resolves them.
    server.table[POISON] = fault_table()[POISON]
    server.__dict__.pop("_answer", None)
    queries = len(server.queries)
    assert cli.main(["enrich", "--source", "cymru"]) == 0

    assert sent(server, queries) == failed and len(server.queries) == queries + 1
    run2 = runs(db)[-1]
    assert (run2["status"], run2["requested"], run2["fetched"], run2["merged"], run2["failed"]) == \
        ("succeeded", 5, 5, 5, 0)
    assert all(f["resolved_at"] is not None for f in failures(db))
    assert all(row["current_asn"] == FAULT_ASN[ip] for ip, row in ips(db).items())
    assert_no_wrong_asn(db, FAULT_ASN)
    assert all(s["snapshot_complete_at"] is not None for s in snapshots(db).values())
    assert "cymru" in capsys.readouterr().out


GARBAGE = [
    "AS      | IP               | BGP Prefix          | CC | Registry | Allocated  | AS Name",  # a heading row
    "Bulk mode; whois.cymru.com [2026-01-01 00:00:00 +0000]",  # a second banner
    "Error: unknown command",
    "64499   | 81.2.70.3        | 10.0.0.0/8          | ZZ | arin     | 2001-01-01 | WRONG",  # prefix misses the IP
    "64499   | 8.8.8.8          | 8.8.8.0/24          | ZZ | arin     | 2001-01-01 | WRONG",  # not asked
    "99999999999 | 81.2.70.4    | 81.2.70.0/24        | ZZ | arin     | 2001-01-01 | WRONG",  # not a 32-bit ASN
    "AS64499 | 81.2.70.5        | 81.2.70.0/24        | ZZ | arin     | 2001-01-01 | WRONG",
    "64499   | 81.2.70.6        | 81.2.70.0/24        | ZZ | arin     | 2001-13-45 | WRONG",  # no such date
    "| | | |",
    "just some text",
]


@pytest.mark.parametrize(
    ("fault", "once", "ok"),
    [
        (Behaviour(garbage=GARBAGE), False, True),
        (Behaviour(half_line_after_rows=2), True, True),
        (Behaviour(half_line_after_rows=1, trickle_chunk=7, trickle_delay=0.001), True, True),
        (Behaviour(reset_after_rows=2), True, True),
        (Behaviour(close_after_rows=3), True, True),
        (Behaviour(hang=True), False, False),
        (Behaviour(refuse=True), False, False),
    ],
    ids=["garbage", "half-line", "half-line-trickled", "reset", "cut-short", "hang", "refused"],
)
def test_faults_end_in_correct_data_or_recorded_failures(db, cymru_server, fault, once, ok):
    """`once`: only the first connection misbehaves (the retry must give the right data);
    otherwise every connection does (the data is still right, or every IP is a failure)."""
    chosen = FAULT_IPS[:8]
    server = cymru_server(fault_table())
    if once:
        server.behaviours.append(fault)
    else:
        server.default = fault
    seed(db, {ip: [t("2025-04-01 00:00")] for ip in chosen})

    summary = run_cymru(settings_for(db, server, cymru_batch_size=4), read_timeout=0.2)

    [ps] = summary.passes
    assert_no_wrong_asn(db, FAULT_ASN)
    rows = ips(db)
    if ok:
        assert (summary.exit_code, ps.status, ps.fetched, ps.failed) == (0, "succeeded", 8, 0)
        assert all(row["current_asn"] == FAULT_ASN[ip] for ip, row in rows.items())
        assert failures(db) == []
        assert len(server.queries) == 2 + once  # two batches, and one retry
    else:
        assert (summary.exit_code, ps.status, ps.fetched, ps.failed) == (1, "finished_with_failures", 0, 8)
        assert all("cymru" not in row["enrichment"] and row["current_asn"] is None for row in rows.values())
        assert sorted(f["ip"] for f in failures(db)) == sorted(chosen)
        assert len(server.queries) == 4  # two batches, each tried twice
        assert history(db) == [] and asn_rows(db) == {}


# --- ASN changes over time ----------------------------------------------------------------------


def test_asn_change_closes_the_old_range_where_the_new_one_opens(db, cymru_server):
    moving, staying = "81.2.69.10", "81.2.69.11"
    as_a = [(64496, "81.2.69.0/24", "US", "arin", "2001-01-01", "AS-A, US")]
    as_b = [(64497, "81.2.69.0/25", "NL", "ripencc", "2012-12-12", "AS-B, NL")]
    server = cymru_server({moving: as_a, staying: as_a})
    seed(db, {moving: [t("2025-01-01 00:00"), t("2025-01-02 00:00"), t("2025-01-03 00:00")],
              staying: [t("2025-01-04 00:00"), t("2025-01-05 00:00")]})
    settings = settings_for(db, server)

    assert run_cymru(settings).exit_code == 0
    t1, t1_staying = fetched_at(db, moving), fetched_at(db, staying)
    assert history(db) == [(moving, 64496, t1, None, "cymru"), (staying, 64496, t1_staying, None, "cymru")]
    assert asn_rows(db) == {64496: ("AS-A, US", "US", "arin", date(2001, 1, 1), 2, 5)}

    # A session between the two observations: its snapshot must be AS A, not today's AS B.
    with psycopg.connect(db) as conn:
        between = add_session(conn, moving, datetime.now(UTC))

    server.table[moving] = as_b
    assert run_cymru(settings, force=True).exit_code == 0
    t2 = fetched_at(db, moving)
    assert t1 < t2
    # Exactly one closed range [t1, t2) and one open [t2, ∞): they meet at the observation time.
    assert history(db, moving) == [(moving, 64496, t1, t2, "cymru"), (moving, 64497, t2, None, "cymru")]
    assert history(db, staying) == [(staying, 64496, t1_staying, None, "cymru")]
    assert ips(db)[moving]["current_asn"] == 64497 and ips(db)[staying]["current_asn"] == 64496
    assert asn_rows(db) == {64496: ("AS-A, US", "US", "arin", date(2001, 1, 1), 1, 2),
                            64497: ("AS-B, NL", "NL", "ripencc", date(2012, 12, 12), 1, 4)}
    snap = snapshots(db)[between]
    assert snap["snapshot_asn"] == 64496 and snap["snapshot_at"] is not None

    # The same answer again changes nothing in the history, nor in the tiers (not even row
    # versions): only its fetch time moves, in enrichment_state.
    tiers = ("SELECT 'history' AS t, history_id::text AS k, xmin::text AS x FROM ipintel.ip_asn_history "
             "UNION ALL SELECT 'ip', host(ip), xmin::text FROM ipintel.ip_inventory "
             "UNION ALL SELECT 'asn', asn::text, xmin::text FROM ipintel.asn_inventory ORDER BY 1, 2")
    before = query(db, "SELECT history_id, ip, asn, valid, source, recorded_at, xmin::text AS x "
                       "FROM ipintel.ip_asn_history ORDER BY history_id")
    versions = query(db, tiers)
    assert run_cymru(settings, force=True).exit_code == 0
    assert fetched_at(db, moving) > t2
    assert query(db, "SELECT history_id, ip, asn, valid, source, recorded_at, xmin::text AS x "
                     "FROM ipintel.ip_asn_history ORDER BY history_id") == before
    assert query(db, tiers) == versions
    assert ips(db)[moving]["current_asn"] == 64497
    assert asn_rows(db)[64497][4:] == (1, 4) and asn_rows(db)[64496][4:] == (1, 2)


# --- session snapshots --------------------------------------------------------------------------


def test_cymru_facts_replace_maxmind_name_for_the_same_asn(db, cymru_server):
    ip = "81.2.73.1"
    server = cymru_server({ip: [(64508, "81.2.73.0/24", "GB", "ripencc", "2004-04-04", "CY-SAME, GB")]})
    seed(db, {ip: [t("2025-01-05 10:00")]})
    mm_since = t("2024-01-01 00:00")
    seed_maxmind_asn(db, ip, 64508, "MM-SAME", mm_since)

    assert run_cymru(settings_for(db, server), force=True).exit_code == 0

    assert asn_rows(db) == {64508: ("CY-SAME, GB", "GB", "ripencc", date(2004, 4, 4), 1, 1)}
    [row] = query(db, "SELECT sources FROM ipintel.asn_inventory WHERE asn = 64508")
    assert set(row["sources"]) == {"maxmind", "cymru"}
    # Cymru confirms the ASN MaxMind saw: no change, so the range MaxMind opened stays open.
    assert history(db, ip) == [(ip, 64508, mm_since, None, "maxmind")]
    assert ips(db)[ip]["current_asn"] == 64508


def test_snapshot_asn_is_the_asn_valid_at_the_session_start(db, cymru_server):
    moved, fresh = "81.2.71.1", "81.2.71.2"
    server = cymru_server({moved: [(64506, "81.2.71.0/24", "GB", "ripencc", "2004-04-04", "CY-AS, GB")],
                           fresh: [(64507, "81.2.71.0/24", "GB", "ripencc", "2004-04-04", "OTHER-AS, GB")]})
    before_history, in_maxmind_range = t("2023-06-01 12:00"), t("2024-06-01 12:00")
    seed(db, {moved: [before_history, in_maxmind_range], fresh: [in_maxmind_range]})
    seed_maxmind_asn(db, moved, 64505, "MM-AS", t("2024-01-01 00:00"))
    settings = settings_for(db, server)

    assert run_cymru(settings, force=True).exit_code == 0
    t_cymru = fetched_at(db, moved)
    assert history(db, moved) == [(moved, 64505, t("2024-01-01 00:00"), t_cymru, "maxmind"),
                                  (moved, 64506, t_cymru, None, "cymru")]
    snaps = {(s["ip"], s["first_event_at"]): s for s in snapshots(db).values()}
    # Before any recorded range: today's ASN. Inside MaxMind's (now closed) range: MaxMind's ASN.
    assert snaps[(moved, before_history)]["snapshot_asn"] == 64506
    assert snaps[(moved, in_maxmind_range)]["snapshot_asn"] == 64505
    assert snaps[(fresh, in_maxmind_range)]["snapshot_asn"] == 64507  # no range then: current_asn
    taken = {k: s["snapshot_at"] for k, s in snaps.items()}

    # A session after Cymru's observation gets Cymru's ASN; snapshots already taken stay as they are.
    later = datetime.now(UTC)
    with psycopg.connect(db) as conn:
        add_session(conn, moved, later)
    summary = run_cymru(settings)
    assert summary.passes[0].due == 0 and summary.snapshots == 1
    snaps = {(s["ip"], s["first_event_at"]): s for s in snapshots(db).values()}
    assert snaps[(moved, later)]["snapshot_asn"] == 64506
    assert {k: s["snapshot_at"] for k, s in snaps.items() if k != (moved, later)} == taken
    assert snaps[(moved, in_maxmind_range)]["snapshot_asn"] == 64505


# --- a slow or silent server ----------------------------------------------------------------------


def test_drip_fed_batches_fail_within_their_deadline_and_stay_retryable(db, cymru_server):
    """A line every 0.3 s is never read_timeout (2 s) of silence; the batch deadline (0.5 s) still
    ends each attempt, and the batches become recorded, retryable failures."""
    chosen = FAULT_IPS[:8]
    server = cymru_server(fault_table())
    server.default = Behaviour(drip=0.3)  # banner + 4 rows: 1.5 s for a whole answer
    seed(db, {ip: [t("2025-04-01 00:00")] for ip in chosen})
    started = time.monotonic()

    summary = run_cymru(settings_for(db, server, cymru_batch_size=4), read_timeout=2.0, batch_timeout=0.5)

    elapsed = time.monotonic() - started
    [ps] = summary.passes
    # Two batches over two connections, each tried twice and cut at 0.5 s: about 1 s of waiting.
    assert elapsed < 2 * 0.5 + 1.0, elapsed
    assert (summary.exit_code, ps.status, ps.fetched, ps.failed) == (1, "finished_with_failures", 0, 8)
    recorded = failures(db)
    assert sorted(f["ip"] for f in recorded) == sorted(chosen)
    for f in recorded:
        assert f["retryable"] and f["retry_after"] is None and f["resolved_at"] is None
        assert re.fullmatch(r"CymruTimeoutError: no complete answer within 0\.5s \(\d lines received\) "
                            r"\(after 2 attempts, batch of 4\)", f["error"]), f["error"]
    assert len(server.queries) == 4
    assert all("cymru" not in row["enrichment"] for row in ips(db).values())
    assert due(db) == sorted(chosen)


def test_pass_budget_stops_a_silent_server_and_keeps_what_merged(db, cymru_server):
    """The first batch is answered, then the server goes silent. Without a budget the pass would
    spend 4 batches x 4 attempts x 0.4 s; with IPINTEL_CYMRU_PASS_TIMEOUT=1.5 it stops at 1.5 s:
    the merged batch stays, the rest stays due, and nothing is recorded as failed."""
    chosen = FAULT_IPS
    server = cymru_server(fault_table())
    server.behaviours.append(Behaviour())
    server.default = Behaviour(hang=True)
    seed(db, {ip: [t("2025-04-01 00:00")] for ip in chosen})
    started = time.monotonic()

    summary = run_cymru(settings_for(db, server, cymru_batch_size=4, cymru_concurrency=1),
                        read_timeout=0.4, retries=3, pass_timeout=1.5)

    elapsed = time.monotonic() - started
    [ps] = summary.passes
    assert 1.5 <= elapsed < 1.5 + 1.5, elapsed
    answered = server.queries[0]
    left = sorted(set(chosen) - set(answered))
    assert len(answered) == 4 and len(left) == 16
    message = "Team Cymru pass budget of 1.5s spent (IPINTEL_CYMRU_PASS_TIMEOUT); 16 IPs stay due for a later run"
    # Stopped by a slow or silent service, not by a daily quota: exit 1, so cron tells someone.
    assert (summary.exit_code, ps.status, ps.fetched, ps.merged, ps.failed, ps.message) == \
        (1, "stopped", 4, 4, 0, message)
    [run] = runs(db)
    assert (run["status"], run["requested"], run["fetched"], run["merged"], run["failed"], run["message"]) == \
        ("stopped", 20, 4, 4, 0, message)
    assert failures(db) == []
    rows = ips(db)
    assert sorted(ip for ip, row in rows.items() if "cymru" in row["enrichment"]) == sorted(answered)
    assert all(rows[ip]["current_asn"] == FAULT_ASN[ip] for ip in answered)
    assert_no_wrong_asn(db, FAULT_ASN)
    assert due(db) == left
    assert all(s["snapshot_asn_source"] is None for s in snapshots(db).values() if s["ip"] in left)  # they wait
    # Nothing was tried once the budget was spent: 1.5 s of 0.4 s silences is at most 4 more.
    assert len(server.queries) <= 1 + math.ceil(1.5 / 0.4)


def silent_run_watched(db: str, server: FakeCymruServer, path: Path, silence: float) -> tuple[EnrichSummary, list[Any]]:
    """A Cymru run of 4 IPs against a server silent for `silence` seconds, and every status
    document a monitor polling `path` every 20 ms saw meanwhile."""
    server.default = Behaviour(hang=True)
    seed(db, {ip: [t("2025-04-01 00:00")] for ip in FAULT_IPS[:4]})
    seen: list[dict[str, Any]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if path.exists():  # replaced atomically: never half-written
                seen.append(json.loads(path.read_text(encoding="utf-8")))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        summary = run_cymru(settings_for(db, server), status_file=path, read_timeout=silence, retries=0)
    finally:
        done.set()
        watcher.join()
    assert summary.passes[0].status == "finished_with_failures"
    final = json.loads(path.read_text(encoding="utf-8"))
    assert (final["state"], final["exit_code"], final["passes"][0]["status"]) == ("finished", 1, "finished_with_failures")
    # The documents written while the server was silent: the pass running, nothing fetched or failed.
    stalled = [d for d in seen if d["passes"] and d["passes"][0]["status"] == "running" and d["passes"][0]["failed"] == 0]
    assert all(d["state"] == "running" and len(d["passes"]) == 1 and d["passes"][0]["source"] == "cymru"
               and d["passes"][0]["fetched"] == 0 for d in stalled)
    return summary, stalled


def test_status_file_lists_the_pass_as_soon_as_it_starts(db, cymru_server, tmp_path):
    """With the default 10 s keepalive, a 1 s stall has no keepalive write: the pass is in the
    file all the same, written when it started."""
    _, stalled = silent_run_watched(db, cymru_server(fault_table()), tmp_path / "status.json", 1.0)
    assert stalled


def test_status_file_is_rewritten_while_the_server_is_silent(db, cymru_server, tmp_path, monkeypatch):
    monkeypatch.setattr(StatusFile, "KEEPALIVE_SECONDS", 0.2)
    monkeypatch.setattr(passes, "HEARTBEAT_SECONDS", 0.05)

    _, stalled = silent_run_watched(db, cymru_server(fault_table()), tmp_path / "status.json", 1.5)

    assert any(d["passes"][0]["due"] == 4 for d in stalled)
    # Rewritten all along the 1.5 s stall: every 0.2 s here, every 10 s by default.
    times = sorted({datetime.fromisoformat(d["updated_at"]) for d in stalled})
    assert times[-1] - times[0] > timedelta(seconds=1.0)
    assert max(b - a for a, b in itertools.pairwise(times)) < timedelta(seconds=0.6)


def test_plain_progress_lines_go_out_while_the_server_is_silent(db, cymru_server, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_SECONDS", 0.2)
    monkeypatch.setattr(passes, "HEARTBEAT_SECONDS", 0.05)
    server = cymru_server(fault_table())
    server.default = Behaviour(hang=True)
    seed(db, {ip: [t("2025-04-01 00:00")] for ip in FAULT_IPS[:4]})
    out = io.StringIO()
    reporter = Reporter(Console(file=out, width=200, highlight=False), interactive=False)

    summary = run_cymru(settings_for(db, server), reporter=reporter, read_timeout=1.5, retries=0)

    assert summary.passes[0].status == "finished_with_failures"
    lines = out.getvalue().splitlines()
    assert lines[0] == "cymru: started (4 items)"
    waiting = [line for line in lines
               if re.fullmatch(r"cymru: 0% merged=0 failed=0 waiting=\d+s budget_left=\d+s", line)]
    # 1.5 s of silence, a plain line at most every 0.2 s (every 10 s by default), counting up.
    assert len(waiting) >= 4, lines
    seconds = [int(re.search(r"waiting=(\d+)s", line)[1]) for line in waiting]  # type: ignore[index]  # all matched above
    assert seconds == sorted(seconds) and seconds[0] == 0 and seconds[-1] >= 1, lines


def test_batch_and_pass_timeouts_are_configured(db, monkeypatch, cli_database):
    cli_database(db)
    settings = CymruPass(config.load()).settings
    assert (settings.batch_timeout, settings.pass_timeout) == (120.0, 1800.0)
    monkeypatch.setenv("IPINTEL_CYMRU_BATCH_TIMEOUT", "45")
    monkeypatch.setenv("IPINTEL_CYMRU_PASS_TIMEOUT", "600.5")
    settings = CymruPass(config.load()).settings
    assert (settings.batch_timeout, settings.pass_timeout) == (45.0, 600.5)
    monkeypatch.setenv("IPINTEL_CYMRU_PASS_TIMEOUT", "0")
    with pytest.raises(config.ConfigError, match="IPINTEL_CYMRU_PASS_TIMEOUT must be positive"):
        config.load()
