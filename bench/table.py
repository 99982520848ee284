"""The one table of `make bench`, the results files, and the regression gate of `make bench-quick`.

Every case's result dict carries "table_rows": a list of dicts, one per line of the table:

    case        what is measured (the key rows are matched on between runs)
    size        the work, as text ("100,000 IPs")
    ipintel     ipintel's figure, a rate or a duration with its unit ("3,336 IPs/s", "38.4 s")
    floor       PostgreSQL's floor for the same work, measured in the same run ("18,600 rows/s")
    floor_kind  what the floor is ("COPY + UPDATE ... FROM, primary key only")
    baseline    the row-by-row or old way, when there is one ("" otherwise)
    ratio       ipintel against the floor (or the baseline when there is no floor), a float or None
    target      the target as text (">=0.7x floor")
and, to check it by machine, either target_op (">=", ">", "<=", "<") with target_value (a float
compared with ratio), or "met" (a bool) — the target text's leading comparison is read when
neither is given. "better" ("higher" or "lower") says which way the ratio improves; without it,
the target's comparison says so (">=": higher). A ratio is always of two figures taken in the same
run, so a loaded machine slows both sides: the gate compares ratios, never absolute times.

Pure functions (rows in, verdicts out) so that tests/test_bench_table.py checks them without a
database; `python -m bench.table compare OLD NEW` and `python -m bench.table gate REFERENCE NEW`
are what `make bench-compare` and `make bench-quick` run.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Row = Mapping[str, Any]
Better = Literal["higher", "lower"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COLUMNS = ("case", "size", "ipintel", "floor", "baseline", "ratio", "target", "met")
# The regression gate: a ratio more than this many times worse than the reference fails.
REGRESSION_FACTOR = 2.0
_TARGET = re.compile(r"^\s*(>=|<=|≥|≤|>|<)\s*([0-9]*\.?[0-9]+)")
_OPS = {"≥": ">=", "≤": "<="}


def row(case: str, size: str, ipintel: str, *, floor: str = "", floor_kind: str = "", baseline: str = "",
        ratio: float | None, target: str, target_op: str | None = None, target_value: float | None = None,
        better: Better | None = None, met_: bool | None = None, **extra: Any) -> dict[str, Any]:
    """One table row, in the convention above. `met_`: the verdict, when the target is not a
    bound on the ratio alone (then say `better`)."""
    out: dict[str, Any] = {
        "case": case, "size": size, "ipintel": ipintel, "floor": floor, "floor_kind": floor_kind,
        "baseline": baseline, "ratio": None if ratio is None else round(ratio, 4), "target": target, **extra}
    if target_op is not None and target_value is not None:
        out |= {"target_op": target_op, "target_value": target_value}
    if met_ is not None:
        out["met"] = met_
    out["better"] = better or direction(out)
    out["met"] = met(out)
    return out


def target_of(r: Row) -> tuple[str, float] | None:
    """(op, value) of the row's target: target_op/target_value, else the target text's start."""
    op, value = r.get("target_op"), r.get("target_value")
    if isinstance(op, str) and isinstance(value, (int, float)):
        return _OPS.get(op, op), float(value)
    found = _TARGET.match(str(r.get("target") or ""))
    if found:
        return _OPS.get(found.group(1), found.group(1)), float(found.group(2))
    return None


def direction(r: Row) -> Better | None:
    """Which way the row's ratio improves: its "better", else its target's comparison."""
    better = r.get("better")
    if better in ("higher", "lower"):
        return better  # type: ignore[no-any-return]
    target = target_of(r)
    if target is None:
        return None
    return "higher" if target[0].startswith(">") else "lower"


def ratio_of(r: Row) -> float | None:
    value = r.get("ratio")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def met(r: Row) -> bool | None:
    """The row's own "met" when it says; else its ratio against its target; None: cannot tell."""
    given = r.get("met")
    if isinstance(given, bool):
        return given
    target, ratio = target_of(r), ratio_of(r)
    if target is None or ratio is None:
        return None
    op, value = target
    return {">=": ratio >= value, ">": ratio > value, "<=": ratio <= value, "<": ratio < value}[op]


def collect_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every case's "table_rows", in the order the cases ran (a results file's top level)."""
    rows: list[dict[str, Any]] = []
    for value in results.values():
        if isinstance(value, Mapping):
            rows.extend(dict(r) for r in value.get("table_rows", ()) if isinstance(r, Mapping))
    return rows


@dataclass(frozen=True, slots=True)
class Verdict:
    case: str
    status: Literal["ok", "regressed", "missing", "new", "not gated"]
    reference: float | None
    latest: float | None
    worse_by: float | None  # how many times worse than the reference (below 1: better)
    message: str

    @property
    def failed(self) -> bool:
        return self.status in ("regressed", "missing")


def worse_by(reference: float, latest: float, better: Better) -> float:
    """How many times worse `latest` is than `reference` (1: same, 2: twice as bad, 0.5: twice as good)."""
    if better == "higher":
        return math.inf if latest <= 0 else reference / latest
    return math.inf if reference <= 0 else latest / reference


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.3g}x"


def gate(reference: Sequence[Row], latest: Sequence[Row], factor: float = REGRESSION_FACTOR) -> list[Verdict]:
    """A verdict per case of either run: a ratio more than `factor` times worse than the reference
    (in its direction) regressed; a reference case this run did not measure (or measured without
    a ratio) is missing; both fail. Cases only in this run are new (not gated), and reference rows
    with no ratio or no direction are not gated."""
    now = {str(r.get("case")): r for r in latest}
    verdicts = []
    for ref in reference:
        case = str(ref.get("case"))
        ref_ratio, better = ratio_of(ref), direction(ref)
        if ref_ratio is None or better is None:
            verdicts.append(Verdict(case, "not gated", ref_ratio, ratio_of(now[case]) if case in now else None, None,
                                    f"{case}: no ratio or direction in the reference, not gated"))
            continue
        new = now.get(case)
        new_ratio = ratio_of(new) if new is not None else None
        if new_ratio is None:
            verdicts.append(Verdict(case, "missing", ref_ratio, None, None,
                                    f"bench: {case}: in the reference ({_fmt(ref_ratio)}) but no ratio in this run"))
            continue
        by = worse_by(ref_ratio, new_ratio, better)
        regressed = by > factor
        verdicts.append(Verdict(
            case, "regressed" if regressed else "ok", ref_ratio, new_ratio, by,
            f"bench: {case}: ratio {_fmt(new_ratio)} against {_fmt(ref_ratio)} in the reference, "
            f"{by:.2f}x worse ({better} is better; more than {factor:g}x fails)" if regressed else
            f"{case}: {_fmt(new_ratio)} against {_fmt(ref_ratio)} ({better} is better)"))
    known = {str(r.get("case")) for r in reference}
    verdicts += [Verdict(case, "new", None, ratio_of(r), None, f"{case}: not in the reference, not gated")
                 for case, r in now.items() if case not in known]
    return verdicts


def best_of(first: Sequence[Row], second: Sequence[Row], *, worst: bool = False) -> list[dict[str, Any]]:
    """`first`'s rows, each replaced by `second`'s row of the same case when its ratio is better
    (with `worst`: worse, as a reference that the machine's noise should not fail is made)."""
    again = {str(r.get("case")): r for r in second}
    out = []
    for r in first:
        other = again.get(str(r.get("case")))
        better, mine = direction(r), ratio_of(r)
        theirs = ratio_of(other) if other is not None else None
        if theirs is not None and better is not None and (
                mine is None or (worse_by(mine, theirs, better) > 1 if worst else worse_by(mine, theirs, better) < 1)):
            out.append(dict(other))  # type: ignore[arg-type]
        else:
            out.append(dict(r))
    return out


def compare(previous: Sequence[Row], latest: Sequence[Row]) -> list[dict[str, Any]]:
    """Per case: both ratios, the change as a factor in the ratio's direction, and a size change."""
    before = {str(r.get("case")): r for r in previous}
    after = {str(r.get("case")): r for r in latest}
    out = []
    for case in list(after) + [c for c in before if c not in after]:
        old, new = before.get(case), after.get(case)
        old_ratio = ratio_of(old) if old is not None else None
        new_ratio = ratio_of(new) if new is not None else None
        better = direction(new if new is not None else old)  # type: ignore[arg-type]
        change = ""
        if old_ratio is not None and new_ratio is not None and better is not None:
            by = worse_by(old_ratio, new_ratio, better)
            change = ("same" if abs(by - 1) < 0.05 else
                      f"{by:.2f}x worse" if by > 1 else f"{(1 / by if by else math.inf):.2f}x better")
        elif old is None:
            change = "new"
        elif new is None:
            change = "not measured"
        sizes = (old or {}).get("size"), (new or {}).get("size")
        out.append({"case": case, "previous": _fmt(old_ratio), "latest": _fmt(new_ratio), "change": change,
                    "size": sizes[1] if sizes[0] in (None, sizes[1]) else f"{sizes[0]} -> {sizes[1]}",
                    "ipintel": f"{(old or {}).get('ipintel', '')} -> {(new or {}).get('ipintel', '')}"})
    return out


def cell(r: Row, column: str) -> str:
    if column == "ratio":
        ratio = ratio_of(r)
        return "" if ratio is None else f"{ratio:.3g}x"
    if column == "met":
        verdict = met(r)
        return "" if verdict is None else "yes" if verdict else "NO"
    if column == "floor" and r.get("floor_kind"):
        return f"{r.get('floor', '')} ({r['floor_kind']})" if r.get("floor") else str(r["floor_kind"])
    value = r.get(column)
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def print_table(rows: Iterable[Row], title: str = "ipintel against the floor, same run") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in COLUMNS:
        table.add_column(column, overflow="fold", justify="right" if column == "ratio" else "left")
    for r in rows:
        table.add_row(*(cell(r, c) for c in COLUMNS))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def print_comparison(lines: Sequence[Mapping[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("case", "size", "previous", "latest", "change", "ipintel"):
        table.add_column(column, overflow="fold")
    for line in lines:
        table.add_row(*(str(line[c]) for c in ("case", "size", "previous", "latest", "change", "ipintel")))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def previous_of(out: Path) -> Path:
    """Where `out`'s earlier run is kept: latest.json -> previous.json, quick-latest.json -> quick-previous.json."""
    if "latest" in out.name:
        return out.with_name(out.name.replace("latest", "previous"))
    return out.with_name(f"{out.stem}.previous{out.suffix}")


def write_results(out: Path, results: Mapping[str, Any]) -> Path | None:
    """Writes `out`, first moving an existing one to previous_of(out) (returned, if any)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rotated = None
    if out.exists():
        rotated = previous_of(out)
        out.replace(rotated)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return rotated


def load_rows(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"bench: {path}: no such results file (run `make bench` or `make bench-quick` first)") from None
    except json.JSONDecodeError as e:
        raise SystemExit(f"bench: {path}: not JSON ({e})") from None
    return collect_rows(data) if isinstance(data, dict) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.table", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print a results file's table")
    show.add_argument("results", type=Path)
    cmp = sub.add_parser("compare", help="the change of each ratio between two results files")
    cmp.add_argument("previous", type=Path)
    cmp.add_argument("latest", type=Path)
    g = sub.add_parser("gate", help="exit 1 when a ratio is more than --factor times worse than the reference")
    g.add_argument("reference", type=Path)
    g.add_argument("latest", type=Path)
    g.add_argument("--factor", type=float, default=REGRESSION_FACTOR)
    ref = sub.add_parser("reference", help="write a gate reference: the first run's results, each ratio the "
                                           "worst of the runs given")
    ref.add_argument("out", type=Path)
    ref.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "reference":
        data = json.loads(args.runs[0].read_text(encoding="utf-8"))
        rows = load_rows(args.runs[0])
        for other in args.runs[1:]:
            rows = best_of(rows, load_rows(other), worst=True)
        data["reference"] = {"runs": [str(r) for r in args.runs], "table_rows": rows}
        for key, value in list(data.items()):
            if key != "reference" and isinstance(value, dict):
                value.pop("table_rows", None)
        args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print_table(rows, title=f"{args.out}: the worst ratio of {len(args.runs)} run(s)")
        return 0
    if args.command == "show":
        print_table(load_rows(args.results), title=str(args.results))
        return 0
    if args.command == "compare":
        print_comparison(compare(load_rows(args.previous), load_rows(args.latest)),
                         title=f"{args.previous} -> {args.latest} (ratios; worse/better in each ratio's direction)")
        return 0
    verdicts = gate(load_rows(args.reference), load_rows(args.latest), args.factor)
    for v in verdicts:
        if not v.failed:
            print(f"  {v.message}")
    failed = [v for v in verdicts if v.failed]
    for v in failed:
        print(v.message, file=sys.stderr)
    if not failed:
        print(f"bench: no ratio regressed more than {args.factor:g}x against {args.reference}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
