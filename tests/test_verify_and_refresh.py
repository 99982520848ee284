"""`ipintel verify` (clean after the demo, drift planted on purpose is found, exit codes) and
`ipintel enrich --asn N / --country CC` (exactly those IPs are re-fetched) (issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from ipintel import cli


def test_verify_is_clean_after_the_demo_and_finds_planted_drift(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    cli_database(db)
    monkeypatch.setattr(cli.console, "width", 200)  # each rule's text on one line, whatever the examples' width
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 0
    capsys.readouterr()

    assert cli.main(["verify"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "verify: no drift (" in out and "3,000 sessions checked" in out
    assert "all match a recount from scratch" in out

    # Drift in the counts: one IP's session count, one ASN's IP count (as a bug or a hand edit would).
    with psycopg.connect(db) as conn:
        ip = conn.execute("UPDATE ipintel.ip_inventory SET session_count = session_count + 5 "
                          "WHERE ip = (SELECT min(ip) FROM ipintel.ip_inventory) RETURNING host(ip), session_count"
                          ).fetchone()
        conn.execute("INSERT INTO ipintel.asn_inventory (asn, ip_count, session_count) VALUES (64999, 3, 7)")
    assert ip is not None
    assert cli.main(["verify"]) == 1
    out = capsys.readouterr().out
    assert "verify: DRIFT: 3 count(s) differ, 0 snapshot rule(s) broken" in out, out
    assert f"{ip[0]}: stored {ip[1]}, recounted {ip[1] - 5}" in out
    assert "64999: stored 3, recounted 0" in out and "64999: stored 7, recounted 0" in out

    with psycopg.connect(db) as conn:
        conn.execute("UPDATE ipintel.ip_inventory SET session_count = session_count - 5 WHERE host(ip) = %s", (ip[0],))
        conn.execute("DELETE FROM ipintel.asn_inventory WHERE asn = 64999")
        # An unaudited rewrite of snapshots: the guard switched off, a source that says nothing.
        conn.execute("ALTER TABLE ipintel.session_summaries DISABLE TRIGGER session_summaries_snapshot_is_immutable")
        conn.execute("UPDATE ipintel.session_summaries SET snapshot_country_source = 'a-hand-edit' "
                     "WHERE session_id = (SELECT min(session_id) FROM ipintel.session_summaries)")
    assert cli.main(["verify"]) == 1
    out = capsys.readouterr().out
    assert "0 count(s) differ, 2 snapshot rule(s) broken" in out, out
    assert "snapshot_country_source is a registered source" in out

    with psycopg.connect(db) as conn:
        conn.execute("ALTER TABLE ipintel.session_summaries ENABLE TRIGGER session_summaries_snapshot_is_immutable")
    assert cli.main(["verify"]) == 1
    out = capsys.readouterr().out
    assert "1 snapshot rule(s) broken" in out and "0 attribution rule(s) broken" in out, out

    # Drift in the rollup: one group's count edited by hand (the days the edits above queued are
    # rolled up first: an update of session_summaries by hand queues every day since 0065, so every
    # day of the demo is recounted; a write to attribution_daily itself queues nothing).
    with psycopg.connect(db) as conn:
        days = conn.execute("SELECT count(DISTINCT (first_event_at AT TIME ZONE 'UTC')::date) "
                            "FROM ipintel.session_summaries WHERE snapshot_at IS NOT NULL").fetchone()
        assert days is not None and days[0] > 1
        assert conn.execute("SELECT ipintel.roll_up_attribution()").fetchone() == days
        conn.execute("UPDATE ipintel.attribution_daily SET sessions = sessions + 1 "
                     "WHERE ctid = (SELECT min(ctid) FROM ipintel.attribution_daily)")
    assert cli.main(["verify"]) == 1
    out = capsys.readouterr().out
    # The edited group differs from a recount (rule 1), and attribution_asn_daily, rolled up
    # before the edit, no longer equals attribution_daily merged per day and ASN (rule 3).
    assert "2 attribution rule(s) broken" in out and "attribution_daily's counts equal" in out, out
    assert "attribution_asn_daily equals" in out, out


def test_verify_on_an_empty_database_is_clean(db: str, cli_database: Callable[[str], None],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    assert cli.main(["verify"]) == 0
    assert "verify: no drift (0 ASNs, 0 IPs, 0 sessions checked" in capsys.readouterr().out


STATE = """SELECT host(ip), fetched_at FROM ipintel.enrichment_state WHERE source = 'maxmind' ORDER BY ip"""


@pytest.fixture
def answered(db: str, cli_database: Callable[[str], None]) -> str:
    """Five IPs in two ASNs and three countries, each answered by MaxMind a day ago from a build no
    older than the installed one (not due)."""
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO ipintel.asn_inventory (asn) VALUES (64500), (64501)")
        conn.execute("INSERT INTO ipintel.ip_inventory (ip, current_asn, geo_country) VALUES "
                     "('81.2.69.142', 64500, 'GB'), ('81.2.69.160', 64500, 'GB'), ('89.160.20.112', 64501, 'SE'), "
                     "('89.160.20.128', 64501, 'SE'), ('216.160.83.56', NULL, 'US')")
        conn.execute("INSERT INTO ipintel.enrichment_state (ip, source, fetched_at, build, changed_at) "
                     "SELECT ip, 'maxmind', now() - interval '1 day', 4102444800, now() - interval '1 day' "
                     "FROM ipintel.ip_inventory")
    cli_database(db)
    return db


def refetched(db: str, before: list[tuple[str, object]]) -> list[str]:
    with psycopg.connect(db) as conn:
        after = dict(conn.execute(STATE).fetchall())
    return sorted(ip for ip, fetched in before if after[ip] != fetched)


def test_enrich_asn_and_country_refetch_exactly_those_ips(answered: str, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(answered) as conn:
        before = conn.execute(STATE).fetchall()
    assert cli.main(["enrich", "--source", "maxmind"]) == 0  # nothing due: nothing fetched
    assert refetched(answered, before) == []

    assert cli.main(["enrich", "--source", "maxmind", "--asn", "AS64501"]) == 0
    assert "AS 64501: 2 IPs in ip_inventory to re-fetch" in capsys.readouterr().err
    assert refetched(answered, before) == ["89.160.20.112", "89.160.20.128"]

    with psycopg.connect(answered) as conn:
        before = conn.execute(STATE).fetchall()
        # geo_country is what MaxMind's answer said: read it back, so the test follows the data
        countries = dict(conn.execute("SELECT host(ip), geo_country FROM ipintel.ip_inventory").fetchall())
    country = countries["81.2.69.142"]
    assert cli.main(["enrich", "--source", "maxmind", "--country", country.lower(), "--ip", "216.160.83.56"]) == 0
    expected = sorted({ip for ip, cc in countries.items() if cc == country} | {"216.160.83.56"})
    assert refetched(answered, before) == expected
    with psycopg.connect(answered) as conn:
        requested = conn.execute("SELECT requested FROM ipintel.enrichment_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    assert requested == (len(expected),)


def test_enrich_asn_with_no_ip_fetches_nothing(answered: str, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(answered) as conn:
        before = conn.execute(STATE).fetchall()
    assert cli.main(["enrich", "--source", "maxmind", "--asn", "65000"]) == 0
    assert "AS 65000: no IP in ip_inventory: nothing to re-fetch" in capsys.readouterr().err
    assert refetched(answered, before) == []


@pytest.mark.parametrize("args, message", [
    (["--asn", "ASX"], "not an AS number"),
    (["--asn", "4294967296"], "not an AS number"),
    (["--country", "GBR"], "not a two-letter country code"),
    (["--country", "1A"], "not a two-letter country code"),
])
def test_enrich_refuses_a_bad_asn_or_country(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["enrich", *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
