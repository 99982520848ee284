"""`ipintel ingest`: Cowrie logs → staging (COPY) → merge_cowrie_events() → the tiers.

Per file, lines are read in chunks; each chunk is ONE transaction: COPY its events, aggregated per
session by the parser (ipintel.chunks.ChunkSessions), into ipintel_staging.cowrie_sessions, merge
them set-based in SQL, COPY the rejected lines into ipintel.ingest_rejects, and move the file's
offset in ipintel.ingest_files. A crash or Ctrl-C rolls back the chunk in flight and nothing else,
and the next run starts at the recorded offset: no line is lost or counted twice.

Parsing (ipintel.chunks) runs in a second process (`_ParseAhead`) while this one COPYs and merges: it reads the
files in order, a little ahead, and hands over each chunk as COPY text already formatted, through
a pipe and a bounded queue (CHUNKS_AHEAD). It writes nothing anywhere, so a kill of either process loses only chunks not
yet committed, which the next run reads again from the recorded offsets. The run's first chunks
are smaller (RAMP_START), so the loader is not idle while the first whole chunk is parsed. Small
runs (under PARALLEL_MIN_BYTES of files to read) parse in this process, with the same code.
"""

from __future__ import annotations

import hashlib
import pickle
import queue
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg

from ipintel import chunks, cowrie, db, metrics
from ipintel.locks import Lock, LockHeld
from ipintel.progress import Reporter

DEFAULT_CHUNK_LINES = 50_000
# Parse in a second process when the files to read add up to this many bytes (on disk) or more;
# below it, starting that process (~0.1 s: an interpreter importing ipintel.chunks) costs more than
# the overlap gains.
PARALLEL_MIN_BYTES = 1 << 20
# With a parsing process, the loader waits for the run's first chunk to be parsed before it has
# anything to send: the run's first chunks are smaller (chunk_lines / RAMP_START, then chunks.RAMP_GROWTH
# times the one before, up to chunk_lines), so the server starts within a few thousand lines and
# the parser, a chunk ahead from then on, is not waited for again. Only the first file handed to
# the parsing process (_ParseAhead.submit).
RAMP_START = 10
FILES_AHEAD = 2  # files handed to the parser beyond the one being loaded
CHUNKS_AHEAD = 3  # parsed chunks waiting for the loader: bounds the parser's lead and its memory
INGEST_LOCK = "ipintel.ingest"
# The sessions' one writer at a time (revision 0068): every merge of Cowrie events, take_snapshots
# and redo_snapshots take this transaction advisory lock (key hashtextextended(name, 0)) first.
SESSIONS_LOCK = "ipintel.session_summaries"
SESSIONS_LOCK_POLL_SECONDS = 0.25
REJECTS_SHOWN = 5
# The CLI's exit code for each status of ingest_runs (a failed run: see _failed_exit_code).
EXIT_CODES = {"succeeded": 0, "finished_with_rejects": 1, "interrupted": 130}

__all__ = ["IngestSummary", "LockHeld", "ParserFailed", "ingest"]


class ParserFailed(Exception):
    """The parsing process died or failed on something that is not the input's fault."""


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
    seconds_waiting: float = 0.0  # waiting for snapshot passes to end (the sessions' lock)
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


# --------------------------------------------------------------------------------------------
# Parsing: chunks of COPY text (ipintel.chunks), in this process or in a second one
# --------------------------------------------------------------------------------------------

class _ParseInline:
    """Parsing in this process: the jobs' chunks, one after the other, when asked."""

    def __init__(self) -> None:
        self._jobs: deque[chunks.Job] = deque()
        self._items: Iterator[chunks.Chunk | chunks.Failure] | None = None

    def submit(self, job: chunks.Job) -> None:
        self._jobs.append(job)

    def next(self) -> chunks.Chunk | chunks.Failure:
        while True:
            if self._items is None:
                self._items = chunks.chunks_or_failure(self._jobs.popleft())
            item = next(self._items, None)
            if item is not None:
                return item
            self._items = None

    def close(self) -> None:
        if self._items is not None:
            self._items.close()  # type: ignore[attr-defined]


class _ParseAhead:
    """Parsing in a second process (chunks.parse_worker_main), ahead of the loader, through pipes.

    A fresh interpreter (not multiprocessing: no fork of a process holding connections and
    threads, no re-import of the caller's __main__), stderr to /dev/null: whatever happens to
    it, the loader reports it as one line. It imports ipintel.chunks alone (0.09 s here; all of
    ipintel.ingest took 0.34 s, which the server spent waiting for the run's first chunk).
    """

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        code = f"import sys; sys.path.insert(0, {package_root!r}); from ipintel import chunks; chunks.parse_worker_main()"
        self._proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._jobs = self._proc.stdin
        self._submitted = False
        # A thread drains the pipe into a bounded queue, so the parser can run CHUNKS_AHEAD chunks
        # ahead: across the end of a file (a short last chunk) it is then not waited for.
        self._queue: queue.Queue[chunks.Chunk | chunks.Failure | None] = queue.Queue(maxsize=CHUNKS_AHEAD)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, args=(self._proc.stdout,), daemon=True,
                                        name="ipintel-ingest-parser-reader")
        self._reader.start()

    def _drain(self, pipe: IO[bytes]) -> None:
        try:
            while not self._stop.is_set():
                item = pickle.load(pipe)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
        except (EOFError, pickle.UnpicklingError, OSError, ValueError):
            self._queue.put(None)  # the parser ended: next() says how

    def submit(self, job: chunks.Job) -> None:
        if not self._submitted:  # the run's first file: the loader waits for its first chunk
            job = replace(job, first_chunk_lines=max(1, job.chunk_lines // RAMP_START))
            self._submitted = True
        try:
            pickle.dump(job, self._jobs, protocol=pickle.HIGHEST_PROTOCOL)
            self._jobs.flush()
        except BrokenPipeError:
            pass  # it died: next() says so

    def next(self) -> chunks.Chunk | chunks.Failure:
        item = self._queue.get()
        if item is None:
            code = self._proc.wait()
            raise ParserFailed(f"the parsing process ended unexpectedly (exit code {code}); the chunk in "
                               "flight was not committed, the next run resumes")
        return item

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()  # it holds nothing worth a goodbye: no file written, no connection
        self._proc.wait()
        self._stop.set()
        self._reader.join(timeout=10)
        for pipe in (self._jobs, self._proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except BrokenPipeError:
                pass


def _same_start(a: bytes, b: bytes) -> bool:
    """Whether two heads could be the same file's (one starts with the other)."""
    return a.startswith(b) or b.startswith(a)


@dataclass
class _Planned:
    """A file handed to the parser, and what the loader needs to commit its chunks."""

    path: Path
    head: bytes
    fp: tuple[str, int]
    file_id: int | None
    start_offset: int
    start_line: int
    is_gzip: bool


class _Ingest:
    def __init__(self, dsn: str, reporter: Reporter, chunk_lines: int,
                 after_chunk: Callable[[], None] | None, metrics_file: Path | None = None,
                 parallel: bool | None = None) -> None:
        self.dsn = dsn
        self.metrics_file = metrics_file
        self.reporter = reporter
        self.chunk_lines = chunk_lines
        self.after_chunk = after_chunk  # test hook: called after each committed chunk
        self.parallel = parallel  # None: when there is enough to read (PARALLEL_MIN_BYTES)
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
                self._ingest_files(conn, files)
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

    def _use_parallel(self, files: list[Path]) -> bool:
        if self.parallel is not None:
            return self.parallel
        total = 0
        for path in files:
            try:
                total += path.stat().st_size
            except OSError:
                pass  # said when the file's turn comes
        return total >= PARALLEL_MIN_BYTES

    def _ingest_files(self, conn: psycopg.Connection[Any], files: list[Path]) -> None:
        """Plan the files in order, a few ahead of the one being loaded, and load their chunks."""
        parser: _ParseAhead | _ParseInline = _ParseAhead() if self._use_parallel(files) else _ParseInline()
        try:
            planned: deque[_Planned] = deque()
            todo = deque(enumerate(files))
            while todo or planned:
                # Hand files to the parser while the loader is still busy with earlier ones. A file
                # whose head may be an earlier in-flight file's waits: its record is not known yet.
                while todo and len(planned) <= FILES_AHEAD:
                    index, path = todo[0]
                    head = cowrie.read_head(path)
                    if planned and any(_same_start(head, p.head) for p in planned):
                        break
                    todo.popleft()
                    plan = self._plan(conn, path, head)
                    if plan is not None:
                        parser.submit(chunks.Job(index, str(plan.path), plan.start_offset, plan.start_line,
                                                 self.chunk_lines))
                        planned.append(plan)
                if planned:
                    self._consume(conn, planned.popleft(), parser)
        finally:
            parser.close()

    def _plan(self, conn: psycopg.Connection[Any], path: Path, head: bytes) -> _Planned | None:
        """What to read of `path`, or None (counted) when there is nothing to read."""
        if not head:
            # Nothing to read (an empty file, or the gzip of a quiet day), and no content to know
            # the file by: an empty fingerprint would match the start of every other file.
            self.summary.files_empty += 1
            return None
        fp, fp_bytes, record = _find_file(conn, head)
        is_gzip = cowrie.is_gzip(path)
        if record and (record.finished or (not is_gzip and path.stat().st_size == record.bytes_ingested)):
            self.summary.files_skipped += 1
            return None
        return _Planned(path, head, (fp, fp_bytes), record.file_id if record else None,
                        record.bytes_ingested if record else 0, record.lines_ingested if record else 0, is_gzip)

    def _consume(self, conn: psycopg.Connection[Any], plan: _Planned, parser: _ParseAhead | _ParseInline) -> None:
        """Commit the chunks of one planned file, in order, as the parser hands them over."""
        s = self.summary
        path, start_line = plan.path, plan.start_line
        self.reporter.start(str(path), None if plan.is_gzip else path.stat().st_size, unit="bytes")
        self.reporter.advance(plan.start_offset)
        self._reported_offset = plan.start_offset
        file_id = plan.file_id
        lines_at_chunk_start = start_line
        while True:
            chunk = parser.next()
            if isinstance(chunk, chunks.Failure):
                if chunk.input_error:
                    raise cowrie.CowrieInputError(chunk.message)
                raise ParserFailed(f"parsing {path} failed: {chunk.message}")
            if not chunk.last:
                if lines_at_chunk_start == start_line:  # this file's first chunk
                    s.files_read += 1
                file_id = self._load_chunk(conn, path, plan.fp, file_id, chunk)
                s.lines += chunk.line_no - lines_at_chunk_start
                lines_at_chunk_start = chunk.line_no
                continue
            if lines_at_chunk_start == start_line:
                # No full chunk. Nothing new at all (e.g. the live file, rotated and gzipped
                # since: a gzip has to be read to know) is a skip, like a file seen whole before;
                # but a file whose last line is still being written is not done: it is pending.
                if chunk.events or chunk.rejects or chunk.line_no != start_line:
                    s.files_read += 1
                elif not chunk.pending:
                    s.files_skipped += 1
            if chunk.load:
                self._load_chunk(conn, path, plan.fp, file_id, chunk)
                s.lines += chunk.line_no - lines_at_chunk_start
            break
        self.reporter.finish()
        if chunk.pending:
            s.files_pending += 1
            self.reporter.note(f"{path}: waiting for the last line to end ({chunk.pending:,} bytes so far); "
                               f"it loads once it ends, or once the file is rotated or quiet for "
                               f"{cowrie.QUIET_SECONDS // 60} minutes")

    def _load_chunk(self, conn: psycopg.Connection[Any], path: Path, fp: tuple[str, int], file_id: int | None,
                    chunk: chunks.Chunk) -> int:
        s = self.summary
        rejects = chunk.rejects

        def load(file_id: int | None) -> tuple[int, dict[str, Any]]:
            batch = db.query_one(conn, db.query("next_batch_id"))
            assert batch is not None
            with conn.cursor() as cur:
                db.copy_batch(cur, db.query("copy_cowrie_sessions"), batch["id"], chunk.copy_data)
                db.copy_batch(cur, db.query("copy_cowrie_event_counts"), batch["id"], chunk.counts_data)
                if rejects:
                    with cur.copy(db.query("copy_cowrie_rejects")) as copy:
                        for r in rejects:
                            copy.write_row((batch["id"], r.line_no, r.reason, r.detail, r.excerpt))
            self._take_sessions_lock(conn)
            # One SQL call owns the rest: merge, rejects, the file's offset, the run's counters.
            merged = db.query_one(
                conn, db.query("ingest_chunk"),
                {"run": s.run_id, "batch": batch["id"], "file_id": file_id, "fp": fp[0], "fp_bytes": fp[1],
                 "path": str(path), "offset": chunk.offset, "lines": chunk.line_no, "finished": chunk.finished,
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
        self.reporter.advance(chunk.offset - self._reported_offset, events=s.events, rejects=s.rejects,
                              rate=f"{s.events / elapsed:,.0f} events/s" if elapsed > 0 else "")
        self._reported_offset = chunk.offset
        if self.after_chunk is not None:
            self.after_chunk()
        return file_id

    def _take_sessions_lock(self, conn: psycopg.Connection[Any]) -> None:
        """Take the sessions' lock for the chunk's transaction before merge_cowrie_events does (it
        takes it again: advisory locks nest within a transaction), so that waiting for a snapshot
        pass shows: a note naming who holds it, the bar's info every second, the time in the
        summary. Inside the merge the wait was silent, the bar still for the whole pass (2M
        sessions: about 45 s). Polled every quarter second rather than queued for: a pass or redo
        that starts meanwhile may go first, but only `ipintel enrich` (one at a time) and
        `ipintel snapshots redo` take the lock besides ingest (one at a time)."""
        if self._try_sessions_lock(conn):
            return
        started = time.monotonic()
        holder = db.query_one(conn, db.query("advisory_lock_holder"), {"name": SESSIONS_LOCK})
        who = f"backend pid {holder['pid']}" if holder else "another session"
        self.reporter.note(f"waiting for {who} to finish writing sessions (a snapshot pass of ipintel enrich, or "
                           f"ipintel snapshots redo) before the next chunk")
        while not self._try_sessions_lock(conn):
            time.sleep(SESSIONS_LOCK_POLL_SECONDS)
            self.reporter.advance(0, events=self.summary.events,
                                  waiting=f"{time.monotonic() - started:.0f} s for {who}")
        waited = time.monotonic() - started
        self.summary.seconds_waiting += waited
        self.reporter.note(f"{who} is done writing sessions: ingest goes on after waiting {waited:.1f} s")

    @staticmethod
    def _try_sessions_lock(conn: psycopg.Connection[Any]) -> bool:
        row = db.query_one(conn, db.query("try_advisory_xact_lock"), {"name": SESSIONS_LOCK})
        return bool(row and row["ok"])


def _failed_exit_code(failure: BaseException | None) -> int:
    """The CLI's exit code for a run that failed on `failure`: 2 for input or configuration the
    operator must fix (a path gone, a database that refuses us), else 1."""
    if isinstance(failure, cowrie.CowrieInputError) or (failure is not None and db.is_configuration_error(failure)):
        return 2
    return 1


def ingest(dsn: str, paths: Sequence[str], *, reporter: Reporter | None = None,
           chunk_lines: int = DEFAULT_CHUNK_LINES,
           after_chunk: Callable[[], None] | None = None, metrics_file: Path | None = None,
           parallel: bool | None = None) -> IngestSummary:
    """Ingest Cowrie logs (files, folders, globs; plain or gzip). Raises LockHeld when another
    ingest runs, cowrie.CowrieInputError for a missing path, ParserFailed when the parsing
    process dies. With `metrics_file`, the run's Prometheus metrics are written there when it
    ends (ipintel.metrics). `parallel`: parse in a second process (True), in this one (False), or
    as the amount to read suggests (None, PARALLEL_MIN_BYTES)."""
    return _Ingest(dsn, reporter or Reporter(), chunk_lines, after_chunk, metrics_file, parallel).run(paths)
