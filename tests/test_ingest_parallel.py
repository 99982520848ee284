"""Ingest with parsing in a second process (issue 15): the same rows as parsing in the loader's
own process, bad lines reported with file:line as before, and a parser that dies is one clear
error line, a failed run, and nothing half-committed: the next run completes the logs."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ipintel import chunks, cli, demo_logs, ingest
from tests.test_ingest import runs, second_db, totals  # noqa: F401 (second_db: a fixture)

# Times of writing differ between two runs; everything else must not.
WRITE_TIMES = {"created_at", "updated_at", "recorded_at", "first_ingested_at", "last_ingested_at", "snapshot_at",
               "snapshot_complete_at"}
TABLES = {"ip_inventory": "ip", "session_summaries": "session_id", "asn_inventory": "asn",
          "ingest_rejects": "path, line_no", "ingest_files": "fingerprint"}
IDS = {"reject_id", "run_id", "file_id", "first_run_id", "last_run_id"}


def rows(dsn: str) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return {t: [{k: v for k, v in r.items() if k not in WRITE_TIMES | IDS}
                    for r in conn.execute(f"SELECT * FROM ipintel.{t} ORDER BY {key}").fetchall()]
                for t, key in TABLES.items()}


def bad_lines_log(folder: Path) -> Path:
    """A plain log with three bad lines among generated good ones, and a gzip after it."""
    demo_logs.generate(folder, seed=7, sessions=300, days=2, sensors=1)
    live = folder / "hp-fra1" / "cowrie.json"
    lines = live.read_bytes().splitlines(keepends=True)
    lines.insert(3, b'{"eventid": "cowrie.session.connect", "session": "x1"\n')  # malformed JSON
    lines.insert(10, b'{"eventid":"cowrie.login.failed","session":"x2","src_ip":"999.1.1.1",'
                     b'"timestamp":"2026-11-02T00:00:00Z"}\n')  # invalid IP
    lines.insert(20, b'{"eventid":"cowrie.command.input","session":"x3","src_ip":"10.0.0.1",'
                     b'"timestamp":"2026-11-02T00:00:00Z","input":"\\ud800"}\n')  # lone surrogate
    live.write_bytes(b"".join(lines))
    return live


def test_parallel_and_in_process_parsing_store_the_same_rows(db: str, second_db: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    demo_logs.generate(logs, seed=15, sessions=1500, days=3, sensors=2)
    bad_lines_log(tmp_path / "bad")
    paths = [str(logs), str(tmp_path / "bad")]
    parallel = ingest.ingest(db, paths, chunk_lines=700, parallel=True)
    inline = ingest.ingest(second_db, paths, chunk_lines=700, parallel=False)
    counts = ("files_read", "files_skipped", "files_pending", "files_empty", "lines", "events", "sessions_new",
              "sessions_updated", "ips_new", "rejects", "event_counts", "first_rejects")
    assert {k: getattr(parallel, k) for k in counts} == {k: getattr(inline, k) for k in counts}
    assert parallel.events > 10_000 and parallel.rejects == 3
    assert rows(db) == rows(second_db)
    assert totals(db) == totals(second_db)
    # Run again: nothing new either way.
    again = ingest.ingest(db, paths, parallel=True)
    assert (again.events, again.rejects, again.files_read) == (0, 0, 0)


def test_bad_lines_parsed_in_the_second_process_are_reported_with_file_and_line(
        db: str, tmp_path: Path, cli_database: Callable[[str], None], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    live = bad_lines_log(tmp_path / "logs")
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)  # the CLI's own choice, made for this small log
    cli_database(db)
    code = cli.main(["ingest", str(tmp_path / "logs")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    for line_no, reason in ((4, "malformed_json"), (11, "invalid_ip"), (21, "invalid_utf8")):
        assert f"rejected: {live.resolve()}:{line_no}: {reason}: " in " ".join(err.split()), err
    assert runs(db)[-1]["status"] == "finished_with_rejects"


def parser_pids() -> list[int]:
    """This process's children that are ingest's parsing process (Linux /proc)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"parse_worker_main" in cmdline:
                pids.append(int(pid))
    return pids


def kill_parser_after(chunks: int) -> Callable[[], None]:
    """An after_chunk hook: SIGKILL the parsing process once `chunks` chunks are committed."""
    done = [0]

    def hook() -> None:
        done[0] += 1
        if done[0] == chunks:
            pids = parser_pids()
            assert pids, "no parsing process to kill"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
    return hook


def test_a_parser_that_dies_is_one_error_line_and_the_next_run_completes(
        db: str, second_db: str, tmp_path: Path, cli_database: Callable[[str], None],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    logs = tmp_path / "logs"
    demo_logs.generate(logs, seed=16, sessions=1200, days=2, sensors=2)
    real_ingest = ingest.ingest
    monkeypatch.setattr(ingest, "ingest", functools.partial(real_ingest, after_chunk=kill_parser_after(2),
                                                            parallel=True))
    cli_database(db)
    code = cli.main(["ingest", str(logs), "--chunk-lines", "400"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("ipintel")]
    assert len(errors) == 1 and errors[0].startswith("ipintel ingest: the parsing process ended unexpectedly"), err
    assert runs(db)[-1]["status"] == "failed"
    assert not parser_pids()
    # Two chunks were committed and nothing else; the next run loads the rest, exactly once.
    monkeypatch.setattr(ingest, "ingest", real_ingest)
    resumed = real_ingest(db, [str(logs)], chunk_lines=400, parallel=True)
    clean = real_ingest(second_db, [str(logs)], chunk_lines=400, parallel=True)
    assert resumed.events < clean.events
    assert rows(db) == rows(second_db)


def test_a_file_the_parser_cannot_resume_is_the_usual_input_error(db: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    demo_logs.generate(logs, seed=17, sessions=200, days=2, sensors=1)
    ingest.ingest(db, [str(logs)], parallel=True)
    live = logs / "hp-fra1" / "cowrie.json"
    # The same head, but cut short by hand: the recorded offset is past its end.
    content = live.read_bytes()
    live.write_bytes(content[: len(content) // 2].rsplit(b"\n", 2)[0] + b"\n")
    with pytest.raises(ingest.cowrie.CowrieInputError, match="cannot resume .* not the end of a line"):
        ingest.ingest(db, [str(live)], parallel=True)
    assert runs(db)[-1]["status"] == "failed"


def chunk_lines_committed(dsn: str, paths: list[str], *, parallel: bool, chunk_lines: int) -> list[int]:
    """The lines each committed chunk moved the files' offsets by, in commit order."""
    committed: list[int] = []
    with psycopg.connect(dsn, autocommit=True) as watcher:
        def after_chunk() -> None:
            row = watcher.execute("SELECT coalesce(sum(lines_ingested), 0) FROM ipintel.ingest_files").fetchone()
            assert row is not None
            committed.append(int(row[0]) - sum(committed))
        ingest.ingest(dsn, paths, chunk_lines=chunk_lines, parallel=parallel, after_chunk=after_chunk)
    return committed


def test_a_run_parsed_ahead_starts_with_small_chunks_and_grows_to_chunk_lines(
        db: str, second_db: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    demo_logs.generate(logs, seed=18, sessions=700, days=2, sensors=1)
    paths = [str(p) for p in sorted((logs / "hp-fra1").iterdir())]
    # The loader waits only for the run's first chunk: a tenth of chunk_lines, then three times
    # the one before, up to chunk_lines; the next files are read in whole chunks.
    ahead = chunk_lines_committed(db, paths, parallel=True, chunk_lines=700)
    first_file = ahead[:ahead.index(700) + 1]
    assert first_file[:3] == [70, 210, 630], ahead
    assert all(n <= 700 for n in ahead) and ahead.count(700) >= 3, ahead
    # Parsed in the loader's own process, nothing is waited for: whole chunks from the start.
    inline = chunk_lines_committed(second_db, paths, parallel=False, chunk_lines=700)
    assert inline[0] == 700 and inline.count(700) >= 3, inline
    assert sum(ahead) == sum(inline)
    assert rows(db) == rows(second_db)


def test_the_parsing_process_imports_neither_the_database_driver_nor_the_terminal_libraries() -> None:
    # The server waits for the run's first chunk while the parsing process starts: an interpreter
    # importing ipintel.chunks, its code (0.09 s), not the loader's (ipintel.ingest: 0.34 s).
    package_root = Path(chunks.__file__).resolve().parent.parent
    code = (f"import sys; sys.path.insert(0, {str(package_root)!r}); from ipintel import chunks; "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())
    assert "ipintel.chunks" in loaded and "ipintel.cowrie" in loaded
    heavy = {m for m in loaded if m.split(".")[0] in {"psycopg", "psycopg_binary", "psycopg_pool", "rich",
                                                      "prometheus_client", "httpx"}}
    assert not heavy, sorted(heavy)
    assert not {"ipintel.db", "ipintel.ingest", "ipintel.progress"} & loaded
