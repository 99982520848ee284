"""Streaming reader for Cowrie JSON logs: paths → files → lines → rows ready for COPY.

Pure Python, no database. The ingest side calls, per file from `expand_paths`:

* `fingerprint(path)` to recognise a file it has seen (also after rotation and gzip),
* `read_events(path, start_offset, start_line)` to stream `Event` rows (COPY column order is the
  field order) and `Reject` rows, resuming where the previous run stopped,
* `reader.progress` after each item, to record how far the file has been consumed.

Offsets always count bytes of the *decompressed* content, so a plain file that is later rotated and
gzipped keeps the same offsets and the same fingerprint.

A last line without a newline is read only from a file that is complete: a gzip, a rotated name
(`cowrie.json.YYYY-MM-DD`), or a file not modified for `QUIET_SECONDS`. In the live log it may be
a line Cowrie is still writing, so it is left for a later run (`ReadProgress.partial_bytes`).

What is stored must be storable: PostgreSQL text and jsonb cannot hold NUL nor invalid UTF-8, so
such lines become rejects here instead of failing a whole COPY batch later. Attacker-chosen text
(usernames, passwords, commands, client versions) is validated that way and otherwise passed
through untouched.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import ipaddress
import json
import math
import os
import re
import time
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import msgspec

__all__ = [
    "EVENT_COLUMNS",
    "FINGERPRINT_BYTES",
    "GZIP_ERRORS",
    "QUIET_SECONDS",
    "REJECT_COLUMNS",
    "REJECT_REASONS",
    "CowrieInputError",
    "Event",
    "EventReader",
    "ReadProgress",
    "Reject",
    "content_size",
    "expand_paths",
    "fingerprint",
    "read_head",
    "is_gzip",
    "latest_plausible",
    "parse_line",
    "read_events",
]

GZIP_MAGIC = b"\x1f\x8b"
FINGERPRINT_BYTES = 4096
# A plain file unmodified this long is no longer being written: a last line without a newline is
# then all there will ever be of that line (Cowrie crashed, or the file was cut by hand).
QUIET_SECONDS = 300
EXCERPT_CHARS = 200
DETAIL_VALUE_CHARS = 100
_CHUNK = 1 << 20
_LATEST_EVERY = 10_000  # lines between two reads of the clock for the future-time check

# Reject reasons: stable identifiers, stored in SQL.
MALFORMED_JSON = "malformed_json"
MISSING_EVENTID = "missing_eventid"
MISSING_SESSION = "missing_session"
MISSING_SRC_IP = "missing_src_ip"
INVALID_IP = "invalid_ip"
INVALID_TIMESTAMP = "invalid_timestamp"
IMPLAUSIBLE_TIMESTAMP = "implausible_timestamp"
INVALID_UTF8 = "invalid_utf8"
NUL_CHARACTER = "nul_character"
TRUNCATED_GZIP = "truncated_gzip"
REJECT_REASONS = (
    MALFORMED_JSON,
    MISSING_EVENTID,
    MISSING_SESSION,
    MISSING_SRC_IP,
    INVALID_IP,
    INVALID_TIMESTAMP,
    IMPLAUSIBLE_TIMESTAMP,
    INVALID_UTF8,
    NUL_CHARACTER,
    TRUNCATED_GZIP,
)

# Event times outside [EARLIEST_PLAUSIBLE, now + FUTURE_SLACK] are rejected as implausible.
EARLIEST_PLAUSIBLE = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)

# What a damaged gzip stream raises: EOFError when it ends early, zlib.error for corrupt deflate
# data, BadGzipFile (an OSError) for a bad CRC, length or member header.
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


class CowrieInputError(Exception):
    """A path or file that cannot be read as asked (missing, wrong name, cannot resume there)."""


class Event(NamedTuple):
    """One accepted log line. Field order is the COPY column order.

    Per-event fields are filled only from the eventid that defines them (DESIGN.md, "Cowrie logs");
    an unknown eventid still yields an Event, with those fields None.
    """

    line_no: int
    eventid: str
    event_ts: datetime  # aware, UTC
    session_id: str
    src_ip: str  # normalised: IPv4-mapped IPv6 → IPv4, IPv6 compressed
    sensor: str | None
    protocol: str | None  # 'ssh' / 'telnet'
    src_port: int | None  # session.connect
    dst_ip: str | None  # session.connect, normalised like src_ip
    dst_port: int | None  # session.connect
    duration: float | None  # session.closed, seconds
    username: str | None  # login.success / login.failed
    password: str | None  # login.success / login.failed
    command: str | None  # command.input / command.failed `input`
    url: str | None  # session.file_download
    shasum: str | None  # session.file_download / session.file_upload
    client_version: str | None  # client.version `version`
    hassh: str | None  # client.kex `hassh`
    # Not a column: the line's own timestamp text when PostgreSQL reads it as exactly event_ts
    # (UTC, whole seconds or six fraction digits, as Cowrie writes it), so the COPY line carries
    # it as it came; None for any other form, which is written from event_ts.
    event_ts_text: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """One line that cannot become an Event; every field is safe for a PostgreSQL text column."""

    line_no: int
    reason: str  # one of REJECT_REASONS
    detail: str
    excerpt: str  # first 200 characters, invalid bytes and NUL shown as \xNN


EVENT_COLUMNS: tuple[str, ...] = Event._fields[: Event._fields.index("event_ts_text")]
REJECT_COLUMNS: tuple[str, ...] = ("line_no", "reason", "detail", "excerpt")


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------

_COWRIE_NAME = re.compile(r"cowrie\.json(?:\.(\d{4}-\d{2}-\d{2}))?(?:\.gz)?")
_EXPLICIT_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
# Sort ranks inside one folder: rotated days first (by date), other named files, the live file last.
_ROTATED, _OTHER, _LIVE = 0, 1, 2


def _cowrie_rank(name: str) -> tuple[int, date] | None:
    """(rank, date) for Cowrie's own file names, None for anything else."""
    match = _COWRIE_NAME.fullmatch(name)
    if match is None:
        return None
    if match.group(1) is None:
        return _LIVE, date.min
    try:
        return _ROTATED, date.fromisoformat(match.group(1))
    except ValueError:  # cowrie.json.2026-13-45 is not a rotation Cowrie made
        return None


def _is_explicit_name(name: str) -> bool:
    return _cowrie_rank(name) is not None or name.endswith(_EXPLICIT_SUFFIXES)


def _sort_key(path: Path) -> tuple[str, int, date, str]:
    rank = _cowrie_rank(path.name) or (_OTHER, date.min)
    return str(path.parent), rank[0], rank[1], path.name


def _walk(folder: Path) -> Iterator[Path]:
    # os.walk does not follow directory symlinks, so a link loop cannot recurse forever.
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if _cowrie_rank(name) is not None:
                yield Path(root, name)


def expand_paths(paths: Sequence[str]) -> list[Path]:
    """Resolve files, folders (recursive) and globs into the Cowrie log files to read, in order.

    Folders and globs contribute Cowrie's own names (`cowrie.json`, `cowrie.json.YYYY-MM-DD`,
    either with `.gz`); a file named explicitly may also be any `*.json`, `*.json.gz`, `*.jsonl`.
    The result is grouped by folder, each folder in chronological order: rotated files by date,
    then other names, then the live `cowrie.json` (it holds the newest lines). Duplicates (the
    same file reached twice) are dropped.

    Raises CowrieInputError naming a path that does not exist, a glob matching nothing, or an
    explicit file whose name is not a JSON log's.
    """
    found: dict[Path, None] = {}  # insertion-ordered set of resolved paths

    def add_file(path: Path) -> None:
        found.setdefault(path.resolve(), None)

    for arg in paths:
        path = Path(arg)
        if path.is_file():
            if not _is_explicit_name(path.name):
                raise CowrieInputError(f"not a Cowrie JSON log file name: {arg}")
            add_file(path)
        elif path.is_dir():
            for file in _walk(path):
                add_file(file)
        elif any(char in arg for char in "*?["):
            matches = glob.glob(arg, recursive=True)
            if not matches:
                raise CowrieInputError(f"no file matches {arg}")
            for match in map(Path, matches):
                if match.is_dir():
                    for file in _walk(match):
                        add_file(file)
                elif match.is_file() and _is_explicit_name(match.name):
                    add_file(match)
        else:
            raise CowrieInputError(f"no such file or directory: {arg}")
    return sorted(found, key=_sort_key)


# --------------------------------------------------------------------------------------------
# Files: gzip detection, fingerprint, size
# --------------------------------------------------------------------------------------------


def is_gzip(path: Path | str) -> bool:
    """True when the file starts with the gzip magic bytes, whatever its name."""
    try:
        with open(path, "rb") as raw:
            return raw.read(2) == GZIP_MAGIC
    except OSError as exc:  # missing, a folder, no permission
        raise CowrieInputError(f"cannot read {path}: {exc.strerror}") from exc


def _open_content(path: Path | str) -> tuple[io.BufferedIOBase, bool]:
    """Binary stream of the decompressed content, and whether the file is gzip."""
    if is_gzip(path):
        # Not wrapped in a faster io.BufferedReader: when a truncated stream raises, the bytes that
        # wrapper had decompressed for its buffer are lost with the exception, so the complete lines
        # before the break would no longer be yielded. GzipFile itself hands them all out first.
        return gzip.open(path, "rb"), True
    return open(path, "rb"), False


def read_head(path: Path | str, nbytes: int = FINGERPRINT_BYTES) -> bytes:
    """The first `nbytes` bytes of the decompressed content: what `fingerprint` hashes.

    A truncated gzip (logrotate still compressing it) gives the bytes before its break: the
    reader loads the lines there and records the break, so the file needs an identity now, and
    the same head is found again by its length once the file is whole.
    """
    stream, _ = _open_content(path)
    head = b""
    with stream:
        try:
            # read1: what was decompressed before a break is returned, not lost with the error.
            while len(head) < nbytes and (chunk := stream.read1(nbytes - len(head))):
                head += chunk
        except GZIP_ERRORS:
            pass
    return head


def fingerprint(path: Path | str, nbytes: int = FINGERPRINT_BYTES) -> str:
    """sha256 hex of the first `nbytes` bytes of the decompressed content.

    A rotated and gzipped copy of a file fingerprints like the plain original. A file shorter
    than `nbytes` is hashed whole, so a live file still under 4 KiB changes fingerprint as it
    grows: store min(size, nbytes) with the fingerprint and pass it back as `nbytes` to recognise
    the same file later.
    """
    return hashlib.sha256(read_head(path, nbytes)).hexdigest()


def content_size(path: Path | str) -> int:
    """Size in bytes of the decompressed content (for gzip: decompresses the whole file).

    Compare it with a stored offset to know whether a file has been read to its end. The gzip
    trailer's ISIZE is not used: it is modulo 4 GiB and covers only the last member.
    """
    stream, gz = _open_content(path)
    with stream:
        if not gz:
            return os.fstat(stream.fileno()).st_size
        size = 0
        try:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
        except GZIP_ERRORS as exc:
            raise CowrieInputError(f"damaged gzip file {path}: {exc}") from exc
        return size


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ReadProgress:
    """Where a reader is: valid after each item it yields, and after it is exhausted."""

    offset: int  # byte offset (decompressed) just after the last complete line consumed
    line_no: int  # 1-based number of that line (0: none yet)
    partial_bytes: int = 0  # plain file: bytes of an unfinished last line, left for the next run
    truncated: bool = False  # gzip ended early; a 'truncated_gzip' reject was yielded


class EventReader:
    """Iterator of Event | Reject over one file, with its `progress`.

    Use as a context manager, or exhaust it, or call close(): the file stays open until then.
    """

    def __init__(self, path: Path | str, start_offset: int = 0, start_line: int = 0,
                 complete: bool | None = None) -> None:
        if start_offset < 0 or start_line < 0:
            raise ValueError("start_offset and start_line must not be negative")
        self.path = Path(path)
        self.complete = complete  # None: decided by the file (see _is_complete)
        self.progress = ReadProgress(offset=start_offset, line_no=start_line)
        self._stream, self.is_gzip = _open_content(self.path)
        try:
            self.progress.offset = self._skip_to(start_offset)
        except BaseException:
            self._stream.close()
            raise
        self._items = self._read()

    def _is_complete(self) -> bool:
        """Whether a plain file's unterminated last line is finished. Asked when such a line is
        met, after its bytes were read: a write since then makes the file look new, not old."""
        if self.complete is not None:
            return self.complete
        rank = _cowrie_rank(self.path.name)
        if rank is not None and rank[0] == _ROTATED:
            return True  # Cowrie renames the live file at midnight and never writes to it again
        return time.time() - os.fstat(self._stream.fileno()).st_mtime >= QUIET_SECONDS

    def _skip_to(self, offset: int) -> int:
        """Position the stream at `offset`: just after a newline, or at the end of the content
        (a last line without a newline, consumed from a complete file). Returns where reading
        resumes: one byte further when such a consumed line has got its newline since."""
        if offset == 0:
            return 0
        stream = self._stream
        try:
            if self.is_gzip:
                remaining = offset - 1  # gzip cannot seek: decompress and discard
                while remaining and (chunk := stream.read(min(remaining, _CHUNK))):
                    remaining -= len(chunk)
            else:
                stream.seek(offset - 1)
            before = stream.read(1)
            # A second read only happens when `before` is not a newline: it must find the end, or
            # the newline that ends the line already consumed (it is part of that line).
            after = b"" if before in (b"\n", b"") else stream.read(1)
        except GZIP_ERRORS as exc:
            raise CowrieInputError(f"cannot resume {self.path} at byte {offset}: {exc}") from exc
        if before == b"" or after not in (b"", b"\n"):
            # Resuming mid-line would turn the rest of that line into a bogus reject: the file is
            # not the one the offset was recorded for, or it was truncated. Say so instead.
            raise CowrieInputError(
                f"cannot resume {self.path} at byte {offset}: not the end of a line "
                "(the file is shorter or has changed)"
            )
        return offset + len(after)

    def _read(self) -> Generator[Event | Reject, None, None]:
        progress = self.progress
        offset, line_no = progress.offset, progress.line_no
        latest, latest_until = latest_plausible(), line_no + _LATEST_EVERY  # the clock, once in a while
        try:
            for raw in self._stream:
                if raw[-1:] != b"\n" and not self.is_gzip and not self._is_complete():
                    # A plain file may be the live log with a line still being written.
                    progress.partial_bytes = len(raw)
                    return
                offset += len(raw)
                line_no += 1
                if line_no >= latest_until:
                    latest, latest_until = latest_plausible(), line_no + _LATEST_EVERY
                item = parse_line(raw, line_no, latest)
                progress.offset, progress.line_no = offset, line_no
                if item is not None:
                    yield item
        except GZIP_ERRORS as exc:
            # Lines yielded so far are good; the rest of the file is unreadable.
            progress.truncated = True
            yield Reject(
                line_no + 1,
                TRUNCATED_GZIP,
                f"{exc} (after byte {offset} of the decompressed content)",
                "",
            )
        finally:
            self._stream.close()

    def __iter__(self) -> Iterator[Event | Reject]:
        # The generator itself, so a for loop runs without a Python-level __next__ per line
        # (~5% of the time); it shares this reader's state and progress.
        return self._items

    def __next__(self) -> Event | Reject:
        return next(self._items)

    def close(self) -> None:
        self._items.close()
        self._stream.close()

    def __enter__(self) -> EventReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_events(path: Path | str, start_offset: int = 0, start_line: int = 0,
                complete: bool | None = None) -> EventReader:
    """Stream the Events and Rejects of one Cowrie log file, plain or gzip.

    Resume with the `progress.offset` / `progress.line_no` of an earlier run: the bytes before
    `start_offset` are skipped and line numbers continue from `start_line`. A last line without
    a newline is consumed when the file is complete: a gzip (finished by definition), a rotated
    name, a plain file unmodified for QUIET_SECONDS, or `complete=True`. Otherwise (the live log
    may be mid-write, or `complete=False`) it is left unconsumed and counted in
    `progress.partial_bytes`. Raises CowrieInputError when the file is missing or `start_offset`
    is not just after a line end of this file.
    """
    return EventReader(path, start_offset, start_line, complete)


# --------------------------------------------------------------------------------------------
# One line
# --------------------------------------------------------------------------------------------


def _safe_value(value: object) -> str:
    """A JSON value for a reject's detail: at most DETAIL_VALUE_CHARS, storable in a text column.

    repr() escapes NUL and lone surrogates; json.dumps escapes all non-ASCII.
    """
    if isinstance(value, str):
        return repr(value[:DETAIL_VALUE_CHARS])
    return json.dumps(value)[:DETAIL_VALUE_CHARS]


def _reject(raw: bytes, line_no: int, reason: str, detail: str) -> Reject:
    # 200 characters never need more than 800 bytes; decode no more of a possibly huge line.
    excerpt = raw[: EXCERPT_CHARS * 4].decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    return Reject(line_no, reason, detail, excerpt[:EXCERPT_CHARS].rstrip("\r\n"))


def _unstorable_string(obj: object) -> tuple[str, str] | None:
    """(reason, detail) when a key or string holds NUL or a lone surrogate (from JSON escapes)."""
    pending = [obj]  # iterative: a deep document must not hit the recursion limit
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            if "\x00" in value:
                return NUL_CHARACTER, "JSON escape \\u0000 in a string"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return INVALID_UTF8, "lone surrogate escape (\\ud800-\\udfff) in a string"
    return None


@lru_cache(maxsize=65536)  # a few thousand attackers make up most lines: normalise each once
def _normalise_ip(text: str) -> str:
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise ValueError("zone index is not allowed")  # inet has no place for it
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return str(address)


def _optional_ip(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return _normalise_ip(value)
    except ValueError:
        return None


def _text(value: object) -> str | None:
    """Optional text field: strings as they are; other JSON values (e.g. a numeric password) as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _port(value: object) -> int | None:
    if type(value) is str and 0 < len(value) <= 5 and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is int and 0 <= value <= 65535:
        return value
    return None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _timestamp(value: object) -> datetime:
    if type(value) is not str:
        raise TypeError("not a string")
    parsed = datetime.fromisoformat(value)  # 3.11+: accepts Z, offsets, 0-9 fraction digits
    if parsed.tzinfo is UTC:
        return parsed
    if parsed.tzinfo is None:  # Cowrie writes UTC; a naive time is read as UTC
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_raw_decode = json.JSONDecoder().raw_decode
_msgspec_decode = msgspec.json.decode


def _json_value(text: str) -> object:
    """json.loads(text), minus its two whitespace regex passes, which cost ~20% of a line's time.

    Cowrie lines start with their object; anything else takes json.loads itself, so leading
    whitespace is accepted and errors carry json's own messages.
    """
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)
    if end != len(text) and not text[end:].isspace():
        return json.loads(text)  # raises "Extra data"
    return value


def latest_plausible() -> datetime:
    """The latest event time accepted now: `parse_line(..., latest=)` takes it once per chunk."""
    return datetime.now(UTC) + FUTURE_SLACK


def parse_line(raw: bytes, line_no: int, latest: datetime | None = None) -> Event | Reject | None:
    """One raw line (with or without its newline) → Event, Reject, or None for a blank line.

    Optional fields that are malformed (a port that is not a port, a dst_ip that is not an IP)
    become None: they are sensor-written details not worth losing the event for. The identity of
    an event (eventid, session, src_ip, timestamp) must be right or the line is rejected.
    `latest`: the latest plausible event time (latest_plausible(); asked here when None).

    The line is decoded by msgspec (C, straight from bytes, strict UTF-8, about twice as fast as
    json). msgspec accepts less than json (NaN, Infinity, lone surrogate escapes, Unicode
    whitespace after the object): any line it refuses takes json's path, which decides exactly as
    before, reason and detail included. An ASCII line without a \\u escape (most of them) is
    decoded into `_Line`, the fields ipintel reads, the others skipped unbuilt (about twice as
    fast again): such a line cannot hold invalid UTF-8, NUL or a lone surrogate anywhere.
    """
    if b"\x00" not in raw:
        members_only = raw.isascii() and b"\\u" not in raw
        try:
            doc = _decode_line(raw) if members_only else _msgspec_decode(raw)
        except (msgspec.DecodeError, RecursionError):
            pass
        else:
            if members_only:
                return _event(raw, line_no, doc, latest)
            if type(doc) is dict:
                return _object_event(raw, line_no, doc, latest)
    return _parse_line_json(raw, line_no, latest)


def _parse_line_json(raw: bytes, line_no: int, latest: datetime | None) -> Event | Reject | None:
    """parse_line by the json module: every line msgspec refuses, so its reject is json's."""
    # Byte-level checks first: cheap, and they make the excerpt of a reject meaningful.
    if b"\x00" in raw:
        return _reject(raw, line_no, NUL_CHARACTER, "NUL byte (0x00) in the line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _reject(
            raw, line_no, INVALID_UTF8, f"byte 0x{raw[exc.start]:02x} at {exc.start} is not UTF-8"
        )
    try:
        obj = _json_value(text)
    except ValueError as exc:  # JSONDecodeError
        if text.isspace():
            return None
        return _reject(raw, line_no, MALFORMED_JSON, str(exc))
    except RecursionError:
        return _reject(raw, line_no, MALFORMED_JSON, "JSON nested too deeply")
    if not isinstance(obj, dict):
        return _reject(raw, line_no, MALFORMED_JSON, f"JSON {type(obj).__name__} is not an object")
    return _object_event(raw, line_no, obj, latest)


class _Line(msgspec.Struct):
    """The members of a Cowrie line that an Event is made of; absent or null: None."""

    eventid: Any = None
    session: Any = None
    src_ip: Any = None
    timestamp: Any = None
    sensor: Any = None
    protocol: Any = None
    src_port: Any = None
    dst_ip: Any = None
    dst_port: Any = None
    duration: Any = None
    username: Any = None
    password: Any = None
    input: Any = None
    url: Any = None
    shasum: Any = None
    version: Any = None
    hassh: Any = None


_decode_line = msgspec.json.Decoder(_Line).decode
_new_event = tuple.__new__


def _object_event(raw: bytes, line_no: int, obj: dict[str, object], latest: datetime | None) -> Event | Reject:
    """The Event (or Reject) of a line decoded into the JSON object `obj`."""
    # NUL and lone surrogates can only arrive as \u escapes now; walk the document only then.
    if b"\\u" in raw and (b"\\u0000" in raw or b"\\ud" in raw or b"\\uD" in raw):
        unstorable = _unstorable_string(obj)
        if unstorable is not None:
            return _reject(raw, line_no, *unstorable)
    return _event(raw, line_no, msgspec.convert(obj, _Line), latest)


# A timestamp that fromisoformat accepted reads in PostgreSQL as the same instant when it has
# one of Cowrie's own forms, checked digit by digit (ASCII digits only): YYYY-MM-DDTHH:MM:SS, no
# fraction or six digits of it, then Z or +00:00. Such text goes into the COPY line as written
# (Event.event_ts_text); other forms (more digits, which Python truncates and PostgreSQL rounds;
# no zone, which PostgreSQL reads in its session's) are written from the parsed time.
_COPY_EXACT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?(?:Z|\+00:00)", re.ASCII).fullmatch


def _event(raw: bytes, line_no: int, doc: _Line, latest: datetime | None) -> Event | Reject:
    """The Event (or Reject) of a line decoded into `doc`."""
    eventid = doc.eventid
    if type(eventid) is not str or not eventid:
        return _reject(raw, line_no, MISSING_EVENTID, f"eventid is {_safe_value(eventid)}")
    session = doc.session
    if type(session) is not str or not session:
        return _reject(raw, line_no, MISSING_SESSION, f"session is {_safe_value(session)}")
    raw_ip = doc.src_ip
    if raw_ip is None or raw_ip == "":
        return _reject(raw, line_no, MISSING_SRC_IP, f"src_ip is {_safe_value(raw_ip)}")
    try:
        if type(raw_ip) is not str:
            raise TypeError
        src_ip = _normalise_ip(raw_ip)
    except (TypeError, ValueError):
        return _reject(raw, line_no, INVALID_IP, f"src_ip {_safe_value(raw_ip)} is not an IP address")
    raw_ts = doc.timestamp
    try:
        event_ts = _timestamp(raw_ts)
    except (TypeError, ValueError, OverflowError):
        return _reject(
            raw, line_no, INVALID_TIMESTAMP, f"timestamp {_safe_value(raw_ts)} is not ISO 8601"
        )
    # Well-formed but impossible for a Cowrie event (a sensor clock reset to year 1, a forged
    # line): it would sort first or last and skew every time window, so it is rejected too.
    if event_ts < EARLIEST_PLAUSIBLE or event_ts > (latest or latest_plausible()):
        return _reject(
            raw, line_no, IMPLAUSIBLE_TIMESTAMP,
            f"timestamp {_safe_value(raw_ts)} is before {EARLIEST_PLAUSIBLE:%Y} or more than "
            f"{FUTURE_SLACK.days} day in the future",
        )

    src_port = dst_ip = dst_port = duration = None
    username = password = command = url = shasum = client_version = hassh = None
    # Most frequent eventids first.
    if eventid == "cowrie.login.failed" or eventid == "cowrie.login.success":
        username = _text(doc.username)
        password = _text(doc.password)
    elif eventid == "cowrie.command.input" or eventid == "cowrie.command.failed":
        command = _text(doc.input)
    elif eventid == "cowrie.session.connect":
        src_port = _port(doc.src_port)
        dst_ip = _optional_ip(doc.dst_ip)
        dst_port = _port(doc.dst_port)
    elif eventid == "cowrie.session.closed":
        duration = _seconds(doc.duration)
    elif eventid == "cowrie.client.version":
        client_version = _text(doc.version)
    elif eventid == "cowrie.client.kex":
        hassh = _text(doc.hassh)
    elif eventid == "cowrie.session.file_download":
        url = _text(doc.url)
        shasum = _text(doc.shasum)
    elif eventid == "cowrie.session.file_upload":
        shasum = _text(doc.shasum)
    # tuple.__new__ straight: Event(...) goes through NamedTuple's Python-level __new__.
    return _new_event(Event, (
        line_no,
        eventid,
        event_ts,
        session,
        src_ip,
        _text(doc.sensor),
        _text(doc.protocol),
        src_port,
        dst_ip,
        dst_port,
        duration,
        username,
        password,
        command,
        url,
        shasum,
        client_version,
        hassh,
        raw_ts if _COPY_EXACT(raw_ts) is not None else None,
    ))
