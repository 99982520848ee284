"""`ipintel demo` end to end, and the report it prints is what the SQL report functions return.

The functions themselves (windows, top N, unknown ASN, moves) are tested by pgTAP in
tests/sql/report_*/ and tests/sql/status_*/; here the CLI is checked to show exactly their rows.
Real PostgreSQL, the bundled demo MaxMind data, no network (no Cymru address, no GreyNoise key).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from ipintel import cli


def table_rows(out: str, title: str) -> list[list[str]]:
    """The body cells of the rich table printed under `title` (the first one whose title starts so)."""
    lines = out.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(title))
    rows: list[list[str]] = []
    for line in lines[start + 4:]:  # title, top border, header, header rule
        if not line.startswith("│"):
            break
        rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def test_demo_runs_end_to_end_and_reports_what_the_functions_return(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    monkeypatch.setattr(cli.console, "width", 200)  # no cell cut short

    code = cli.main(["demo", "--out", str(tmp_path / "demo-data"), "--seed", "42"])
    out, err = capsys.readouterr()

    assert code == 0, err
    assert "Traceback" not in out + err
    headings = ["demo: 3,000 sessions", "ingest run ", "demo: GreyNoise is skipped", "demo: Team Cymru is skipped",
                "ipintel enrich", "session snapshots taken: ", "ipintel tiers", "top ASNs (1970-01-01 .. ",
                "top countries (1970-01-01 .. ", "by IP type (1970-01-01 .. "]
    positions = [next((n for n, line in enumerate(out.splitlines()) if line.startswith(h)), -1) for h in headings]
    assert -1 not in positions and positions == sorted(positions), out
    assert ["maxmind", "succeeded"] == table_rows(out, "ipintel enrich")[0][:2]

    with psycopg.connect(db) as conn:
        runs = conn.execute("SELECT source, status FROM ipintel.enrichment_runs ORDER BY run_id").fetchall()
        sessions = conn.execute("SELECT count(*) FROM ipintel.session_summaries").fetchone()
        waiting = conn.execute("SELECT count(*) FROM ipintel.snapshot_backlog").fetchone()
        reports = {title: conn.execute(f"SELECT * FROM ipintel.{function}('1970-01-01', now(), 5)").fetchall()
                   for title, function in [("top ASNs", "report_top_asns"), ("top countries", "report_top_countries"),
                                           ("by IP type", "report_ip_types")]}
    # The remote passes the demo does not run are recorded as skipped, as `ipintel enrich` records
    # a source it cannot run; then the offline databases (IPinfo Lite and DB-IP Lite are not
    # installed here, so skipped). Nothing waits for a skipped source: every snapshot is complete
    # (before, the sessions waited 30 days for Team Cymru, GreyNoise and DShield).
    assert runs == [("greynoise", "skipped"), ("dshield", "skipped"), ("cymru", "skipped"),
                    ("maxmind", "succeeded"), ("ipinfo", "skipped"), ("dbip", "skipped")]
    assert sessions == (3000,)
    assert waiting == (0,)
    for title, rows in reports.items():
        assert rows, title
        assert table_rows(out, title) == [[f"{v:,}" if isinstance(v, int) else str(v) for v in row] for row in rows]
