"""`ipintel snapshots redo`: the audited re-take of snapshots, from the command line."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from ipintel import cli
from tests.test_cli_errors import one_line, run, usage_error

SETUP = """
UPDATE ipintel.enrichment_policy SET enabled = (source = 'maxmind');
INSERT INTO ipintel.ip_inventory (ip, first_seen, last_seen, session_count) VALUES ('81.2.69.7', '2018-05-07', '2018-05-07', 1);
INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip)
VALUES ('old', '2018-05-07 10:00Z', '2018-05-07 10:01Z', '81.2.69.7');
SELECT ipintel.take_snapshots();
INSERT INTO ipintel_staging.routing_prefixes (batch_id, prefix, asn) VALUES (-1, '81.2.69.0/24', 64500);
SELECT ipintel.load_routing_snapshot('routeviews', '2018-05-06', 'routeviews-rv2-20180506-1200.pfx2as.gz', -1);
"""


def test_redo_takes_the_window_again_and_records_why(db: str, cli_database: Callable[[str], None],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(db) as conn:
        conn.execute(SETUP)
    cli_database(db)
    code, out, err = run(["snapshots", "redo", "--since", "2018-05-01", "--until", "2018-06-01",
                          "--reason", "RouteViews May 2018 loaded"], capsys)
    assert (code, err) == (0, "")
    assert "1 reset, 1 taken again" in out
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT snapshot_asn, snapshot_asn_source FROM ipintel.session_summaries").fetchone() == (
            64500, "routing:routeviews:2018-05-06")
        assert conn.execute("SELECT reason, sessions_reset FROM ipintel.snapshot_redos").fetchone() == (
            "RouteViews May 2018 loaded", 1)


def test_redo_needs_an_ordered_window_and_a_reason(db: str, cli_database: Callable[[str], None],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    code, _, err = run(["snapshots", "redo", "--since", "2018-06-01", "--until", "2018-05-01", "--reason", "x"], capsys)
    assert (code, one_line(err)) == (2, "ipintel snapshots redo: --since 2018-06-01 is not before --until 2018-05-01")
    code, _, err = run(["snapshots", "redo", "--since", "2018-05-01", "--until", "2018-06-01", "--reason", " "], capsys)
    assert code == 2 and "--reason must say why" in one_line(err)
    assert "--reason" in usage_error(["snapshots", "redo", "--since", "2018-05-01", "--until", "2018-06-01"], capsys)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM ipintel.snapshot_redos").fetchone() == (0,)
    assert cli.main(["snapshots", "redo", "--since", "2018-05-01", "--until", "2018-06-01", "--reason", "ok"]) == 0
