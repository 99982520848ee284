"""Cowrie logs cut into chunks of COPY text: what `ipintel ingest` commits, one chunk per
transaction, and what its parsing process runs (`parse_worker_main`).

Apart from the loader's database code on purpose: the parsing process is a fresh interpreter,
and imports this module and what it needs (the reader, ipintel.cowrie, and the COPY text
format, ipintel.copytext) but not psycopg, rich or prometheus_client, which the loader's own
modules bring. Importing ipintel.ingest took 0.34 s here against 0.09 s for this: time the
server spent waiting for a run's first chunk.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from ipintel import cowrie
from ipintel.copytext import copy_field

# Each chunk of a run's ramp is this many times the one before, up to the chunk size (see
# ipintel.ingest.RAMP_START).
RAMP_GROWTH = 3


def copy_line(e: cowrie.Event) -> str:
    """One event as a line of COPY text: the columns of copy_cowrie_events after batch_id."""
    sensor, protocol, version, hassh = e.sensor, e.protocol, e.client_version, e.hassh
    # The line's own timestamp when it reads the same (Cowrie's form): isoformat() of an aware
    # datetime took a fifth of the parse.
    ts = e.event_ts_text or e.event_ts.isoformat()
    text = f"{e.eventid}{e.session_id}{sensor or ''}{protocol or ''}{version or ''}{hassh or ''}"
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:  # attacker-chosen text, now and then
        return "\t".join(map(copy_field, (e.line_no, e.eventid, ts, e.session_id, e.src_ip,
                                           sensor, protocol, e.src_port, e.dst_ip, e.dst_port, e.duration,
                                           version, hassh))) + "\n"
    # IPs, numbers and times never need escaping.
    n = "\\N"
    return (f"{e.line_no}\t{e.eventid}\t{ts}\t{e.session_id}\t{e.src_ip}\t"
            f"{n if sensor is None else sensor}\t{n if protocol is None else protocol}\t"
            f"{n if e.src_port is None else e.src_port}\t{n if e.dst_ip is None else e.dst_ip}\t"
            f"{n if e.dst_port is None else e.dst_port}\t{n if e.duration is None else repr(e.duration)}\t"
            f"{n if version is None else version}\t{n if hassh is None else hassh}\n")


@dataclass(frozen=True, slots=True)
class Job:
    """One file for the parser: where to start and how many lines make a chunk."""

    index: int  # the file's place in this run
    path: str
    start_offset: int
    start_line: int
    chunk_lines: int
    first_chunk_lines: int | None = None  # the first chunk's lines (None: chunk_lines); see ipintel.ingest.RAMP_START


@dataclass(frozen=True, slots=True)
class Chunk:
    """What the parser hands over: a chunk of a file, or (last) the news that the file ended."""

    index: int
    copy_data: bytes  # the events as COPY text lines, without the batch_id column
    events: int
    rejects: list[cowrie.Reject]
    offset: int  # ReadProgress after the chunk
    line_no: int
    last: bool  # the file's last message
    load: bool  # something to commit (a last message may only say that nothing is left)
    finished: bool  # a gzip read to its end
    pending: int  # ReadProgress.partial_bytes


@dataclass(frozen=True, slots=True)
class Failure:
    """The parser could not go on with file `index`: input (exit 2) or a defect (exit 1)."""

    index: int
    input_error: bool
    message: str


def file_chunks(job: Job) -> Iterator[Chunk]:
    """The chunks of one file, as the loader commits them (see ipintel.ingest._Ingest._consume)."""
    with cowrie.read_events(job.path, job.start_offset, job.start_line) as reader:
        lines: list[str] = []
        rejects: list[cowrie.Reject] = []
        progress = reader.progress
        event_type = cowrie.Event
        limit = job.first_chunk_lines or job.chunk_lines
        for item in reader:
            if type(item) is event_type:
                lines.append(copy_line(item))
            else:
                rejects.append(item)  # type: ignore[arg-type]
            if len(lines) + len(rejects) >= limit:
                yield Chunk(job.index, "".join(lines).encode(), len(lines), rejects, progress.offset,
                             progress.line_no, last=False, load=True, finished=False, pending=0)
                lines, rejects = [], []
                limit = min(job.chunk_lines, limit * RAMP_GROWTH)
        # A gzip read to its end cannot grow. A truncated one may still be being written by
        # logrotate: it is read again next time, from the last good line.
        finished = reader.is_gzip and not progress.truncated
        load = bool(lines or rejects) or progress.offset != job.start_offset or finished
        yield Chunk(job.index, "".join(lines).encode(), len(lines), rejects, progress.offset, progress.line_no,
                     last=True, load=load, finished=finished, pending=progress.partial_bytes)


def chunks_or_failure(job: Job) -> Iterator[Chunk | Failure]:
    try:
        yield from file_chunks(job)
    except cowrie.CowrieInputError as exc:
        yield Failure(job.index, True, str(exc))
    except Exception as exc:  # a defect: reported by the loader as one line
        yield Failure(job.index, False, f"{type(exc).__name__}: {' '.join(str(exc).split())}")


def parse_worker_main() -> None:
    """The parsing process (ipintel.ingest._ParseAhead): jobs pickled on stdin, in order, until EOF; their
    chunks pickled on stdout. A full pipe blocks it: the loader's pace bounds its lead."""
    # Ctrl-C and `systemctl stop` reach the whole process group: the loader decides, and stops us.
    # A loader killed outright closes both pipes: the next read or write here ends this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Buffered whatever PYTHONUNBUFFERED says: an unbuffered pipe may take part of a write.
    jobs = open(sys.stdin.fileno(), "rb", closefd=False)  # noqa: SIM115
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 20, closefd=False)  # noqa: SIM115
    try:
        while True:
            try:
                job = pickle.load(jobs)
            except EOFError:
                return
            for item in chunks_or_failure(job):
                pickle.dump(item, out, protocol=pickle.HIGHEST_PROTOCOL)
                out.flush()
                if isinstance(item, Failure):
                    return
    except BrokenPipeError:
        os._exit(1)  # the loader is gone; no traceback at exit on the closed pipe
