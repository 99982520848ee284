"""The bench table and its regression gate (bench/table.py): rows in, verdicts out, no database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import table


def rate_row(case: str, ratio: float | None) -> dict[str, Any]:
    """A rate against its floor: higher is better."""
    return table.row(case, "1,000 IPs", "700 IPs/s", floor="1,000 rows/s", floor_kind="COPY", ratio=ratio,
                     target=">=0.7x floor", target_op=">=", target_value=0.7)


def time_row(case: str, ratio: float | None) -> dict[str, Any]:
    """A duration against its floor: lower is better."""
    return table.row(case, "1,000 sessions", "2 s", floor="1 s", ratio=ratio, target="<=1x COPY",
                     target_op="<=", target_value=1.0)


def verdict(reference: list[dict[str, Any]], latest: list[dict[str, Any]], case: str) -> table.Verdict:
    [v] = [v for v in table.gate(reference, latest) if v.case == case]
    return v


@pytest.mark.parametrize(("make", "reference", "latest", "failed"), [
    (rate_row, 0.63, 0.30, True),    # a rate 2.1x lower
    (rate_row, 0.57, 0.30, False),   # 1.9x lower
    (rate_row, 0.30, 0.90, False),   # 3x higher: better
    (time_row, 1.00, 2.10, True),    # a duration ratio 2.1x higher
    (time_row, 1.00, 1.90, False),   # 1.9x higher
    (time_row, 3.00, 1.00, False),   # 3x lower: better
])
def test_a_ratio_more_than_twice_worse_fails_in_its_direction(make: Any, reference: float, latest: float,
                                                              failed: bool) -> None:
    v = verdict([make("c", reference)], [make("c", latest)], "c")
    assert v.failed is failed
    assert v.status == ("regressed" if failed else "ok")
    if failed:
        # one line, naming the case and both ratios
        assert "\n" not in v.message and "c:" in v.message
        assert f"{latest:.3g}x" in v.message and f"{reference:.3g}x" in v.message


def test_a_rate_falling_to_zero_fails() -> None:
    assert verdict([rate_row("c", 0.5)], [rate_row("c", 0.0)], "c").failed


def test_a_case_of_the_reference_not_measured_fails_and_a_new_case_is_not_gated() -> None:
    reference = [rate_row("old", 0.5), time_row("kept", 1.0)]
    latest = [time_row("kept", 1.0), rate_row("new", 0.01)]
    verdicts = {v.case: v for v in table.gate(reference, latest)}
    assert verdicts["old"].status == "missing" and verdicts["old"].failed
    assert "old" in verdicts["old"].message
    assert verdicts["kept"].status == "ok"
    assert verdicts["new"].status == "new" and not verdicts["new"].failed


def test_a_ratio_lost_in_this_run_fails_and_a_reference_without_ratio_is_not_gated() -> None:
    assert verdict([time_row("c", 1.0)], [time_row("c", None)], "c").status == "missing"
    v = verdict([time_row("c", None)], [time_row("c", 50.0)], "c")
    assert v.status == "not gated" and not v.failed


def test_rows_written_by_hand_take_their_direction_and_verdict_from_the_target_text() -> None:
    # Another case's rows may carry only the text target, or only "met".
    by_text = {"case": "ingest", "ratio": 0.4, "target": ">=0.7x floor"}
    assert table.direction(by_text) == "higher"
    assert table.met(by_text) is False
    assert table.direction({"case": "x", "ratio": 3.0, "target": "≤1x COPY"}) == "lower"
    assert table.met({"case": "x", "ratio": 0.9, "target": "≤1x COPY"}) is True
    assert table.met({"case": "x", "ratio": 9.0, "target": "<100 ms", "met": True}) is True
    assert table.met({"case": "x", "ratio": None, "target": "none set"}) is None
    assert table.direction({"case": "x", "ratio": 1.0, "target": "none set", "better": "lower"}) == "lower"
    assert verdict([by_text], [{**by_text, "ratio": 0.1}], "ingest").failed


def test_met_is_the_ratio_against_the_target_unless_the_row_says() -> None:
    assert rate_row("a", 0.71)["met"] is True and rate_row("a", 0.69)["met"] is False
    assert time_row("b", 1.0)["met"] is True and time_row("b", 1.01)["met"] is False
    said = table.row("u", "1 IP", "0.3 s", ratio=0.02, better="lower", target="<=3 s, no row written", met_=False)
    assert said["met"] is False and said["better"] == "lower"


def test_rows_are_collected_from_every_case_in_order_and_compare_reads_both_directions(tmp_path: Path) -> None:
    results = {"run": {"argv": []}, "a": {"table_rows": [rate_row("a1", 0.5), time_row("a2", 2.0)]},
               "b": {"figures": 1}, "c": {"table_rows": [time_row("c1", 1.0)]}}
    assert [r["case"] for r in table.collect_rows(results)] == ["a1", "a2", "c1"]
    lines = {line["case"]: line for line in table.compare(
        [rate_row("a1", 0.5), time_row("a2", 2.0), time_row("gone", 1.0)],
        [rate_row("a1", 0.25), time_row("a2", 1.0), time_row("c1", 1.0)])}
    assert lines["a1"]["change"] == "2.00x worse"
    assert lines["a2"]["change"] == "2.00x better"
    assert lines["c1"]["change"] == "new" and lines["gone"]["change"] == "not measured"


def test_results_rotate_to_previous_and_the_gate_command_exits_1_on_a_regression(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latest = tmp_path / "quick-latest.json"
    assert table.write_results(latest, {"a": {"table_rows": [time_row("c", 1.0)]}}) is None
    rotated = table.write_results(latest, {"a": {"table_rows": [time_row("c", 2.5)]}})
    assert rotated == tmp_path / "quick-previous.json"
    assert table.load_rows(rotated)[0]["ratio"] == 1.0
    assert table.main(["gate", str(rotated), str(latest)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bench: c: ratio 2.5x against 1x" in err[0]
    assert table.main(["gate", str(latest), str(rotated)]) == 0
    assert table.main(["compare", str(rotated), str(latest)]) == 0
    assert "2.50x worse" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text(json.dumps([1, 2]), encoding="utf-8")
    assert table.load_rows(tmp_path / "bad.json") == []
    with pytest.raises(SystemExit, match="no such results file"):
        table.load_rows(tmp_path / "absent.json")


def test_best_of_two_runs_keeps_each_ratio_s_better_figure_in_its_direction() -> None:
    first = [rate_row("r", 0.2), time_row("t", 3.0), time_row("only-first", 1.0)]
    second = [rate_row("r", 0.5), time_row("t", 4.0)]
    best = {r["case"]: r["ratio"] for r in table.best_of(first, second)}
    assert best == {"r": 0.5, "t": 3.0, "only-first": 1.0}
    assert not verdict([rate_row("r", 0.5)], table.best_of([rate_row("r", 0.2)], [rate_row("r", 0.3)]), "r").failed


def test_a_rerun_keeps_every_argument_but_the_cases_and_files() -> None:
    from bench.__main__ import rerun_argv

    argv = ["--only", "maxmind", "--ips", "50000", "--only=cymru", "--out", "x.json", "--reference", "r.json",
            "--cymru-latency", "0.5"]
    assert rerun_argv(argv, {"remerge", "maxmind_pass"}, Path("retry.json")) == [
        "--ips", "50000", "--cymru-latency", "0.5", "--only", "maxmind", "--only", "remerge", "--out", "retry.json"]


def test_a_reference_takes_each_ratio_s_worst_of_the_runs(tmp_path: Path) -> None:
    one, two, ref = tmp_path / "one.json", tmp_path / "two.json", tmp_path / "ref.json"
    one.write_text(json.dumps({"a": {"table_rows": [rate_row("r", 0.5), time_row("t", 1.0)], "x": 1}}), "utf-8")
    two.write_text(json.dumps({"a": {"table_rows": [rate_row("r", 0.3), time_row("t", 0.8)]}}), "utf-8")
    assert table.main(["reference", str(ref), str(one), str(two)]) == 0
    assert {r["case"]: r["ratio"] for r in table.load_rows(ref)} == {"r": 0.3, "t": 1.0}
    assert json.loads(ref.read_text("utf-8"))["a"] == {"x": 1}
