"""The charts of `ipintel report --format html`: matplotlib figures rendered to inline SVG.

Why matplotlib and SVG: the report must be one file that works offline, and some of what it
shows is chosen by attackers (AS names, client versions). matplotlib is the long-kept standard
plotting library of Python (wheels for every platform, typed, no network at any point); it
writes static SVG, so the report carries no JavaScript at all: nothing to inline or fetch,
nothing to execute, it opens in any browser or mail client and prints as drawn. Every label is
XML-escaped by matplotlib's SVG writer, mathtext is off (a `$` in an AS name stays a `$`), and
labels are cut to one printable line before they get there. A Vega-Lite/Altair report would
need its JavaScript runtime inlined into every file (or vl-convert's embedded JavaScript engine
to render it) and the attacker's strings inside a script's JSON.
"""

from __future__ import annotations

import io
import unicodedata
import warnings
from collections.abc import Sequence
from datetime import date
from typing import Any

import matplotlib
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

WIDTH_IN = 9.0
BAR_COLOR = "#3b6ea8"
LINE_COLOR = "#c0392b"
LABEL_CHARS = 42

# Text as <text> elements (selectable, searchable, small), no mathtext, reproducible ids, no date.
RC: dict[Any, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "svg.hashsalt": "ipintel",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def label(text: object, limit: int = LABEL_CHARS) -> str:
    """One printable line of at most `limit` characters (control and format characters, and
    newlines, become a space; a cut label ends with an ellipsis)."""
    cleaned = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in str(text))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _svg(fig: Figure, chart_id: str) -> str:
    buffer = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a glyph the font lacks (an AS name in Thai): drawn as a box
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buffer.getvalue()
    svg = text[text.index("<svg"):]  # inline in HTML: no XML declaration, no DOCTYPE
    return svg.replace("<svg ", f'<svg id="{chart_id}-svg" role="img" ', 1)


def sessions_over_time(days: Sequence[date], sessions: Sequence[int], ips: Sequence[int]) -> str:
    """Sessions per day (bars, or an area when there are many days) and distinct IPs per day."""
    x: Any = list(days)  # matplotlib's date converter takes dates; its stubs want numbers
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(WIDTH_IN, 3.2))
        ax = fig.subplots()
        if len(days) <= 62:
            ax.bar(x, sessions, color=BAR_COLOR, label="sessions", gid="sessions-bars")
        else:
            ax.fill_between(x, sessions, color=BAR_COLOR, alpha=0.8, label="sessions", gid="sessions-area")
        ax.plot(x, ips, color=LINE_COLOR, linewidth=1.5, label="distinct IPs", gid="ips-line")
        locator = AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.set_ylabel("per day (UTC)")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, frameon=False)
        ax.grid(axis="y", alpha=0.3)
        return _svg(fig, "chart-sessions-over-time")


def horizontal_bars(chart_id: str, labels: Sequence[str], values: Sequence[int], xlabel: str) -> str:
    """One bar per row, the first row on top (labels are cut to one printable line)."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(WIDTH_IN, 0.8 + 0.32 * max(len(labels), 1)))
        ax = fig.subplots()
        positions = list(range(len(labels)))
        ax.barh(positions, values, color=BAR_COLOR, gid=f"{chart_id}-bars")
        ax.set_yticks(positions, [label(t) for t in labels])
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        for y, v in zip(positions, values, strict=True):
            ax.annotate(f"{v:,}", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        return _svg(fig, chart_id)
