"""Cowrie log reading (ipintel.cowrie) and the demo log generator (ipintel.demo_logs), checked against
its oracle (tests/cowrie_oracle.py); the large volume file (tests/cowrie_large.py). No database."""

from __future__ import annotations

import gzip
import ipaddress
import json
import os
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ipintel import demo_logs
from ipintel.cowrie import (
    EVENT_COLUMNS,
    QUIET_SECONDS,
    REJECT_COLUMNS,
    REJECT_REASONS,
    CowrieInputError,
    Event,
    Reject,
    content_size,
    expand_paths,
    fingerprint,
    is_gzip,
    parse_line,
    read_events,
)
from tests import cowrie_large, cowrie_oracle

SID = "a1b2c3d4e5f6"
TS = "2026-11-21T23:59:58.123456Z"
TS_DT = datetime(2026, 11, 21, 23, 59, 58, 123456, tzinfo=UTC)


def line(eventid: str, **fields: Any) -> bytes:
    """A Cowrie JSON line; `fields` override the shared attributes (None removes one)."""
    record: dict[str, Any] = {
        "eventid": eventid,
        "message": "",
        "sensor": "hp-test",
        "timestamp": TS,
        "src_ip": "203.0.113.7",
        "session": SID,
    }
    record.update(fields)
    record = {key: value for key, value in record.items() if value is not None}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def write(path: Path, *lines: bytes, compress: bool = False) -> Path:
    data = b"".join(lines)
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def read_all(path: Path, start_offset: int = 0, start_line: int = 0) -> list[Event | Reject]:
    with read_events(path, start_offset, start_line) as reader:
        return list(reader)


def only(items: list[Event | Reject]) -> Event | Reject:
    assert len(items) == 1, items
    return items[0]


# ------------------------------------------------------------------------------------------------
# Column order: the COPY contract with the ingest code
# ------------------------------------------------------------------------------------------------


def test_column_order_is_the_copy_contract() -> None:
    assert EVENT_COLUMNS == (
        "line_no", "eventid", "event_ts", "session_id", "src_ip", "sensor", "protocol",
        "src_port", "dst_ip", "dst_port", "duration", "username", "password", "command",
        "url", "shasum", "client_version", "hassh",
    )
    assert REJECT_COLUMNS == ("line_no", "reason", "detail", "excerpt")
    assert tuple(Reject(1, "r", "d", "e").__slots__) == REJECT_COLUMNS


# ------------------------------------------------------------------------------------------------
# Every event type of DESIGN.md's Cowrie section
# ------------------------------------------------------------------------------------------------

SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
KNOWN_EVENTS: list[tuple[bytes, dict[str, Any]]] = [
    (
        line("cowrie.session.connect", src_port=51234, dst_ip="172.31.5.68", dst_port=2222, protocol="ssh",
             message=f"New connection: 203.0.113.7:51234 (172.31.5.68:2222) [session: {SID}]"),
        {"protocol": "ssh", "src_port": 51234, "dst_ip": "172.31.5.68", "dst_port": 2222},
    ),
    (line("cowrie.session.connect", src_port="23", dst_ip="10.0.0.1", dst_port=23, protocol="telnet"),
     {"protocol": "telnet", "src_port": 23, "dst_ip": "10.0.0.1", "dst_port": 23}),
    (line("cowrie.client.version", version="SSH-2.0-libssh2_1.9.0"), {"client_version": "SSH-2.0-libssh2_1.9.0"}),
    (
        line("cowrie.client.kex", hassh="92674389fa1e47a27ddd8d9b63ecd42b",
             hasshAlgorithms="curve25519-sha256;aes128-ctr;hmac-sha2-256;none", kexAlgs=["curve25519-sha256"],
             keyAlgs=["ssh-ed25519"]),
        {"hassh": "92674389fa1e47a27ddd8d9b63ecd42b"},
    ),
    (line("cowrie.login.failed", username="root", password="123456"), {"username": "root", "password": "123456"}),
    (line("cowrie.login.success", username="admin", password=""), {"username": "admin", "password": ""}),
    # A numeric password is kept as its JSON text, not lost.
    (line("cowrie.login.failed", username="root", password=1234), {"username": "root", "password": "1234"}),
    (line("cowrie.command.input", input="uname -a; rm -rf /tmp/*"), {"command": "uname -a; rm -rf /tmp/*"}),
    (line("cowrie.command.failed", input="lockr -ia .ssh"), {"command": "lockr -ia .ssh"}),
    (
        line("cowrie.session.file_download", url="http://198.51.100.9/bins.sh",
             outfile=f"var/lib/cowrie/downloads/{SHA}", shasum=SHA),
        {"url": "http://198.51.100.9/bins.sh", "shasum": SHA},
    ),
    (line("cowrie.session.file_upload", filename="x.sh", outfile=f"dl/{SHA}", shasum=SHA), {"shasum": SHA}),
    (line("cowrie.session.closed", duration=12.5), {"duration": 12.5}),
    (line("cowrie.session.closed", duration="3.0"), {"duration": 3.0}),  # older Cowrie wrote a string
    # Events the reader does not interpret: yielded, per-event fields left empty, even when the
    # event carries a field of the same name (log.closed has shasum and duration of its TTY log).
    (line("cowrie.client.size", width=80, height=24), {}),
    (line("cowrie.client.fingerprint", username="root", fingerprint="aa:bb", key="AAAA", type="ssh-rsa"), {}),
    (line("cowrie.direct-tcpip.request", dst_ip="ya.ru", dst_port=443, src_port=0), {}),
    (line("cowrie.direct-tcpip.data", dst_ip="ya.ru", dst_port=443, data="b'GET /'"), {}),
    (line("cowrie.log.open", ttylog="var/lib/cowrie/tty/x"), {}),
    (line("cowrie.log.closed", ttylog="var/lib/cowrie/tty/x", size=10, shasum=SHA, duration=1.5), {}),
    (line("cowrie.session.params", arch="linux-x64-lsb", message=[]), {}),
    (line("cowrie.something.new", anything={"nested": [1, 2]}), {}),
]


@pytest.mark.parametrize(("raw", "fields"), KNOWN_EVENTS, ids=[json.loads(r)["eventid"] for r, _ in KNOWN_EVENTS])
def test_each_event_type_fills_its_own_fields(raw: bytes, fields: dict[str, Any]) -> None:
    event = parse_line(raw, 7)
    assert isinstance(event, Event)
    base = dict.fromkeys(EVENT_COLUMNS)
    base.update(line_no=7, eventid=json.loads(raw)["eventid"], event_ts=TS_DT, session_id=SID,
                src_ip="203.0.113.7", sensor="hp-test", event_ts_text=TS)
    assert event._asdict() == {**base, **fields}


def test_a_file_of_every_event_type_reads_in_order(tmp_path: Path) -> None:
    path = write(tmp_path / "cowrie.json", *(raw for raw, _ in KNOWN_EVENTS))
    items = read_all(path)
    assert [item.line_no for item in items] == list(range(1, len(KNOWN_EVENTS) + 1))
    assert all(isinstance(item, Event) for item in items)


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("198.51.100.23", "198.51.100.23"),
        ("::ffff:198.51.100.23", "198.51.100.23"),
        ("::FFFF:C633:6417", "198.51.100.23"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2a01:4f8::1", "2a01:4f8::1"),
    ],
)
def test_src_ip_is_normalised(written: str, normalised: str) -> None:
    event = parse_line(line("cowrie.session.connect", src_ip=written), 1)
    assert isinstance(event, Event) and event.src_ip == normalised


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-11-21T23:59:58.123456Z", TS_DT),
        ("2026-11-21T23:59:58Z", datetime(2026, 11, 21, 23, 59, 58, tzinfo=UTC)),
        ("2026-11-22T01:59:58.123456+02:00", TS_DT),
        ("2026-11-21T23:59:58.123456", TS_DT),  # naive: Cowrie writes UTC
        ("2026-11-21T23:59:58.123456789Z", TS_DT),
    ],
)
def test_timestamps_become_aware_utc(written: str, expected: datetime) -> None:
    event = parse_line(line("cowrie.session.closed", timestamp=written), 1)
    assert isinstance(event, Event)
    assert event.event_ts == expected and event.event_ts.tzinfo is UTC


def test_malformed_optional_fields_become_none() -> None:
    event = parse_line(line("cowrie.session.connect", src_port=70000, dst_ip="not-an-ip", dst_port=True), 1)
    assert isinstance(event, Event)
    assert (event.src_port, event.dst_ip, event.dst_port) == (None, None, None)
    closed = parse_line(line("cowrie.session.closed", duration="NaN"), 1)
    assert isinstance(closed, Event) and closed.duration is None


# ------------------------------------------------------------------------------------------------
# Rejects
# ------------------------------------------------------------------------------------------------

REJECT_CASES: list[tuple[str, bytes, str, str]] = [
    ("cut JSON", b'{"eventid":"cowrie.login.failed","session":"abc",\n', "malformed_json", "Expecting property name"),
    ("not an object", b'["cowrie.login.failed"]\n', "malformed_json", "not an object"),
    ("trailing garbage", line("cowrie.session.closed")[:-1] + b" x\n", "malformed_json", "Extra data"),
    ("no eventid", line(None), "missing_eventid", "eventid is null"),  # type: ignore[arg-type]  # deliberately not a str
    ("eventid not text", line(42), "missing_eventid", "eventid is 42"),  # type: ignore[arg-type]  # deliberately not a str
    ("no session", line("cowrie.login.failed", session=None), "missing_session", "session is null"),
    ("empty session", line("cowrie.login.failed", session=""), "missing_session", "session is ''"),
    ("no src_ip", line("cowrie.login.failed", src_ip=None), "missing_src_ip", "src_ip is null"),
    ("empty src_ip", line("cowrie.login.failed", src_ip=""), "missing_src_ip", "src_ip is ''"),
    ("bad IPv4", line("cowrie.login.failed", src_ip="999.1.1.1"), "invalid_ip", "src_ip '999.1.1.1'"),
    ("IP as number", line("cowrie.login.failed", src_ip=3405803783), "invalid_ip", "src_ip 3405803783"),
    ("IPv6 zone", line("cowrie.login.failed", src_ip="fe80::1%eth0"), "invalid_ip", "fe80::1%eth0"),
    ("bad time", line("cowrie.login.failed", timestamp="yesterday"), "invalid_timestamp", "'yesterday'"),
    ("no time", line("cowrie.login.failed", timestamp=None), "invalid_timestamp", "timestamp null"),
    ("year 1", line("cowrie.login.failed", timestamp="0001-01-01T00:00:00Z"), "implausible_timestamp",
     "'0001-01-01T00:00:00Z' is before 1990"),
    ("before 1990", line("cowrie.login.failed", timestamp="1989-12-31T23:59:59.999999Z"), "implausible_timestamp",
     "is before 1990 or more than 1 day in the future"),
    ("far future", line("cowrie.login.failed", timestamp="2999-01-01T00:00:00+02:00"), "implausible_timestamp",
     "'2999-01-01T00:00:00+02:00'"),
    (
        "non-UTF-8 byte",
        line("cowrie.login.failed", username="root", password="PASS").replace(b"PASS", b"p\xffss"),
        "invalid_utf8",
        "byte 0xff",
    ),
    (
        "lone surrogate escape",
        line("cowrie.login.failed", username="root", password="PASS").replace(b"PASS", b"p\\udc80ss"),
        "invalid_utf8",
        "lone surrogate",
    ),
    (
        "raw NUL",
        line("cowrie.command.input", input="CMD").replace(b"CMD", b"echo \x00 > /dev/null"),
        "nul_character",
        "NUL byte",
    ),
    ("escaped NUL", line("cowrie.login.failed", username="root", password="a\x00b"), "nul_character", "\\u0000"),
    ("escaped NUL in a key", line("cowrie.client.var", **{"n\x00me": "x"}), "nul_character", "\\u0000"),
]


@pytest.mark.parametrize(("raw", "reason", "detail"), [c[1:] for c in REJECT_CASES], ids=[c[0] for c in REJECT_CASES])
def test_bad_lines_are_rejected_with_a_stable_reason(raw: bytes, reason: str, detail: str) -> None:
    reject = parse_line(raw, 3)
    assert isinstance(reject, Reject), reject
    assert (reject.line_no, reject.reason) == (3, reason)
    assert reject.reason in REJECT_REASONS
    assert detail in reject.detail
    for text in (reject.detail, reject.excerpt):  # storable in a PostgreSQL text column
        assert "\x00" not in text
        text.encode("utf-8")


def test_plausible_timestamps_at_the_edges_are_accepted() -> None:
    earliest = parse_line(line("cowrie.login.failed", timestamp="1990-01-01T00:00:00Z"), 1)
    assert isinstance(earliest, Event) and earliest.event_ts == datetime(1990, 1, 1, tzinfo=UTC)
    # A sensor clock a few hours ahead is still a real event.
    ahead = (datetime.now(UTC) + timedelta(hours=23)).isoformat()
    assert isinstance(parse_line(line("cowrie.login.failed", timestamp=ahead), 1), Event)
    beyond = (datetime.now(UTC) + timedelta(days=1, minutes=5)).isoformat()
    reject = parse_line(line("cowrie.login.failed", timestamp=beyond), 1)
    assert isinstance(reject, Reject) and reject.reason == "implausible_timestamp"


def test_excerpt_is_short_and_shows_nul_and_bad_bytes_escaped() -> None:
    raw = b'{"eventid":"x\x00\xff' + b"a" * 500 + b'"}\n'
    reject = parse_line(raw, 1)
    assert isinstance(reject, Reject) and reject.reason == "nul_character"
    assert reject.excerpt.startswith('{"eventid":"x\\x00\\xffaaa')
    assert len(reject.excerpt) == 200
    short = parse_line(b"{oops\n", 1)
    assert isinstance(short, Reject) and short.excerpt == "{oops"


def test_a_long_bad_value_is_cut_in_the_detail() -> None:
    reject = parse_line(line("cowrie.login.failed", src_ip="x" * 5000), 1)
    assert isinstance(reject, Reject) and reject.reason == "invalid_ip"
    assert len(reject.detail) < 150


def test_rejects_do_not_stop_the_file_and_blank_lines_count(tmp_path: Path) -> None:
    path = write(
        tmp_path / "cowrie.json",
        line("cowrie.session.connect"),
        b"not json\n",
        b"\n",
        b"   \r\n",
        line("cowrie.session.closed", src_ip="bogus"),
        line("cowrie.session.closed"),
    )
    items = read_all(path)
    assert [(type(item).__name__, item.line_no) for item in items] == [
        ("Event", 1), ("Reject", 2), ("Reject", 5), ("Event", 6)
    ]


def test_truncated_gzip_keeps_what_was_read_and_rejects_the_rest(tmp_path: Path) -> None:
    lines = [line("cowrie.command.input", input=f"echo {n} " + "x" * 200) for n in range(2000)]
    whole = gzip.compress(b"".join(lines), mtime=0)
    path = tmp_path / "cowrie.json.2026-11-20.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with read_events(path) as reader:
        items = list(reader)
    *events, last = items
    assert events and all(isinstance(e, Event) for e in events)
    assert [e.line_no for e in events] == list(range(1, len(events) + 1))
    assert isinstance(last, Reject) and last.reason == "truncated_gzip"
    assert last.line_no == len(events) + 1
    assert reader.progress.truncated
    assert reader.progress.line_no == len(events)
    assert reader.progress.offset == sum(map(len, lines[: len(events)]))


# ------------------------------------------------------------------------------------------------
# Progress, resume, the live file's unfinished line
# ------------------------------------------------------------------------------------------------


def test_progress_follows_each_item(tmp_path: Path) -> None:
    lines = [line("cowrie.login.failed", password=str(n)) for n in range(5)]
    path = write(tmp_path / "cowrie.json", *lines)
    with read_events(path) as reader:
        for n, item in enumerate(reader, start=1):
            assert (reader.progress.line_no, reader.progress.offset) == (n, sum(map(len, lines[:n])))
            assert item.line_no == n


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_resume_yields_only_new_lines(tmp_path: Path, compress: bool) -> None:
    lines = [line("cowrie.login.failed", password=str(n)) for n in range(6)]
    path = write(tmp_path / "cowrie.json", *lines[:4])
    with read_events(path) as first:
        assert len(list(first)) == 4
        offset, line_no = first.progress.offset, first.progress.line_no
    write(path, *lines, compress=compress)  # the file grew (and maybe was rotated and gzipped)
    again = read_all(path, offset, line_no)
    assert [(e.line_no, e.password) for e in again if isinstance(e, Event)] == [(5, "4"), (6, "5")]


def test_resume_refuses_an_offset_that_is_not_a_line_end(tmp_path: Path) -> None:
    path = write(tmp_path / "cowrie.json", line("cowrie.session.connect"), line("cowrie.session.closed"))
    with pytest.raises(CowrieInputError, match="not the end of a line"):
        read_events(path, 10, 1)
    with pytest.raises(CowrieInputError, match="not the end of a line"):
        read_events(path, 10_000, 2)  # the file is shorter than what was recorded
    gz = write(tmp_path / "cowrie.json.gz", line("cowrie.session.connect"), compress=True)
    with pytest.raises(CowrieInputError):
        read_events(gz, 10_000, 2)


def test_unfinished_last_line_of_a_plain_file_waits_for_the_next_run(tmp_path: Path) -> None:
    complete = line("cowrie.session.connect")
    last = line("cowrie.session.closed", duration=1.0)
    path = write(tmp_path / "cowrie.json", complete, last[:25])
    with read_events(path) as reader:
        assert [e.eventid for e in reader] == ["cowrie.session.connect"]
    assert (reader.progress.offset, reader.progress.line_no) == (len(complete), 1)
    assert reader.progress.partial_bytes == 25

    write(path, complete, last)  # Cowrie finished writing the line
    resumed = read_all(path, reader.progress.offset, reader.progress.line_no)
    assert [(e.line_no, e.eventid) for e in resumed] == [(2, "cowrie.session.closed")]


def set_age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.mark.parametrize(
    ("name", "age", "complete", "read"),
    [
        ("cowrie.json", 0, None, 1),  # the live file, just written: the line may be mid-write
        ("cowrie.json", QUIET_SECONDS - 30, None, 1),
        ("cowrie.json", QUIET_SECONDS + 30, None, 2),  # nobody has written it for a while
        ("other.json", QUIET_SECONDS + 30, None, 2),
        ("cowrie.json.2026-11-20", 0, None, 2),  # rotated: Cowrie never writes to it again
        ("cowrie.json", 0, True, 2),
        ("cowrie.json.2026-11-20", QUIET_SECONDS + 30, False, 1),
    ],
    ids=["live", "live-recent", "quiet", "quiet-other-name", "rotated", "said-complete", "said-live"],
)
def test_last_line_without_newline_is_read_once_the_file_is_complete(
    tmp_path: Path, name: str, age: float, complete: bool | None, read: int
) -> None:
    first, last = line("cowrie.session.connect"), line("cowrie.session.closed", duration=1.0)[:-1]
    path = write(tmp_path / name, first, last)
    set_age(path, age)
    with read_events(path, complete=complete) as reader:
        assert [e.line_no for e in reader] == list(range(1, read + 1))
    if read == 2:
        assert (reader.progress.offset, reader.progress.line_no, reader.progress.partial_bytes) == (
            path.stat().st_size, 2, 0)
    else:
        assert (reader.progress.offset, reader.progress.partial_bytes) == (len(first), len(last))


def test_resume_after_a_last_line_that_got_its_newline_later(tmp_path: Path) -> None:
    """A quiet file's unterminated line was read; then its newline came after all (and more)."""
    first, last = line("cowrie.session.connect"), line("cowrie.session.closed", duration=1.0)
    path = write(tmp_path / "cowrie.json", first, last[:-1])
    with read_events(path, complete=True) as reader:
        assert len(list(reader)) == 2
    offset, line_no = reader.progress.offset, reader.progress.line_no

    write(path, first, last)  # only the newline: nothing new, but the offset moves past it
    with read_events(path, offset, line_no) as resumed:
        assert list(resumed) == []
    assert (resumed.progress.offset, resumed.progress.line_no) == (offset + 1, 2)

    more = line("cowrie.login.failed", password="x")
    write(path, first, last, more)
    assert [(e.line_no, e.eventid) for e in read_all(path, offset, line_no)] == [(3, "cowrie.login.failed")]
    with pytest.raises(CowrieInputError, match="not the end of a line"):
        read_events(path, offset - 1, line_no)  # anywhere else inside a line is still refused


def test_last_line_without_newline_in_a_gzip_file_is_read(tmp_path: Path) -> None:
    last = line("cowrie.session.closed")[:-1]
    path = write(tmp_path / "cowrie.json.2026-11-20.gz", line("cowrie.session.connect"), last, compress=True)
    with read_events(path) as reader:
        assert [e.line_no for e in reader] == [1, 2]
    assert reader.progress.offset == content_size(path)
    assert read_all(path, reader.progress.offset, reader.progress.line_no) == []  # a later run


# ------------------------------------------------------------------------------------------------
# Files: gzip by magic bytes, fingerprint, size
# ------------------------------------------------------------------------------------------------


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    hidden_gz = write(tmp_path / "cowrie.json", line("cowrie.session.connect"), compress=True)
    plain_named_gz = write(tmp_path / "cowrie.json.gz", line("cowrie.session.connect"))
    assert is_gzip(hidden_gz) and not is_gzip(plain_named_gz)
    for path in (hidden_gz, plain_named_gz):
        assert [e.eventid for e in read_all(path)] == ["cowrie.session.connect"]


def test_rotated_gzip_copy_has_the_plain_files_fingerprint_and_size(tmp_path: Path) -> None:
    lines = [line("cowrie.command.input", input=f"cmd {n}") for n in range(100)]  # > 4 KiB
    plain = write(tmp_path / "cowrie.json", *lines)
    rotated = write(tmp_path / "cowrie.json.2026-11-20.gz", *lines, compress=True)
    grown = write(tmp_path / "other.json", *lines, line("cowrie.session.closed"))
    different = write(tmp_path / "different.json", *lines[1:])
    assert fingerprint(plain) == fingerprint(rotated) == fingerprint(grown)
    assert fingerprint(plain) != fingerprint(different)
    assert content_size(plain) == content_size(rotated) == plain.stat().st_size


def test_a_small_live_file_is_recognised_with_the_length_it_had(tmp_path: Path) -> None:
    first = line("cowrie.session.connect")
    path = write(tmp_path / "cowrie.json", first)
    seen = fingerprint(path)
    write(path, first, line("cowrie.session.closed"))
    assert fingerprint(path) != seen
    assert fingerprint(path, nbytes=len(first)) == seen


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(CowrieInputError, match="missing.json"):
        read_events(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------------
# expand_paths
# ------------------------------------------------------------------------------------------------


def test_expand_paths_orders_rotated_files_by_date_and_the_live_file_last(tmp_path: Path) -> None:
    a, b = tmp_path / "logs" / "sensor-a", tmp_path / "logs" / "sensor-b" / "deep"
    for folder, names in (
        (a, ["cowrie.json", "cowrie.json.2026-11-02.gz", "cowrie.json.2026-10-31", "cowrie.json.2026-11-01.gz",
             "notes.json", "cowrie.log", "cowrie.json.2026-13-45"]),
        (b, ["cowrie.json.2026-11-10", "cowrie.json.gz"]),
    ):
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_bytes(b"")
    got = expand_paths([str(tmp_path / "logs"), str(a / "cowrie.json")])  # a duplicate is dropped
    assert [p.relative_to(tmp_path.resolve()).as_posix() for p in got] == [
        "logs/sensor-a/cowrie.json.2026-10-31",
        "logs/sensor-a/cowrie.json.2026-11-01.gz",
        "logs/sensor-a/cowrie.json.2026-11-02.gz",
        "logs/sensor-a/cowrie.json",
        "logs/sensor-b/deep/cowrie.json.2026-11-10",
        "logs/sensor-b/deep/cowrie.json.gz",
    ]


def test_expand_paths_takes_explicit_json_files_and_globs(tmp_path: Path) -> None:
    for name in ("export.json", "dump.jsonl", "old.json.gz", "cowrie.json.2026-11-01", "cowrie.json", "readme.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in expand_paths([str(tmp_path / "export.json"), str(tmp_path / "dump.jsonl")])] == [
        "dump.jsonl", "export.json"
    ]
    assert [p.name for p in expand_paths([str(tmp_path / "*")])] == [
        "cowrie.json.2026-11-01", "dump.jsonl", "export.json", "old.json.gz", "cowrie.json"
    ]


@pytest.mark.parametrize(
    ("arg", "message"),
    [("nowhere/cowrie.json", "no such file or directory"), ("nowhere/*.json", "no file matches"),
     ("readme.txt", "not a Cowrie JSON log file name")],
)
def test_expand_paths_names_what_is_wrong(tmp_path: Path, arg: str, message: str) -> None:
    (tmp_path / "readme.txt").write_bytes(b"")
    with pytest.raises(CowrieInputError, match=message) as info:
        expand_paths([str(tmp_path / arg)])
    assert arg in str(info.value)


# ------------------------------------------------------------------------------------------------
# The demo log generator
# ------------------------------------------------------------------------------------------------

SMALL = {"sessions": 240, "days": 3, "sensors": 2, "start": date(2026, 11, 1)}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> cowrie_oracle.ExpectedSet:
    return cowrie_oracle.generate(tmp_path_factory.mktemp("demo"), seed=7, **SMALL)


def test_generator_is_deterministic(generated: cowrie_oracle.ExpectedSet, tmp_path: Path) -> None:
    again = demo_logs.generate(tmp_path / "again", seed=7, **SMALL)  # without the hook: the same files
    other = demo_logs.generate(tmp_path / "other", seed=8, **SMALL)
    names = [p.relative_to(generated.out_dir) for p in generated.files]
    assert names == [p.relative_to(again.out_dir) for p in again.files]
    assert all((generated.out_dir / n).read_bytes() == (again.out_dir / n).read_bytes() for n in names)
    assert any((generated.out_dir / n).read_bytes() != (other.out_dir / n).read_bytes() for n in names)


def test_generator_writes_daily_files_per_sensor(generated: cowrie_oracle.ExpectedSet) -> None:
    assert [p.relative_to(generated.out_dir).as_posix() for p in generated.files] == [
        f"{sensor}/{name}"
        for sensor in ("hp-fra1", "hp-nyc3")
        for name in ("cowrie.json.2026-11-01.gz", "cowrie.json.2026-11-02.gz", "cowrie.json")
    ]
    assert expand_paths([str(generated.out_dir)]) == [p.resolve() for p in generated.files]
    assert [is_gzip(p) for p in generated.files] == [True, True, False] * 2


def test_generated_facts_agree_with_what_the_reader_yields(generated: cowrie_oracle.ExpectedSet) -> None:
    events: dict[str, list[Event]] = defaultdict(list)
    files_of: dict[str, set[Path]] = defaultdict(set)
    for path in expand_paths([str(generated.out_dir)]):
        for item in read_all(path):
            assert isinstance(item, Event), item
            events[item.session_id].append(item)
            files_of[item.session_id].add(path)

    assert sum(map(len, events.values())) == generated.events
    assert len(events) == generated.sessions == len(generated.expected) == SMALL["sessions"]
    assert Counter(e.eventid for evs in events.values() for e in evs) == generated.eventid_counts
    for sid, facts in generated.expected.items():
        evs = events[sid]
        count = Counter(e.eventid for e in evs)
        connect = next(e for e in evs if e.eventid == "cowrie.session.connect")
        closed = [e.duration for e in evs if e.eventid == "cowrie.session.closed"]
        assert facts == {
            "src_ip": connect.src_ip,
            "sensor": connect.sensor,
            "protocol": connect.protocol,
            "first_ts": min(e.event_ts for e in evs),
            "last_ts": max(e.event_ts for e in evs),
            "event_count": len(evs),
            "login_attempts": count["cowrie.login.failed"] + count["cowrie.login.success"],
            "login_successes": count["cowrie.login.success"],
            "command_count": count["cowrie.command.input"],
            "download_count": count["cowrie.session.file_download"],
            "duration": closed[0] if closed else None,
            "client_version": next((e.client_version for e in evs if e.client_version), None),
            "hassh": next((e.hassh for e in evs if e.hassh), None),
        }, sid
    assert generated.distinct_ips == len({f["src_ip"] for f in generated.expected.values()})

    # The mix the brief asks for is really there.
    assert any(len(paths) == 2 for paths in files_of.values()), "no session crosses midnight"
    addresses = {f["src_ip"] for f in generated.expected.values()}
    assert any(":" in a for a in addresses), "no IPv6 attacker"
    assert {f["protocol"] for f in generated.expected.values()} == {"ssh", "telnet"}
    assert {"cowrie.client.size", "cowrie.log.closed", "cowrie.session.file_download"} <= set(generated.eventid_counts)
    assert max(Counter(f["src_ip"] for f in generated.expected.values()).values()) >= 10, "no repeat offender"


def test_generator_logs_some_ipv4_attackers_as_mapped_ipv6_and_includes_bogons(tmp_path: Path) -> None:
    result = cowrie_oracle.generate(tmp_path, seed=42, sessions=3000, days=2, sensors=1)
    text = "".join(gzip.open(p, "rt").read() if is_gzip(p) else p.read_text() for p in result.files)
    assert '"src_ip":"::ffff:' in text
    addresses = [ipaddress.ip_address(f["src_ip"]) for f in result.expected.values()]
    assert 200 <= len(set(addresses)) <= 400
    assert not any(a.version == 6 and a.ipv4_mapped for a in addresses)  # facts hold normalised IPs
    bogons = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "192.168.0.0/16", "100.64.0.0/10")]
    assert any(a in net for a in addresses for net in bogons if a.version == net.version)


def test_generate_large_writes_one_readable_file(tmp_path: Path) -> None:
    large = cowrie_large.generate_large(tmp_path / "cowrie.json", 1_500_000, seed=3)
    assert large.bytes == large.path.stat().st_size >= 1_500_000
    items = read_all(large.path)
    assert all(isinstance(e, Event) for e in items) and len(items) == large.events
    assert len({e.session_id for e in items if isinstance(e, Event)}) == large.sessions
    days = {e.event_ts.date() for e in items if isinstance(e, Event)}
    assert min(days) == date(2026, 11, 1) and len(days) == (max(days) - min(days)).days + 1
    stamps = [e.event_ts for e in items if isinstance(e, Event)]
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] < timedelta(days=len(days))


def test_large_file_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "out" / "cowrie.json"
    assert cowrie_large.main([str(path), "6M", "--seed", "3", "--start", "2025-12-31"]) == 0
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cowrie.json", "out"]  # no scratch left behind
    size = path.stat().st_size
    assert size >= 6 << 20 and capsys.readouterr().out.startswith(f"{path}: {size} bytes, ")
    days = {e.event_ts.date() for e in read_all(path) if isinstance(e, Event)}
    assert days == {date(2025, 12, 31), date(2026, 1, 1)}  # the next day of each copy, across a year
