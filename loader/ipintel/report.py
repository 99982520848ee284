"""`ipintel report --format json|html`: the report's data, read once, written for scripts or people.

Everything is computed by the functions of sql/095_analyst_views.sql and sql/097_reports.sql
through the named queries of sql/queries.sql; this module only arranges the rows. The HTML is
one self-contained file (styles and SVG charts inline, no script, no external resource; a
Content-Security-Policy that forbids any) and every value in it is escaped: AS names and client
versions are chosen by attackers.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Any

import psycopg

from ipintel import __version__, db

# Each part of the report: its key in the JSON document and the named query that fills it.
PARTS: dict[str, str] = {
    "sessions_by_day": "report_activity_by_day",
    "top_asns": "report_activity_by_asn",
    "top_countries": "report_activity_by_country",
    "classes": "report_activity_by_class",
    "new_asns_this_week": "report_new_asns",
    "asn_moves": "report_asn_moves",
    "sources": "report_sources",
    "routing_snapshots": "report_routing_snapshots",
}


def collect(conn: psycopg.Connection[Any], *, since: datetime, until: datetime, top: int) -> dict[str, Any]:
    """The whole report for sessions that started in [since, until), `top` rows per ranking."""
    params = {"since": since, "until": until, "top": top}
    totals = db.query_one(conn, db.query("report_totals"), params)
    assert totals is not None
    data: dict[str, Any] = {
        "tool": f"ipintel {__version__}",
        "generated_at": datetime.now(UTC),
        "window": {"since": since, "until": until, "until_is_exclusive": True},
        "totals": totals,
        "empty": totals["sessions"] == 0,
        "database_empty": totals["sessions_in_database"] == 0,
    }
    for key, name in PARTS.items():
        data[key] = db.query_all(conn, db.query(name), params)
    return data


def _plain(value: object) -> object:
    """JSON for what psycopg returns: times as ISO 8601, addresses as text, numerics as numbers."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, IPv4Address | IPv6Address | IPv4Interface | IPv6Interface | IPv4Network | IPv6Network):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, default=_plain, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 70rem;
       color: #1d1d1f; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.window { color: #555; margin-top: 0; }
.totals { display: flex; flex-wrap: wrap; gap: 0.8rem; padding: 0; list-style: none; }
.totals li { background: #f3f5f8; border-radius: 6px; padding: 0.6rem 1rem; min-width: 8rem; }
.totals b { display: block; font-size: 1.4rem; }
figure.chart { margin: 1rem 0 2rem; } figure.chart svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0 1rem; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.empty { background: #fff7e0; border: 1px solid #f0d78c; padding: 1rem; border-radius: 6px; }
footer { margin-top: 3rem; color: #777; font-size: 0.85rem; }
code { font-size: 0.85rem; }
"""
# No script, no fetch, no frame, no form: the file can only show itself.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def escape(text: str) -> str:
    """HTML-escaped text, quotes included, without control characters (a parse error in HTML;
    each becomes U+FFFD, as a browser would show it)."""
    return html.escape(_CONTROL.sub("\ufffd", text), quote=True)


def _cell(column: str, value: object) -> str:
    if value is None:
        return '<td class="none">–</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int) and (column.endswith("asn") or column.endswith("_id")):
        return f'<td class="n">{value}</td>'  # a number that names something: no thousands separator
    if isinstance(value, int | float | Decimal):
        return f'<td class="n">{value:,}</td>'
    if isinstance(value, datetime):
        return f"<td>{value.astimezone(UTC):%Y-%m-%d %H:%M}</td>"
    if isinstance(value, list | dict):
        return f"<td><code>{escape(json.dumps(value, default=_plain, ensure_ascii=False))}</code></td>"
    return f"<td>{escape(str(value))}</td>"


def _table(rows: list[dict[str, Any]], table_id: str, columns: list[str] | None = None) -> str:
    if not rows:
        return '<p class="none">none</p>'
    columns = columns or list(rows[0])
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(c, r[c]) for c in columns) + "</tr>" for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(chart_id: str, svg: str, caption: str) -> str:
    return f'<figure class="chart" id="{chart_id}">{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def _asn_label(row: dict[str, Any]) -> str:
    if row["asn"] is None:
        return "unknown ASN"
    return f"AS{row['asn']} {row['as_name'] or ''}".strip()


def _charts(data: dict[str, Any]) -> str:
    from ipintel import charts  # matplotlib is imported only when a chart is drawn

    days = data["sessions_by_day"]
    parts = [_figure("chart-sessions-over-time",
                     charts.sessions_over_time([d["day"] for d in days], [d["sessions"] for d in days],
                                               [d["ips"] for d in days]),
                     "Sessions per day (bars or area) and distinct source IPs per day (line), UTC.")]
    asns, countries, classes = data["top_asns"], data["top_countries"], data["classes"]
    parts.append(_figure("chart-top-asns",
                         charts.horizontal_bars("chart-top-asns", [_asn_label(r) for r in asns],
                                                [r["sessions"] for r in asns], "sessions"),
                         f"Top {len(asns)} networks by sessions, attributed as of each session (its snapshot)."))
    parts.append(_figure("chart-top-countries",
                         charts.horizontal_bars("chart-top-countries", [r["country"] for r in countries],
                                                [r["sessions"] for r in countries], "sessions"),
                         f"Top {len(countries)} countries by sessions (geolocation at the session's time; "
                         "XX: unknown)."))
    parts.append(_figure("chart-class-mix",
                         charts.horizontal_bars("chart-class-mix",
                                                [f"{r['ip_type']} / {r['scanner']}" for r in classes],
                                                [r["sessions"] for r in classes], "sessions"),
                         "Class mix: infrastructure class (ip_type) / scanner verdict of the source IPs."))
    return "\n".join(parts)


def _provenance(data: dict[str, Any]) -> str:
    sources = [{**s, "builds": [datetime.fromtimestamp(b, UTC).strftime("%Y-%m-%d %H:%M") if b > 10**8 else b
                                for b in (s["builds"] or [])] or None}
               for s in data["sources"]]
    attribution = ""
    if "GeoLite2" in json.dumps([s["provenance"] for s in data["sources"]]):
        attribution = ("<p>This product includes GeoLite2 data created by MaxMind, available from "
                       "https://www.maxmind.com. The demo's GeoLite2 build is old (2018): never use it for "
                       "attribution.</p>")
    return ("<h3>Sources</h3>"
            "<p>What each registered source answered (enrichment_state), the data builds of the answers kept "
            "(a database's build time, UTC), and the latest run with where its data came from.</p>"
            + _table(sources, "sources-table",
                     ["source", "kind", "enabled", "ips_answered", "first_fetched_at", "last_fetched_at", "builds",
                      "last_run_id", "last_run_status", "last_run_finished_at", "provenance"])
            + attribution
            + "<h3>Routing history</h3>"
            + _table(data["routing_snapshots"], "routing-table"))


def to_html(data: dict[str, Any]) -> str:
    window = data["window"]
    since, until = window["since"], window["until"]
    span = f"{since:%Y-%m-%d} to {until:%Y-%m-%d %H:%M} UTC (sessions that started in that window; end exclusive)"
    totals = data["totals"]
    if data["database_empty"]:
        body = ('<p class="empty" id="empty">The database holds no sessions yet: there is nothing to report. '
                "Load Cowrie logs with <code>ipintel ingest</code>, then run <code>ipintel enrich</code>.</p>")
    elif data["empty"]:
        body = (f'<p class="empty" id="empty">No session started in this window. The database holds '
                f"{totals['sessions_in_database']:,} sessions, from {totals['first_in_database']:%Y-%m-%d} "
                f"to {totals['last_in_database']:%Y-%m-%d}.</p>")
    else:
        figures = [("sessions", "sessions"), ("ips", "source IPs"), ("asns", "ASNs"), ("countries", "countries"),
                   ("logins", "successful logins"), ("commands", "commands"), ("downloads", "downloads")]
        tiles = "".join(f"<li><b>{totals[k] or 0:,}</b>{escape(text)}</li>" for k, text in figures)
        body = (f'<ul class="totals" id="totals">{tiles}</ul>'
                f"<h2>Charts</h2>{_charts(data)}"
                "<h2>New networks this week</h2><p>ASNs with sessions in the seven days before the end of the window "
                "and none in the four weeks before.</p>"
                + _table(data["new_asns_this_week"], "new-asns-table",
                         ["asn", "as_name", "this_week", "four_weeks_before"])
                + "<h2>Top networks</h2>" + _table(data["top_asns"], "top-asns-table")
                + "<h2>Top countries</h2>" + _table(data["top_countries"], "top-countries-table"))
    moves = ("<h2>ASN moves</h2><p>IPs whose origin AS changed in the window (ip_asn_history), newest first.</p>"
             + _table(data["asn_moves"], "asn-moves-table"))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ipintel report {since:%Y-%m-%d} to {until:%Y-%m-%d}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>ipintel attribution report</h1>
<p class="window">{escape(span)}</p>
{body}
{moves}
<h2>Provenance</h2>
{_provenance(data)}
<footer>Generated by {escape(data['tool'])} at {data['generated_at']:%Y-%m-%d %H:%M} UTC. Sessions are attributed
as of their own time (session snapshots); where a snapshot does not know a field yet, the IP's current value.
</footer>
</body>
</html>
"""
