"""`ipintel routing load` on a real PostgreSQL: its one-line usage errors (exit 2, nothing
loaded), and, once ipintel.load_routing_snapshot() exists (revision 0022, the SQL side of issue
11), generated snapshots loaded end to end through the CLI: counts, rejects, a snapshot loaded
twice, any order, a damaged file rolled back alone, the loader role, and the demo's set."""

from __future__ import annotations

import gzip
import ipaddress
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from bench import routing_data as rd
from ipintel import cli, config, routing
from tests.conftest import PgServer
from tests.test_cli_errors import one_line
from tests.test_roles import login_as  # noqa: F401

LOAD_ROUTING_SNAPSHOT = "ipintel.load_routing_snapshot(text, date, text, bigint, text)"


def query(dsn: str, statement: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(statement, params).fetchall()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


@pytest.fixture
def series(tmp_path: Path) -> list[rd.SeriesFile]:
    """Three daily snapshots of ~3,600 prefixes, 2% of them touched a day."""
    return rd.write_series(tmp_path / "routing", days=3, churn_rate=0.02, v4=3_000, v6=600, seed=11)


# --------------------------------------------------------------------------------------------
# Usage errors: one line, exit 2, before anything is loaded (these run at any revision)
# --------------------------------------------------------------------------------------------


def test_a_file_without_a_date_stops_everything_before_loading(
        db: str, cli_database: Callable[[str], None], series: list[rd.SeriesFile], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    undated = tmp_path / "ip2asn-v4.tsv"
    undated.write_text("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n")
    code, out, err = run(["routing", "load", str(series[0].path), str(undated)], capsys)
    assert code == 2 and out == ""
    assert one_line(err) == (f"ipintel routing load: {undated}: no date in the file name (YYYYMMDD); "
                             "give it with --date YYYY-MM-DD")


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing-20200101.pfx2as.gz", "{path}: no such file"),
    (lambda d: d, "{path}: is a folder; name the files (e.g. {path}/*.pfx2as.gz)"),
    (lambda d: write(d / "notes-20200101.txt", "some notes\n"),
     "{path}: cannot tell its format from its name or its first line; give it with --format "
     "(pfx2as, ipasn, iptoasn, mrt)"),
    (lambda d: write(d / "routeviews-rv2-20200101-1200.pfx2as.gz", "not gzip\n"),
     "{path}: cannot be read: Not a gzipped file (b'no')"),
], ids=["missing", "folder", "unknown format", "not gzip"])
def test_files_that_cannot_be_loaded_are_one_line_and_exit_2(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        make: Callable[[Path], Path], message: str) -> None:
    cli_database(db)
    path = make(tmp_path)
    code, out, err = run(["routing", "load", str(path)], capsys)
    assert code == 2 and out == ""
    assert one_line(err) == f"ipintel routing load: {message.format(path=path)}"


def test_mrt_without_pyasn_says_how_to_get_it(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    monkeypatch.setattr(routing, "pyasn_available", lambda: False)
    rib = tmp_path / "rib.20260101.1200.bz2"
    rib.write_bytes(b"BZh9\x17rE8P\x90\x00\x00\x00\x00")  # an empty bzip2 stream: named, not read
    code, _, err = run(["routing", "load", str(rib)], capsys)
    assert code == 2
    assert one_line(err) == (f"ipintel routing load: {rib}: MRT RIB dumps are read with pyasn, which is not "
                             "installed: pip install 'ipintel[mrt]'")


@pytest.mark.parametrize(("argv", "message"), [
    (["routing", "load", "f", "--date", "2018-13-01"],
     "ipintel routing load: argument --date: not a YYYY-MM-DD date: '2018-13-01' (see ipintel routing load --help)"),
    (["routing", "load", "f", "--format", "csv"],
     "ipintel routing load: argument --format: invalid choice: 'csv' (choose from 'pfx2as', 'ipasn', 'iptoasn', "
     "'mrt') (see ipintel routing load --help)"),
    (["routing", "load", "f", "--dataset", "Route Views"],
     "ipintel routing load: argument --dataset: not a dataset name (a lower-case letter, then lower-case letters, "
     "digits or '_'; at most 63): 'Route Views' (see ipintel routing load --help)"),
    (["routing", "load"],
     "ipintel routing load: the following arguments are required: PATH (see ipintel routing load --help)"),
    (["routing"], "ipintel routing: the following arguments are required: COMMAND "
                  "(see ipintel routing --help)"),
])
def test_bad_options_are_one_line_and_exit_2(argv: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert one_line(capsys.readouterr().err) == message


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


# --------------------------------------------------------------------------------------------
# End to end, once revision 0022 is there
# --------------------------------------------------------------------------------------------


@pytest.fixture
def routing_db(db: str) -> str:
    """The test database, once the SQL side of issue 11 (revision 0022) is in it; until then the
    tests that load anything are skipped, saying so."""
    if not query(db, "SELECT to_regprocedure(%s) IS NOT NULL AS found", [LOAD_ROUTING_SNAPSHOT])[0]["found"]:
        pytest.skip(f"{LOAD_ROUTING_SNAPSHOT} does not exist at this revision: the SQL side of issue 11 "
                    "(revision 0022) is not merged yet")
    return db


@pytest.fixture
def other_routing_db(pg_server: PgServer, migrated_template: str, routing_db: str) -> Iterator[str]:
    name = f"ipintel_test_{uuid.uuid4().hex[:10]}"
    with pg_server.janitor(name, template=migrated_template):
        yield pg_server.dsn(name)


def rows_in(path: Path) -> set[tuple[str, int]]:
    return {(r.prefix, r.asn) for r in routing.read(routing.describe(path)) if isinstance(r, routing.PrefixOrigin)}


def valid_on(dsn: str, day: date) -> set[tuple[str, int]]:
    """The (prefix, origin) pairs ipintel.prefix_origins holds as valid at noon (UTC) of `day`."""
    at = datetime.combine(day, time(12), tzinfo=UTC)
    # Bounds compared one by one: the same test whether `valid` is a daterange or a tstzrange.
    found = query(dsn, "SELECT prefix, asn FROM ipintel.prefix_origins "
                       "WHERE lower(valid) <= %(at)s AND (upper(valid) IS NULL OR upper(valid) > %(at)s)", {"at": at})
    return {(str(r["prefix"]), int(r["asn"])) for r in found}


def normalised(rows: set[tuple[str, int]]) -> set[tuple[str, int]]:
    return {(str(ipaddress.ip_network(p)), a) for p, a in rows}


LINE = re.compile(r"^(?P<path>\S+): (?P<dataset>\S+) (?P<day>\d{4}-\d\d-\d\d): (?P<prefixes>[\d,]+) prefix origins, "
                  r"(?P<opened>[\d,]+) opened, (?P<closed>[\d,]+) closed, (?P<rejects>[\d,]+) rejects "
                  r"\(\d+\.\d s\)$")


def loaded_lines(out: str) -> list[dict[str, Any]]:
    found = []
    for line in out.splitlines():
        match = LINE.match(line)
        assert match, line
        found.append({k: int(v.replace(",", "")) if k in ("prefixes", "opened", "closed", "rejects") else v
                      for k, v in match.groupdict().items()})
    return found


def test_three_snapshots_load_through_the_cli(routing_db: str, cli_database: Callable[[str], None],
                                             series: list[rd.SeriesFile], capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(routing_db)
    code, out, err = run(["routing", "load", *(str(f.path) for f in series)], capsys)
    assert code == 0, err
    lines = loaded_lines(out)
    days = [rows_in(f.path) for f in series]
    assert [line["path"] for line in lines] == [str(f.path) for f in series]
    assert [(line["dataset"], line["day"]) for line in lines] == [("routeviews", f"{f.taken_on}") for f in series]
    assert [line["prefixes"] for line in lines] == [len(d) for d in days] == [f.origins for f in series]
    assert [line["opened"] for line in lines] == [len(days[0]), len(days[1] - days[0]), len(days[2] - days[1])]
    assert [line["closed"] for line in lines] == [0, len(days[0] - days[1]), len(days[1] - days[2])]
    assert [line["rejects"] for line in lines] == [0, 0, 0]
    for f, d in zip(series, days, strict=True):
        assert valid_on(routing_db, f.taken_on) == normalised(d), f.taken_on  # multi-origin prefixes included
    assert query(routing_db, "SELECT (SELECT count(*) FROM ipintel_staging.routing_prefixes) + "
                             "(SELECT count(*) FROM ipintel_staging.routing_rejects) AS n")[0]["n"] == 0


def test_a_snapshot_loaded_twice_is_skipped_before_its_file_is_read(
        routing_db: str, cli_database: Callable[[str], None], series: list[rd.SeriesFile],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(routing_db)
    assert run(["routing", "load", *(str(f.path) for f in series)], capsys)[0] == 0
    before = query(routing_db, "SELECT * FROM ipintel.prefix_origins ORDER BY prefix, asn, valid")
    recorded = query(routing_db, "SELECT file, sha256 FROM ipintel.routing_snapshots ORDER BY taken_on")
    assert [r["file"] for r in recorded] == [str(f.path) for f in series]
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["sha256"]) for r in recorded)

    def never(snapshot: routing.SnapshotFile) -> Any:
        raise AssertionError(f"{snapshot.path} was read")

    monkeypatch.setattr(routing, "read", never)
    code, out, err = run(["routing", "load", str(series[1].path)], capsys)
    assert (code, err) == (0, "")
    assert re.fullmatch(rf"{re.escape(str(series[1].path))}: routeviews {series[1].taken_on}: skipped, already loaded "
                        r"\(snapshot \d+\) \(\d+\.\d s\)\n", out), out
    assert query(routing_db, "SELECT * FROM ipintel.prefix_origins ORDER BY prefix, asn, valid") == before


def test_another_file_for_a_loaded_snapshot_is_not_merged(routing_db: str, cli_database: Callable[[str], None],
                                                          series: list[rd.SeriesFile], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(routing_db)
    assert run(["routing", "load", str(series[0].path)], capsys)[0] == 0
    before = query(routing_db, "SELECT * FROM ipintel.prefix_origins ORDER BY prefix, asn, valid")
    other = tmp_path / "elsewhere" / series[0].path.name  # same name and day, other content
    other.parent.mkdir()
    other.write_bytes(gzip.compress(b"10.0.0.0\t8\t64500\n"))
    code, out, err = run(["routing", "load", str(other)], capsys)
    assert (code, out) == (1, "")
    snapshot = query(routing_db, "SELECT snapshot_id FROM ipintel.routing_snapshots")[0]["snapshot_id"]
    assert one_line(err) == (f"ipintel routing load: {other}: routeviews {series[0].taken_on}: snapshot {snapshot} was "
                             f"loaded from another file ({series[0].path}; its sha256 differs): skipped, nothing replaced")
    assert query(routing_db, "SELECT * FROM ipintel.prefix_origins ORDER BY prefix, asn, valid") == before


def test_any_order_gives_the_same_table(routing_db: str, other_routing_db: str, cli_database: Callable[[str], None],
                                        series: list[rd.SeriesFile], capsys: pytest.CaptureFixture[str]) -> None:
    table = "SELECT prefix, asn, valid FROM ipintel.prefix_origins ORDER BY prefix, asn, valid"
    cli_database(routing_db)
    assert run(["routing", "load", *(str(f.path) for f in series)], capsys)[0] == 0
    cli_database(other_routing_db)
    assert run(["routing", "load", *(str(f.path) for f in (series[2], series[0], series[1]))], capsys)[0] == 0
    assert query(other_routing_db, table) == query(routing_db, table)


def test_rejects_are_kept_and_shown_and_the_rest_loads(routing_db: str, cli_database: Callable[[str], None],
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(routing_db)
    lines = []
    for n in range(1, 61):
        lines.append(f"10.{n}.0.0\t16\t{64_000 + n}" if n % 2 else f"10.{n}.0.1\t24\t{n}")  # evens: host bits
    lines[58] = "10.59.0.0\t16\tAS65000"  # line 59
    path = tmp_path / "routeviews-rv2-20200101-1200.pfx2as.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    code, out, err = run(["routing", "load", str(path)], capsys)
    assert code == 1
    [line] = loaded_lines(out)
    assert (line["dataset"], line["prefixes"], line["opened"], line["closed"], line["rejects"]) == (
        "routeviews_rv2", 29, 29, 0, 31)
    shown = err.splitlines()
    assert shown[:20] == [f"{path}:{n}: prefix has host bits set" for n in range(2, 41, 2)]
    assert re.fullmatch(rf"\.\.\. 11 more rejects of {re.escape(str(path))} in ipintel\.routing_rejects "
                        r"\(snapshot \d+\)", shown[20])
    assert len(shown) == 21
    kept = query(routing_db, "SELECT line_no, reason, excerpt FROM ipintel.routing_rejects ORDER BY line_no")
    assert [r["line_no"] for r in kept] == sorted([*range(2, 61, 2), 59])
    assert kept[-2] == {"line_no": 59, "reason": "ASN is not a number", "excerpt": "10.59.0.0\\t16\\tAS65000"}


def test_a_damaged_file_is_rolled_back_alone(routing_db: str, cli_database: Callable[[str], None],
                                             series: list[rd.SeriesFile], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(routing_db)
    whole = series[1].path.read_bytes()
    cut = tmp_path / series[1].path.name
    cut.write_bytes(whole[:-20])  # its head reads well (checked before loading), its end is gone
    code, out, err = run(["routing", "load", str(series[0].path), str(cut), str(series[2].path)], capsys)
    assert code == 1
    assert [line["day"] for line in loaded_lines(out)] == [f"{series[0].taken_on}", f"{series[2].taken_on}"]
    assert one_line(err).startswith(f"ipintel routing load: {cut}: cannot be read to its end: ")
    assert query(routing_db, "SELECT count(*) AS n FROM ipintel_staging.routing_prefixes")[0]["n"] == 0
    # Nothing of it was kept: the whole file loads later as a new snapshot.
    code, out, _ = run(["routing", "load", str(series[1].path)], capsys)
    assert code == 0 and "already loaded" not in out


def test_a_file_with_no_prefix_is_not_loaded(routing_db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(routing_db)
    path = write(tmp_path / "routeviews-rv2-20200101-1200.pfx2as", "1.0.0.1\t24\t1\n1.0.0.0\t24\tx\n")
    code, out, err = run(["routing", "load", str(path)], capsys)
    assert (code, out) == (1, "")
    assert one_line(err) == (f"ipintel routing load: {path}: no prefix could be read (2 lines rejected): "
                             "nothing loaded from it")
    assert query(routing_db, "SELECT count(*) AS n FROM ipintel.prefix_origins")[0]["n"] == 0


def test_a_usage_error_loads_nothing(routing_db: str, cli_database: Callable[[str], None],
                                     series: list[rd.SeriesFile], capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(routing_db)
    code, _, _ = run(["routing", "load", str(series[0].path), str(series[0].path.with_name("missing.pfx2as"))],
                     capsys)
    assert code == 2
    assert query(routing_db, "SELECT count(*) AS n FROM ipintel.prefix_origins")[0]["n"] == 0


def test_the_loader_role_loads_routing_tables(routing_db: str, login_as: Callable[[str], str],  # noqa: F811
                                              cli_database: Callable[[str], None], series: list[rd.SeriesFile],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(login_as("ipintel_loader"))
    code, out, err = run(["routing", "load", str(series[0].path)], capsys)
    assert code == 0, err
    assert loaded_lines(out)[0]["opened"] == len(rows_in(series[0].path))


def test_the_demo_set_loads_and_shows_its_move(routing_db: str, cli_database: Callable[[str], None],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(routing_db)
    assert cli.run_routing_load(config.load(), routing.demo_snapshots()) == 0
    assert [line["dataset"] for line in loaded_lines(capsys.readouterr().out)] == ["demo_synthetic"] * 3
    origins = query(routing_db, "SELECT DISTINCT asn FROM ipintel.prefix_origins "
                                "WHERE prefix = '45.148.10.0/24' ORDER BY asn")
    assert [r["asn"] for r in origins] == [48090, 214943]
    assert valid_on(routing_db, date(2026, 11, 3)) >= {("45.148.10.0/24", 214943), ("198.235.24.0/24", 396982),
                                                        ("198.235.24.0/24", 15169)}
