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
from typing import Any

from ipintel import cowrie
from ipintel.copytext import copy_field, needs_escaping

# Each chunk of a run's ramp is this many times the one before, up to the chunk size (see
# ipintel.ingest.RAMP_START).
RAMP_GROWTH = 3


def event_ts_text(e: cowrie.Event) -> str:
    """An event's time as COPY text: the line's own timestamp when it reads the same (Cowrie's
    form; isoformat() of an aware datetime took a fifth of the parse), else from the parsed time."""
    return e.event_ts_text or e.event_ts.isoformat()


def copy_line(e: cowrie.Event) -> str:
    """One event as a line of COPY text: the columns of cowrie_events after batch_id
    (bench.ingest_pass.COPY_EVENTS). The loader stages sessions (ChunkSessions); `make bench`
    COPYs events for ingest's floor."""
    sensor, protocol, version, hassh = e.sensor, e.protocol, e.client_version, e.hassh
    ts = event_ts_text(e)
    if needs_escaping(f"{e.eventid}{e.session_id}{sensor or ''}{protocol or ''}{version or ''}{hassh or ''}"):
        # attacker-chosen text, now and then
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


_CONNECT = "cowrie.session.connect"
_CLOSED = "cowrie.session.closed"
_VERSION = "cowrie.client.version"
_KEX = "cowrie.client.kex"
_LOGIN_FAILED = "cowrie.login.failed"
_LOGIN_SUCCESS = "cowrie.login.success"
_COMMAND = "cowrie.command.input"
_DOWNLOAD = "cowrie.session.file_download"
_DIRECT_TCPIP = "cowrie.direct-tcpip."

# Where each value of a session is kept in its list (ChunkSessions._sessions): the events its
# values come from (its first and last event; the first that is not direct-tcpip, the first
# connect, the first with a sensor, the first client.version and client.kex; None while there is
# none), then the longest duration and the counts.
(_FIRST, _LAST, _NOT_DIRECT, _CONNECT_EVENT, _SENSOR, _VERSION_EVENT, _KEX_EVENT, _DURATION,
 _LOGINS, _SUCCESSES, _COMMANDS, _DOWNLOADS, _EVENTS) = range(13)


class ChunkSessions:
    """A chunk's events aggregated per session, as merge_cowrie_events aggregates staged events
    (revision 0081): the rows of ipintel_staging.cowrie_sessions, and the events per eventid.

    The loader stages these instead of the events: a tenth of the rows to COPY, and no sort of the
    chunk's events in the server. Each "first" value is the one of the session's events first by
    (event_ts, line_no), as the SQL takes it: events come in line order, so an event replaces a
    first one only when it is strictly earlier. The peer (source_ip) is the first connect
    event's address, else the first address of an event that is not direct-tcpip (Cowrie logs the
    client-claimed forwarding origin there), else the first event's; protocol, ports and dst_ip are
    the first connect event's, client_version the first client.version event's, hassh the first
    client.kex event's (NULL when that event has none), sensor the first one given, duration the
    longest of the session.closed events. tests/test_chunk_sessions.py holds it to the SQL.
    """

    __slots__ = ("_sessions", "event_counts", "events")

    def __init__(self) -> None:
        self._sessions: dict[str, list[Any]] = {}
        self.event_counts: dict[str, int] = {}
        self.events = 0

    def add(self, e: cowrie.Event) -> None:
        ts = e.event_ts
        eventid = e.eventid
        self.events += 1
        counts = self.event_counts
        counts[eventid] = counts.get(eventid, 0) + 1
        s = self._sessions.get(e.session_id)
        if s is None:
            s = self._sessions[e.session_id] = [e, e, None, None, None, None, None, None, 0, 0, 0, 0, 0]
        elif ts < s[_FIRST].event_ts:
            s[_FIRST] = e
        elif ts > s[_LAST].event_ts:
            s[_LAST] = e
        s[_EVENTS] += 1
        if not eventid.startswith(_DIRECT_TCPIP) and (s[_NOT_DIRECT] is None or ts < s[_NOT_DIRECT].event_ts):
            s[_NOT_DIRECT] = e
        if e.sensor is not None and (s[_SENSOR] is None or ts < s[_SENSOR].event_ts):
            s[_SENSOR] = e
        if eventid == _CONNECT:
            if s[_CONNECT_EVENT] is None or ts < s[_CONNECT_EVENT].event_ts:
                s[_CONNECT_EVENT] = e
        elif eventid == _LOGIN_FAILED:
            s[_LOGINS] += 1
        elif eventid == _LOGIN_SUCCESS:
            s[_LOGINS] += 1
            s[_SUCCESSES] += 1
        elif eventid == _COMMAND:
            s[_COMMANDS] += 1
        elif eventid == _DOWNLOAD:
            s[_DOWNLOADS] += 1
        elif eventid == _CLOSED:
            if e.duration is not None and (s[_DURATION] is None or e.duration > s[_DURATION]):
                s[_DURATION] = e.duration
        elif eventid == _VERSION:
            if s[_VERSION_EVENT] is None or ts < s[_VERSION_EVENT].event_ts:
                s[_VERSION_EVENT] = e
        elif eventid == _KEX and (s[_KEX_EVENT] is None or ts < s[_KEX_EVENT].event_ts):
            s[_KEX_EVENT] = e

    def copy_text(self) -> bytes:
        """The sessions as COPY text lines: the columns of copy_cowrie_sessions after batch_id."""
        lines = []
        n = "\\N"
        for session_id, s in self._sessions.items():
            connect, sensor_event, version_event, kex_event = (
                s[_CONNECT_EVENT], s[_SENSOR], s[_VERSION_EVENT], s[_KEX_EVENT])
            source_ip = (connect or s[_NOT_DIRECT] or s[_FIRST]).src_ip
            sensor = None if sensor_event is None else sensor_event.sensor
            version = None if version_event is None else version_event.client_version
            hassh = None if kex_event is None else kex_event.hassh
            protocol, src_port, dst_ip, dst_port = (
                (None, None, None, None) if connect is None
                else (connect.protocol, connect.src_port, connect.dst_ip, connect.dst_port))
            first, last, duration = event_ts_text(s[_FIRST]), event_ts_text(s[_LAST]), s[_DURATION]
            if needs_escaping(f"{session_id}{sensor or ''}{protocol or ''}{version or ''}{hassh or ''}"):
                # attacker-chosen text, now and then
                lines.append("\t".join(map(copy_field, (
                    session_id, source_ip, sensor, first, last, protocol, src_port, dst_ip, dst_port, duration,
                    version, hassh, s[_LOGINS], s[_SUCCESSES], s[_COMMANDS], s[_DOWNLOADS], s[_EVENTS]))) + "\n")
                continue
            # Addresses, numbers and times never need escaping (as copy_line).
            lines.append(
                f"{session_id}\t{source_ip}\t{n if sensor is None else sensor}\t{first}\t{last}\t"
                f"{n if protocol is None else protocol}\t{n if src_port is None else src_port}\t"
                f"{n if dst_ip is None else dst_ip}\t{n if dst_port is None else dst_port}\t"
                f"{n if duration is None else repr(duration)}\t{n if version is None else version}\t"
                f"{n if hassh is None else hassh}\t{s[_LOGINS]}\t{s[_SUCCESSES]}\t{s[_COMMANDS]}\t"
                f"{s[_DOWNLOADS]}\t{s[_EVENTS]}\n")
        return "".join(lines).encode()

    def counts_text(self) -> bytes:
        """The events per eventid as COPY text lines: the columns of copy_cowrie_event_counts after batch_id."""
        return "".join(f"{copy_field(eventid)}\t{n}\n" for eventid, n in self.event_counts.items()).encode()


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
    copy_data: bytes  # the sessions as COPY text lines, without the batch_id column (ChunkSessions)
    counts_data: bytes  # the events per eventid as COPY text lines, without the batch_id column
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
        sessions = ChunkSessions()
        rejects: list[cowrie.Reject] = []
        progress = reader.progress
        event_type = cowrie.Event
        limit = job.first_chunk_lines or job.chunk_lines
        for item in reader:
            if type(item) is event_type:
                sessions.add(item)
            else:
                rejects.append(item)  # type: ignore[arg-type]
            if sessions.events + len(rejects) >= limit:
                yield Chunk(job.index, sessions.copy_text(), sessions.counts_text(), sessions.events, rejects,
                            progress.offset, progress.line_no, last=False, load=True, finished=False, pending=0)
                sessions, rejects = ChunkSessions(), []
                limit = min(job.chunk_lines, limit * RAMP_GROWTH)
        # A gzip read to its end cannot grow. A truncated one may still be being written by
        # logrotate: it is read again next time, from the last good line.
        finished = reader.is_gzip and not progress.truncated
        load = bool(sessions.events or rejects) or progress.offset != job.start_offset or finished
        yield Chunk(job.index, sessions.copy_text(), sessions.counts_text(), sessions.events, rejects,
                    progress.offset, progress.line_no, last=True, load=load, finished=finished,
                    pending=progress.partial_bytes)


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
