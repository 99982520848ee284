"""`ipintel report --format json|html` (issue 13): the HTML opens in headless Chromium with its charts
drawn, attacker-chosen strings cannot inject markup, JSON is what the SQL functions return, and an
empty database says so.

Chromium is Debian's `chromium` (`make setup` installs it with the test packages); it runs as
root here, hence --no-sandbox.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from ipintel import cli

CHARTS = ["chart-sessions-over-time", "chart-top-asns", "chart-top-countries", "chart-class-mix"]
# Names attackers choose (AS names come from whois and MaxMind, client versions from the client).
HOSTILE = ('</svg></table><script>alert("as")</script><img src=x onerror=alert(1)> $\\frac{1}{0}$ '
           '{{7*7}} "quoted" & \x07bell')


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is not installed: `make setup` installs it (apt-get install chromium)")
    return found


def headless(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--allow-file-access-from-files", *args],
                          capture_output=True, text=True, timeout=120, check=True)


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's parser meets them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parsed(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def test_the_demo_report_renders_its_charts_in_headless_chromium(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 0
    report = tmp_path / "demo" / "report.html"
    assert f"demo: HTML report: {report}" in capsys.readouterr().out

    # Self-contained: nothing is fetched, nothing runs.
    html = report.read_text(encoding="utf-8")
    tags = parsed(html)
    assert not [t for t, a in tags.tags if t in ("script", "link", "iframe", "img", "object", "embed")]
    assert not [a for _, attrs in tags.tags for a, v in attrs.items() if a in ("src", "href") and v]

    shot = tmp_path / "report.png"
    headless("--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    image = Image.open(shot).convert("L")
    histogram = image.histogram()
    dark = sum(histogram[:200]) / (image.width * image.height)
    assert image.size == (1280, 2400)
    assert dark > 0.02, f"the screenshot is nearly blank ({dark:.1%} of its pixels are drawn)"
    # the bars are the chart colour (#3b6ea8): a good share of the page is drawn in it
    colours = Image.open(shot).convert("RGB").getcolors(1 << 24) or []
    blue = sum(n for n, colour in colours if colour == (0x3b, 0x6e, 0xa8))
    assert blue > 10_000, f"only {blue} pixels of bar colour: were the charts drawn?"

    dom = headless("--dump-dom", report.as_uri()).stdout
    dom_tags = parsed(dom).tags
    for chart in CHARTS:
        assert ("figure", {"class": "chart", "id": chart}) in dom_tags, chart
        assert any(t == "svg" and a.get("id") == f"{chart}-svg" for t, a in dom_tags), chart
    bars = [a["id"] for t, a in dom_tags if t == "g" and a.get("id", "").endswith("-bars")]
    assert set(bars) >= {"chart-top-asns-bars", "chart-top-countries-bars", "chart-class-mix-bars",
                         "sessions-bars"}, bars
    assert sum(1 for t, _ in dom_tags if t == "path") > 40  # bars, axes, ticks
    assert not [t for t, _ in dom_tags if t == "script"]


def test_attacker_chosen_names_are_text_everywhere(db: str, cli_database: Callable[[str], None], tmp_path: Path) -> None:
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO ipintel.asn_inventory (asn, as_name) VALUES (64500, %s)", (HOSTILE,))
        conn.execute("INSERT INTO ipintel.ip_inventory (ip, current_asn, geo_country) VALUES "
                     "('203.0.113.7', 64500, 'DE'), ('203.0.113.8', NULL, 'FR')")
        conn.execute("INSERT INTO ipintel.session_summaries (session_id, first_event_at, last_event_at, source_ip, "
                     "client_version, hassh) VALUES "
                     "('x1', now() - interval '1 day', now() - interval '1 day', '203.0.113.7', %s, %s), "
                     "('x2', now() - interval '2 days', now() - interval '2 days', '203.0.113.8', %s, NULL)",
                     (HOSTILE, HOSTILE, HOSTILE))
    cli_database(db)
    out = tmp_path / "r.html"
    assert cli.main(["report", "--format", "html", "--output", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    tags = parsed(html)
    assert not [t for t, _ in tags.tags if t in ("script", "img")]
    assert not [a for _, attrs in tags.tags for a in attrs if a.startswith("on")]
    assert "&lt;script&gt;alert(&quot;as&quot;)&lt;/script&gt;" in html  # in the table, as text
    assert "AS64500 &lt;/svg&gt;&lt;/table&gt;&lt;script&gt;" in html  # in the chart's label, as text
    assert "\x07" not in html

    out_json = tmp_path / "r.json"
    assert cli.main(["report", "--format", "json", "--output", str(out_json)]) == 0
    doc = json.loads(out_json.read_text(encoding="utf-8"))
    assert doc["top_asns"][0]["as_name"] == HOSTILE  # scripts get the exact bytes

    dom = headless("--dump-dom", out.as_uri()).stdout
    assert not [t for t, _ in parsed(dom).tags if t in ("script", "img")]


def test_json_is_what_the_sql_functions_return(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 0
    capsys.readouterr()
    assert cli.main(["report", "--format", "json", "--since", "2000-01-01", "--top", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    with psycopg.connect(db) as conn:
        days = conn.execute("SELECT day::text, sessions FROM ipintel.activity_by_day('2000-01-01', now())").fetchall()
        countries = conn.execute("SELECT country, sessions FROM ipintel.activity_by_country('2000-01-01', now()) "
                                 "LIMIT 3").fetchall()
        total = conn.execute("SELECT count(*) FROM ipintel.session_summaries").fetchone()
    assert doc["empty"] is False and doc["totals"]["sessions"] == total[0] == 3000  # type: ignore[index]
    assert [(d["day"], d["sessions"]) for d in doc["sessions_by_day"]] == days
    assert [(c["country"], c["sessions"]) for c in doc["top_countries"]] == countries
    assert {s["source"] for s in doc["sources"]} == {"maxmind", "ipinfo", "dbip", "cymru", "greynoise", "dshield"}
    maxmind = next(s for s in doc["sources"] if s["source"] == "maxmind")
    assert maxmind["ips_answered"] > 0 and maxmind["builds"] and maxmind["last_run_status"] == "succeeded"
    assert doc["window"]["since"].startswith("2000-01-01")


def test_an_empty_database_says_so(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    assert cli.main(["report"]) == 0
    assert "The database holds no sessions yet" in capsys.readouterr().out
    assert cli.main(["report", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["empty"] is True and doc["database_empty"] is True and doc["top_asns"] == []
    out = tmp_path / "empty.html"
    assert cli.main(["report", "--format", "html", "--output", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "The database holds no sessions yet: there is nothing to report." in html
    assert 'class="chart"' not in html


def test_output_is_only_for_json_and_html(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    assert cli.main(["report", "--output", str(tmp_path / "x")]) == 2
    assert "--output is for --format json or html" in capsys.readouterr().err
    assert cli.main(["report", "--format", "html", "--output", str(tmp_path / "no" / "such" / "x.html")]) == 2
    assert "cannot write" in capsys.readouterr().err
