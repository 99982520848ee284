"""`ipintel ingest`: Cowrie logs → staging (COPY) → merge_cowrie_events() → the tiers.

Per file, lines are read in chunks; each chunk is ONE transaction: COPY the events into
ipintel_staging.cowrie_events, merge them set-based in SQL, COPY the rejected lines into
ipintel.ingest_rejects, and move the file's offset in ipintel.ingest_files. A crash or Ctrl-C
rolls back the chunk in flight and nothing else, and the next run starts at the recorded offset:
no line is lost or counted twice.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from ipintel import cowrie, db, metrics
from ipintel.locks import Lock, LockHeld
from ipintel.progress import Reporter

DEFAULT_CHUNK_LINES = 50_000
INGEST_LOCK = "ipintel.ingest"
REJECTS_SHOWN = 5
# The CLI's exit code for each status of ingest_runs (a failed run: see _failed_exit_code).
EXIT_CODES = {"succeeded": 0, "finished_with_rejects": 1, "interrupted": 130}

__all__ = ["IngestSummary", "LockHeld", "ingest"]


@dataclass
class IngestSummary:
    run_id: int = 0
    files_read: int = 0
    files_skipped: int = 0  # already ingested to their end: nothing new, nothing pending
    files_pending: int = 0  # plain files whose last line is still being written; it loads later
    files_empty: int = 0  # no content at all (e.g. the gzip of a quiet day)
    lines: int = 0
    events: int = 0
    sessions_new: int = 0
    sessions_updated: int = 0
    ips_new: int = 0
    rejects: int = 0
    seconds: float = 0.0
    event_counts: Counter[str] = field(default_factory=Counter)
    first_rejects: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _FileRecord:
    file_id: int
    bytes_ingested: int
    lines_ingested: int
    finished: bool


def _find_file(conn: psycopg.Connection[Any], head: bytes) -> tuple[str, int, _FileRecord | None]:
    """The fingerprint of a file's `head`, how many bytes it covers, and what was ingested of the
    file, if anything.

    A file under 4 KiB is fingerprinted on all of its content; a live log that has grown since
    hashes differently, so its head is also tried at the lengths recorded for small files.
    """
    full = hashlib.sha256(head).hexdigest()
    small_lengths = [r["fingerprint_bytes"] for r in db.query_all(
        conn, db.query("small_fingerprint_lengths"), {"length": len(head)})]
    candidates = [full] + [hashlib.sha256(head[:n]).hexdigest() for n in small_lengths]
    row = db.query_one(conn, db.query("find_ingest_file"), {"candidates": candidates})
    return full, len(head), (_FileRecord(**row) if row else None)


class _Ingest:
    def __init__(self, dsn: str, reporter: Reporter, chunk_lines: int,
                 after_chunk: Callable[[], None] | None, metrics_file: Path | None = None) -> None:
        self.dsn = dsn
        self.metrics_file = metrics_file
        self.reporter = reporter
        self.chunk_lines = chunk_lines
        self.after_chunk = after_chunk  # test hook: called after each committed chunk
        self.summary = IngestSummary()
        self._reported_offset = 0  # of the file being read: what the reporter has been told
        self.started = 0.0  # monotonic time the run started (set by run)

    def run(self, paths: Sequence[str]) -> IngestSummary:
        files = cowrie.expand_paths(paths)
        self.started = time.monotonic()
        started_at = datetime.now(UTC)
        # autocommit: each `conn.transaction()` below is then a real BEGIN/COMMIT, not a savepoint
        # inside an implicit transaction that would only commit at the very end.
        with Lock(self.dsn, INGEST_LOCK) as lock, db.connection(self.dsn, autocommit=True) as conn:
            # We hold the ingest lock, so any run still marked running was killed.
            lock.conn.execute(db.query("interrupt_abandoned_ingest_runs"))
            run = db.query_one(lock.conn, db.query("start_ingest_run"))
            assert run is not None
            self.summary.run_id = run["run_id"]
            status, failure = "failed", None
            try:
                for path in files:
                    self._ingest_file(conn, path)
                # The days whose snapshotted sessions this run changed: attribution_daily recounted.
                db.query_one(conn, db.query("roll_up_attribution"))
                status = "finished_with_rejects" if self.summary.rejects else "succeeded"
            except KeyboardInterrupt:
                status = "interrupted"
                raise
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self.summary.seconds = time.monotonic() - self.started
                try:
                    # Files skipped after the last chunk (or in a run with none) are counted here.
                    lock.conn.execute(
                        db.query("finish_ingest_run"),
                        {"status": status, "files_read": self.summary.files_read,
                         "files_skipped": self.summary.files_skipped, "run_id": self.summary.run_id})
                finally:
                    if self.metrics_file is not None:  # still under the lock, whatever the outcome
                        exit_code = EXIT_CODES.get(status, _failed_exit_code(failure))
                        state = {"interrupted": "interrupted", "failed": "failed"}.get(status, "finished")
                        metrics.write_ingest(
                            self.metrics_file, self.dsn,
                            metrics.RunOutcome(state, exit_code, started_at, datetime.now(UTC)),
                            run_id=self.summary.run_id, reporter=self.reporter)
        return self.summary

    def _ingest_file(self, conn: psycopg.Connection[Any], path: Path) -> None:
        head = cowrie.read_head(path)
        if not head:
            # Nothing to read (an empty file, or the gzip of a quiet day), and no content to know
            # the file by: an empty fingerprint would match the start of every other file.
            self.summary.files_empty += 1
            return
        fp, fp_bytes, record = _find_file(conn, head)
        is_gzip = cowrie.is_gzip(path)
        s = self.summary
        if record and (record.finished or (not is_gzip and path.stat().st_size == record.bytes_ingested)):
            s.files_skipped += 1
            return
        start_offset = record.bytes_ingested if record else 0
        start_line = record.lines_ingested if record else 0
        file_id = record.file_id if record else None
        self.reporter.start(str(path), None if is_gzip else path.stat().st_size, unit="bytes")
        self.reporter.advance(start_offset)
        self._reported_offset = start_offset
        with cowrie.read_events(path, start_offset, start_line) as reader:
            events: list[cowrie.Event] = []
            rejects: list[cowrie.Reject] = []
            lines_at_chunk_start = start_line
            for item in reader:
                if isinstance(item, cowrie.Event):
                    events.append(item)
                else:
                    rejects.append(item)
                if len(events) + len(rejects) >= self.chunk_lines:
                    if lines_at_chunk_start == start_line:  # this file's first chunk
                        s.files_read += 1
                    file_id = self._load_chunk(conn, path, (fp, fp_bytes), file_id, events, rejects, reader.progress, False)
                    s.lines += reader.progress.line_no - lines_at_chunk_start
                    lines_at_chunk_start = reader.progress.line_no
                    events, rejects = [], []
            pending = reader.progress.partial_bytes
            if lines_at_chunk_start == start_line:
                # No full chunk. Nothing new at all (e.g. the live file, rotated and gzipped
                # since: a gzip has to be read to know) is a skip, like a file seen whole before;
                # but a file whose last line is still being written is not done: it is pending.
                if events or rejects or reader.progress.line_no != start_line:
                    s.files_read += 1
                elif not pending:
                    s.files_skipped += 1
            # A gzip read to its end cannot grow. A truncated one may still be being written by
            # logrotate: it is read again next time, from the last good line.
            finished = reader.is_gzip and not reader.progress.truncated
            if events or rejects or reader.progress.offset != start_offset or finished:
                self._load_chunk(conn, path, (fp, fp_bytes), file_id, events, rejects, reader.progress, finished)
                s.lines += reader.progress.line_no - lines_at_chunk_start
        self.reporter.finish()
        if pending:
            s.files_pending += 1
            self.reporter.note(f"{path}: waiting for the last line to end ({pending:,} bytes so far); "
                               f"it loads once it ends, or once the file is rotated or quiet for "
                               f"{cowrie.QUIET_SECONDS // 60} minutes")

    def _load_chunk(self, conn: psycopg.Connection[Any], path: Path, fp: tuple[str, int], file_id: int | None,
                    events: list[cowrie.Event], rejects: list[cowrie.Reject],
                    progress: cowrie.ReadProgress, finished: bool) -> int:
        s = self.summary

        def load(file_id: int | None) -> tuple[int, dict[str, Any]]:
            batch = db.query_one(conn, db.query("next_batch_id"))
            assert batch is not None
            with conn.cursor() as cur:
                with cur.copy(db.query("copy_cowrie_events")) as copy:
                    for e in events:
                        copy.write_row((batch["id"], e.line_no, e.eventid, e.event_ts, e.session_id, e.src_ip,
                                        e.sensor, e.protocol, e.src_port, e.dst_ip, e.dst_port, e.duration,
                                        e.client_version, e.hassh))
                if rejects:
                    with cur.copy(db.query("copy_cowrie_rejects")) as copy:
                        for r in rejects:
                            copy.write_row((batch["id"], r.line_no, r.reason, r.detail, r.excerpt))
            # One SQL call owns the rest: merge, rejects, the file's offset, the run's counters.
            merged = db.query_one(
                conn, db.query("ingest_chunk"),
                {"run": s.run_id, "batch": batch["id"], "file_id": file_id, "fp": fp[0], "fp_bytes": fp[1],
                 "path": str(path), "offset": progress.offset, "lines": progress.line_no, "finished": finished,
                 "files_read": s.files_read, "files_skipped": s.files_skipped})
            assert merged is not None
            return int(merged["file_id"]), merged

        # The chunk is one transaction; after a deadlock or serialization failure it runs again
        # whole (merge_cowrie_events takes its locks in the order every merge does).
        file_id, merged = db.in_transaction_with_retry(conn, lambda: load(file_id))
        # Committed: only now does the chunk count.
        s.events += int(merged["events"])
        s.sessions_new += int(merged["sessions_new"])
        s.sessions_updated += int(merged["sessions_updated"])
        s.ips_new += int(merged["ips_new"])
        s.rejects += len(rejects)
        s.event_counts.update({k: int(v) for k, v in merged["event_counts"].items()})
        for r in rejects[: max(0, REJECTS_SHOWN - len(s.first_rejects))]:
            s.first_rejects.append(f"{path}:{r.line_no}: {r.reason}: {r.detail}")
        elapsed = time.monotonic() - self.started
        self.reporter.advance(progress.offset - self._reported_offset, events=s.events, rejects=s.rejects,
                              rate=f"{s.events / elapsed:,.0f} events/s" if elapsed > 0 else "")
        self._reported_offset = progress.offset
        if self.after_chunk is not None:
            self.after_chunk()
        return file_id


def _failed_exit_code(failure: BaseException | None) -> int:
    """The CLI's exit code for a run that failed on `failure`: 2 for input or configuration the
    operator must fix (a path gone, a database that refuses us), else 1."""
    if isinstance(failure, cowrie.CowrieInputError) or (failure is not None and db.is_configuration_error(failure)):
        return 2
    return 1


def ingest(dsn: str, paths: Sequence[str], *, reporter: Reporter | None = None,
           chunk_lines: int = DEFAULT_CHUNK_LINES,
           after_chunk: Callable[[], None] | None = None, metrics_file: Path | None = None) -> IngestSummary:
    """Ingest Cowrie logs (files, folders, globs; plain or gzip). Raises LockHeld when another
    ingest runs, cowrie.CowrieInputError for a missing path. With `metrics_file`, the run's
    Prometheus metrics are written there when it ends (ipintel.metrics)."""
    return _Ingest(dsn, reporter or Reporter(), chunk_lines, after_chunk, metrics_file).run(paths)
