"""Hostile input, property-based (hypothesis): attackers choose the bytes of Cowrie logs, and a
confused or malicious whois server the bytes of its answers.

* the Cowrie line parser, on any bytes: never raises; an Event only with storable text, each
  value exactly as written; otherwise a Reject with a known reason and storable text;
* attacker-chosen values (quotes, backslashes, NUL, tabs, newlines, lone surrogates, invalid
  UTF-8, ANSI escapes, Rich markup, 10 MB): stored exactly by a real ingest into PostgreSQL, or
  rejected with a recorded reason;
* the Team Cymru row parser, on any text: never raises, never a value that is not in the row,
  never a row tied to an IP that was not asked;
* IP normalisation: the reader, the Cymru client and SQL's ipintel.normalize_ip agree;
* no SQL in loader/ipintel is built by string formatting (a lint, itself tested).
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import ipaddress
import itertools
import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from ipintel import chunks, cowrie, ingest
from ipintel.cowrie import REJECT_REASONS, Event, Reject, parse_line
from ipintel.progress import Reporter
from ipintel.sources import cymru
from tests.fakes.cymru_server import format_row

LOADER = Path(__file__).resolve().parents[1] / "loader" / "ipintel"
TS = "2026-11-21T23:59:58.123456Z"
# Pieces attackers and broken sensors put in their strings, beside arbitrary characters.
PIECES = ["\x00", "\ud800", "\udfff", "\x1b[31m", "\x1b]0;title\x07", "[bold]", "[/]", "[link=x]", ":smile:", "\\",
          "\\\\", '"', "'", "\t", "\n", "\r\n", "\u2028", "\ufeff", "\x7f", "%s", "%(x)s", "{0}", "$1", "'; DROP TABLE x; --",
          "ТЕЛЕКОМ", "😀", "\u202e"]
hostile = st.lists(st.one_of(st.characters(), st.sampled_from(PIECES)), max_size=12).map("".join)
# What PostgreSQL text (and jsonb) can hold: no NUL, no lone surrogate.
storable = hostile.filter(lambda s: "\x00" not in s and not re.search("[\ud800-\udfff]", s))
FAST = settings(max_examples=300, deadline=None)


def unstorable_reasons(*values: object) -> set[str]:
    """The reject reasons the strings (keys and values, nested) in `values` call for."""
    reasons = set()
    pending = list(values)
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending += [*value, *value.values()]
        elif isinstance(value, list):
            pending += value
        elif isinstance(value, str):
            if "\x00" in value:
                reasons.add("nul_character")
            if re.search("[\ud800-\udfff]", value):
                reasons.add("invalid_utf8")
    return reasons


def encode(record: dict[str, Any], ascii_only: bool) -> bytes:
    """A line as a JSON writer would: \\u escapes for all non-ASCII, or raw UTF-8 (lone surrogates
    then become bytes that are not UTF-8, as a careless writer produces them)."""
    return json.dumps(record, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass") + b"\n"


def assert_storable(*texts: str | None) -> None:
    for text in texts:
        if text is not None:
            assert "\x00" not in text
            text.encode("utf-8")  # no lone surrogate


def assert_well_formed(item: Event | Reject | None) -> None:
    if isinstance(item, Reject):
        assert item.reason in REJECT_REASONS
        assert_storable(item.detail, item.excerpt)
        assert len(item.excerpt) <= cowrie.EXCERPT_CHARS
    elif isinstance(item, Event):
        assert_storable(*(v for v in item if isinstance(v, str)))
        assert item.event_ts.tzinfo is dt.UTC
        assert item.src_ip == str(ipaddress.ip_address(item.src_ip))
    else:
        assert item is None


# --------------------------------------------------------------------------------------------
# The Cowrie line parser
# --------------------------------------------------------------------------------------------
@FAST
@given(st.binary(max_size=3000))
@example(b'{"eventid":"x","session":"s","src_ip":"1.2.3.4","timestamp":"' + TS.encode() + b'"}' + b"]" * 5000)
@example(b"[" * 100_000)
@example(b'{"a":' * 100_000)
def test_any_bytes_give_an_event_a_reject_or_nothing_never_an_exception(raw: bytes) -> None:
    assert_well_formed(parse_line(raw, 7))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | hostile,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile, inner, max_size=4),
                           max_leaves=12)


@FAST
@given(st.dictionaries(st.sampled_from(["eventid", "session", "src_ip", "timestamp", "sensor", "username", "password",
                                        "input", "version", "hassh", "duration", "src_port", "dst_ip", "url"]) | hostile,
                       json_values, max_size=10), st.booleans())
def test_any_json_object_gives_an_event_or_a_reject(record: dict[str, Any], ascii_only: bool) -> None:
    assert_well_formed(parse_line(encode(record, ascii_only), 1))


EVENT_FIELDS = {
    "cowrie.login.failed": {"username": "username", "password": "password"},
    "cowrie.command.input": {"input": "command"},
    "cowrie.client.version": {"version": "client_version"},
    "cowrie.client.kex": {"hassh": "hassh"},
    "cowrie.session.file_download": {"url": "url", "shasum": "shasum"},
    "cowrie.session.connect": {"protocol": "protocol"},
}


@FAST
@given(eventid=st.sampled_from(sorted(EVENT_FIELDS)), session=hostile.filter(bool), sensor=hostile,
       values=st.lists(hostile, min_size=2, max_size=2), message=hostile, extra=st.dictionaries(hostile, hostile,
                                                                                               max_size=2),
       ascii_only=st.booleans())
@example(eventid="cowrie.client.kex", session="0", sensor="", values=["", ""], message="\ud800\udc00", extra={},
         ascii_only=True)  # an escaped surrogate pair is a valid character (found by hypothesis in CI)
@example(eventid="cowrie.client.kex", session="0", sensor="", values=["\ud800\udc00", ""], message="", extra={},
         ascii_only=False)  # the same two code points written raw are not UTF-8
def test_attacker_text_is_kept_exactly_or_the_line_rejected_with_its_reason(
        eventid: str, session: str, sensor: str, values: list[str], message: str, extra: dict[str, str],
        ascii_only: bool) -> None:
    fields = dict(zip(EVENT_FIELDS[eventid], values, strict=False))
    record = {**extra, "eventid": eventid, "session": session, "src_ip": "::ffff:203.0.113.9", "timestamp": TS,
              "sensor": sensor, "message": message, **fields}
    line = encode(record, ascii_only)
    # The text a JSON reader finds in the line: \u escapes of a surrogate pair (\ud800\udc00) are one
    # character (U+10000), only a lone surrogate stays one; raw UTF-8 is read as it was written.
    seen = json.loads(line) if ascii_only else record
    item = parse_line(line, 3)
    reasons = unstorable_reasons(seen)
    if reasons:
        assert isinstance(item, Reject) and item.reason in reasons and item.line_no == 3, item
        assert_well_formed(item)
        return
    assert isinstance(item, Event), item
    assert (item.eventid, item.session_id, item.sensor, item.src_ip) == (
        eventid, seen["session"], seen["sensor"], "203.0.113.9")
    for key, attribute in EVENT_FIELDS[eventid].items():
        assert getattr(item, attribute) == seen[key]


@FAST
@given(st.dictionaries(st.sampled_from(["eventid", "session", "src_ip", "timestamp", "sensor", "username", "password",
                                        "input", "version", "hassh", "duration", "src_port", "dst_ip", "url",
                                        "shasum", "dst_port", "protocol"]) | hostile,
                       json_values, max_size=10),
       st.sampled_from(sorted(EVENT_FIELDS)), st.booleans(), st.integers(min_value=0, max_value=2))
@example({"eventid": "cowrie.login.failed", "password": 1e300, "message": [[[]]]}, "cowrie.login.failed", True, 1)
def test_the_members_read_alone_decide_as_the_whole_document(record: dict[str, Any], eventid: str, ascii_only: bool,
                                                           duplicate: int) -> None:
    """parse_line decodes most lines into the members it reads (_Line), skipping the others: it
    must decide exactly as json's path, which builds the whole document (same Event, same Reject).
    Duplicate members: the last one counts, in both."""
    record = {"eventid": eventid, "session": "s1", "src_ip": "203.0.113.9", "timestamp": TS, **record}
    line = encode(record, ascii_only)
    if duplicate:  # the same member again, with another value, before the object ends
        member = sorted(record)[duplicate % len(record)]
        line = line[:-2] + b"," + json.dumps(member).encode() + b':"again"}\n'
    latest = cowrie.latest_plausible()
    assert parse_line(line, 4, latest) == cowrie._parse_line_json(line, 4, latest)


@FAST
@given(st.one_of(st.ip_addresses().map(str), st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
                 st.ip_addresses(v=6).map(lambda a: a.exploded.upper()), hostile,
                 st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4}){3}", fullmatch=True),
                 st.from_regex(r"fe80::[0-9a-f]{1,4}%[a-z0-9]{1,8}", fullmatch=True)))
@example("1.2.3.4 ")
@example("01.2.3.4")
@example("::1.2.3.4")
def test_src_ip_is_normalised_like_the_cymru_client_or_rejected(text: str) -> None:
    item = parse_line(encode({"eventid": "cowrie.login.failed", "session": "s1", "timestamp": TS, "src_ip": text},
                             True), 1)
    try:
        expected = cymru.normalise_ip(text) if text == text.strip() else None
    except ValueError:
        expected = None
    if expected is None:
        assert isinstance(item, Reject) and item.reason in {"invalid_ip", "missing_src_ip", "nul_character",
                                                              "invalid_utf8"}, item
    else:
        assert isinstance(item, Event) and item.src_ip == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.ip_addresses(), st.ip_addresses(v=4).map(lambda a: ipaddress.ip_address(f"::ffff:{a}")),
                          st.ip_addresses(v=4).map(lambda a: ipaddress.ip_address(f"::{a}"))),
                min_size=1, max_size=40))
def test_python_and_sql_normalise_ips_alike(conn: psycopg.Connection[Any],
                                            addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> None:
    texts = [str(a) for a in addresses]
    python = [cowrie._normalise_ip(t) for t in texts]
    assert python == [cymru.normalise_ip(t) for t in texts]
    rows = conn.execute("SELECT ipintel.normalize_ip(r::inet) = p::inet, host(ipintel.normalize_ip(r::inet)) "
                        "FROM unnest(%s::text[], %s::text[]) AS u(r, p)", (texts, python)).fetchall()
    assert all(same for same, _ in rows), list(zip(texts, python, rows, strict=True))


# A timestamp's forms: (how it is written, whether the COPY line carries it as written).
TIMESTAMP_FORMS = {
    "cowrie": (lambda m: m.isoformat() + "Z", True),  # utcnow().isoformat() + "Z": no fraction at .000000
    "utc offset": (lambda m: m.replace(tzinfo=dt.UTC).isoformat(), True),
    "milliseconds": (lambda m: m.isoformat(timespec="milliseconds") + "Z", False),
    "nanoseconds": (lambda m: m.isoformat(timespec="microseconds") + "999Z", False),  # Python truncates, PostgreSQL rounds
    "naive": (lambda m: m.isoformat(), False),  # read as UTC; PostgreSQL would read it in its session's zone
    "other zone": (lambda m: m.replace(tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45))).isoformat(), False),
    "basic": (lambda m: m.strftime("%Y%m%dT%H%M%S.%fZ"), False),
    "space separator": (lambda m: m.isoformat(sep=" ", timespec="microseconds") + "Z", False),
    "decimal comma": (lambda m: m.isoformat(timespec="microseconds").replace(".", ",") + "Z", False),
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.datetimes(min_value=dt.datetime(1990, 1, 2), max_value=dt.datetime(2026, 11, 1)),
       st.sampled_from(sorted(TIMESTAMP_FORMS)))
@example(dt.datetime(2026, 11, 1, 10, 0, 0), "cowrie")
def test_the_copy_line_gives_postgresql_the_instant_parsed(conn: psycopg.Connection[Any], moment: dt.datetime,
                                                          form: str) -> None:
    """The COPY line (an event's, and a session's first and last time) carries Cowrie's own
    timestamp text as written, and any other form from the parsed time: PostgreSQL reads the
    instant parse_line read, whatever its session's time zone."""
    write, as_written = TIMESTAMP_FORMS[form]
    text = write(moment)
    item = parse_line(encode({"eventid": "cowrie.session.closed", "session": "s1", "src_ip": "203.0.113.9",
                              "timestamp": text}, True), 1)
    assert isinstance(item, Event), item
    assert item.event_ts_text == (text if as_written else None)
    copied = chunks.copy_line(item).split("\t")[cowrie.EVENT_COLUMNS.index("event_ts")]
    # the loader stages the session (revision 0081): its first and last event's time, the same text
    sessions = chunks.ChunkSessions()
    sessions.add(item)
    first, last = sessions.copy_text().decode().split("\t")[3:5]
    assert first == last == copied
    conn.execute("SET TIME ZONE 'Asia/Kathmandu'")
    assert conn.execute("SELECT %s::timestamptz", (copied,)).fetchone() == (item.event_ts,), (text, copied)


# --------------------------------------------------------------------------------------------
# Round trip through a real ingest
# --------------------------------------------------------------------------------------------
counter = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sensor=storable, session=storable, protocol=hostile, version=hostile, hassh=hostile, ascii_only=st.booleans())
def test_hostile_session_facts_are_stored_exactly_or_their_line_rejected(
        db: str, tmp_path: Path, sensor: str, session: str, protocol: str, version: str, hassh: str,
        ascii_only: bool) -> None:
    session = f"{next(counter)}:{session}"  # unique per example: every example makes a new session
    base = {"session": session, "src_ip": "198.18.0.1", "sensor": sensor}
    lines = [
        {"eventid": "cowrie.session.connect", "timestamp": "2026-11-01T10:00:00Z", "protocol": protocol,
         "src_port": 40000, "dst_ip": "192.0.2.1", "dst_port": 22, **base},
        {"eventid": "cowrie.client.version", "timestamp": "2026-11-01T10:00:01Z", "version": version, **base},
        {"eventid": "cowrie.client.kex", "timestamp": "2026-11-01T10:00:02Z", "hassh": hassh, **base},
        {"eventid": "cowrie.session.closed", "timestamp": "2026-11-01T10:00:03Z", "duration": 3.0, **base},
    ]
    path = tmp_path / f"cowrie.json.{session.encode('utf-8').hex()[:40]}.{len(list(tmp_path.iterdir()))}.json"
    path.write_bytes(b"".join(encode(r, ascii_only) for r in lines))
    summary = ingest.ingest(db, [str(path)], reporter=Reporter(interactive=False))

    # What a JSON reader gets back: written as \u escapes, a high and a low surrogate in a row are
    # one character (U+10000 and up), which is storable; written raw, any surrogate is not UTF-8.
    read = {n: json.loads(json.dumps(v)) if ascii_only else v for n, v in ((1, protocol), (2, version), (3, hassh))}
    expected_rejects = {n: unstorable_reasons(value) for n, value in read.items()}
    with psycopg.connect(db) as conn:
        rejects = dict(conn.execute("SELECT line_no, reason FROM ipintel.ingest_rejects WHERE path = %s",
                                    (str(path),)).fetchall())
        row = conn.execute("SELECT sensor, protocol, client_version, hassh, event_count FROM ipintel.session_summaries "
                           "WHERE session_id = %s", (session,)).fetchone()
    assert summary.rejects == len(rejects) == sum(bool(r) for r in expected_rejects.values())
    for line_no, reasons in expected_rejects.items():
        assert (rejects.get(line_no) in reasons) if reasons else line_no not in rejects
    assert row == (sensor, *(None if expected_rejects[n] else read[n] for n in (1, 2, 3)),
                   4 - len(rejects)), row


TEN_MB = 10 << 20


def test_ten_megabyte_lines_are_stored_whole_or_rejected_with_a_short_excerpt(db: str, tmp_path: Path) -> None:
    huge = ("\x1b[1m[bold]\"quoted\" \\back\tslash\n" * (TEN_MB // 32))[:TEN_MB]
    good = {"eventid": "cowrie.client.version", "session": "huge-1", "src_ip": "198.18.0.2", "timestamp": TS,
            "sensor": "s", "version": huge}
    log = tmp_path / "cowrie.json.2026-11-21"
    log.write_bytes(encode(good, True)
                    + b'{"eventid": "' + b"x" * TEN_MB + b"\n"  # not JSON: never closed
                    + b'{"eventid":"cowrie.client.version","version":"' + b"\xff" * TEN_MB + b'"}\n'
                    + encode({**good, "session": "huge-2", "version": "after the huge ones"}, False))
    summary = ingest.ingest(db, [str(log)], reporter=Reporter(interactive=False))
    assert (summary.events, summary.rejects) == (2, 2)
    with psycopg.connect(db) as conn:
        stored = conn.execute("SELECT length(client_version), md5(client_version) FROM ipintel.session_summaries "
                              "WHERE session_id = 'huge-1'").fetchone()
        rejects = conn.execute("SELECT line_no, reason, length(excerpt), length(detail) FROM ipintel.ingest_rejects "
                               "ORDER BY line_no").fetchall()
        after = conn.execute("SELECT client_version FROM ipintel.session_summaries WHERE session_id = 'huge-2'").fetchone()
    assert stored == (len(huge), hashlib.md5(huge.encode()).hexdigest())
    assert [(n, reason) for n, reason, _, _ in rejects] == [(2, "malformed_json"), (3, "invalid_utf8")]
    assert all(excerpt <= cowrie.EXCERPT_CHARS and detail < 500 for _, _, excerpt, detail in rejects)
    assert after == ("after the huge ones",)


# --------------------------------------------------------------------------------------------
# The Team Cymru row parser
# --------------------------------------------------------------------------------------------
@FAST
@given(st.text(max_size=300) | st.lists(st.one_of(hostile, st.just("|"), st.just("NA")), max_size=10).map("".join))
@example("15169   | 74.125.225.229   | 10.0.0.0/8          | US | arin     | 2007-03-13 | GOOGLE, US")
@example("99999999999 | 1.2.3.4 | 1.2.3.0/24 | US | arin | 2007-03-13 | X")
@example("1 | 1.2.3.4 | 1.2.3.0/24 | US | arin | 2007-02-30 | X")
def test_any_text_is_a_well_formed_row_or_none(line: str) -> None:
    parsed = cymru._parse_row(line)
    if parsed is None:
        return
    ip, origin = parsed
    assert ip == cymru.normalise_ip(ip)
    assert origin.asn is None or 0 <= origin.asn <= 2**32 - 1
    if origin.prefix is not None:
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(origin.prefix)
    assert origin.registered_country is None or re.fullmatch("[A-Z]{2}", origin.registered_country)
    for text in (origin.registry, origin.as_name):
        assert text is None or (text == text.strip() and text and "\n" not in text)


one_line = hostile.map(lambda s: re.sub(r"[\r\n\u2028\x85\x0b\x0c\x1c-\x1e]", " ", s))


@st.composite
def rows(draw: st.DrawFn) -> tuple[str, tuple[Any, ...]]:
    """A row as the server formats it, and the values it stands for. The server answers about the
    addresses it was asked, which ipintel normalises first: never an IPv4-mapped IPv6 address (a
    row naming one, with an IPv6 prefix, is refused, which the properties above allow)."""
    address = draw(st.ip_addresses().filter(lambda a: a.version == 4 or a.ipv4_mapped is None))
    ip = str(address)
    routed = draw(st.booleans())
    asn = draw(st.integers(0, 2**32 - 1)) if routed else None
    prefix = str(ipaddress.ip_network(f"{ip}/{draw(st.integers(8 if address.version == 4 else 16, address.max_prefixlen))}",
                                      strict=False)) if routed else None
    cc = draw(st.sampled_from(["US", "de", "", "EU", "X1", "ZZZ"]) | one_line.filter(lambda s: "|" not in s))
    registry = draw(st.sampled_from(["arin", "ripencc", "other", ""]) | one_line.filter(lambda s: "|" not in s))
    allocated = draw(st.dates(dt.date(1980, 1, 1), dt.date(2030, 12, 31)).map(str) | st.just(""))
    name = draw(one_line) if routed else None
    line = format_row(asn, ip, prefix, cc, registry, allocated, name)
    cc = cc.strip()
    expected = (asn, prefix, cc.upper() if re.fullmatch("[A-Za-z]{2}", cc) else None, registry.strip() or None,
                dt.date.fromisoformat(allocated) if allocated else None,
                None if name is None or name.strip() in ("", "NA") else name.strip())
    return line, (cymru.normalise_ip(ip), expected)


@FAST
@given(rows())
def test_a_formatted_row_reads_back_as_its_values(row: tuple[str, tuple[Any, ...]]) -> None:
    line, (ip, expected) = row
    assume("\x00" not in line)
    parsed = cymru._parse_row(line)
    assert parsed is not None, line
    got_ip, origin = parsed
    assert got_ip == ip
    assert (origin.asn, origin.prefix, origin.registered_country, origin.registry, origin.allocated,
            origin.as_name) == expected


@FAST
@given(st.lists(rows(), min_size=1, max_size=8), st.lists(rows(), max_size=4), st.lists(one_line, max_size=6),
       st.randoms())
def test_a_bulk_answer_never_ties_a_row_to_an_ip_that_was_not_asked(
        asked: list[tuple[str, Any]], others: list[tuple[str, Any]], garbage: list[str], rnd: Any) -> None:
    requested = list(dict.fromkeys(ip for _, (ip, _) in asked))
    foreign = [(line, ip) for line, (ip, _) in others if ip not in requested]
    lines = [line for line, _ in asked] + [line for line, _ in foreign] + garbage
    rnd.shuffle(lines)
    parsed = cymru.parse_bulk_response(["Bulk mode; whois.cymru.com [2026-11-21 10:00:00 +0000]", *lines], requested)
    assert set(parsed.results) <= set(requested)
    for ip, result in parsed.results.items():
        wanted = {expected for _, (row_ip, expected) in asked if row_ip == ip}
        got = {(o.asn, o.prefix, o.registered_country, o.registry, o.allocated, o.as_name) for o in result.origins}
        assert got <= wanted and result.current in result.origins


# --------------------------------------------------------------------------------------------
# No SQL built by string formatting
# --------------------------------------------------------------------------------------------
# A statement's first words (after comment lines): "lock timeout: ..." is a message, "LOCK TABLE t" SQL.
SQL_START = re.compile(
    r"^\s*(?:--[^\n]*\n\s*)*(?:SELECT\s|INSERT\s+INTO\s|UPDATE\s+\S+\s+SET\s|DELETE\s+FROM\s|"
    r"COPY\s+\S+.*\s(?:FROM|TO)\s|(?:CREATE|ALTER|DROP)\s+(?:OR\s+REPLACE\s+)?(?:UNLOGGED\s+)?"
    r"(?:TABLE|DATABASE|ROLE|USER|INDEX|FUNCTION|PROCEDURE|SCHEMA|VIEW|EXTENSION|SEQUENCE|TYPE|TRIGGER)\s|"
    r"WITH\s+\S+\s+AS\s|SET\s+(?:LOCAL\s+|SESSION\s+)?\S+\s*(?:=|TO\s)|LOCK\s+TABLE\s|TRUNCATE\s|"
    r"(?:GRANT|REVOKE)\s|CALL\s+\S+\(|VALUES\s*\()", re.IGNORECASE | re.DOTALL)
QUERY_CALLS = {"execute": 0, "executemany": 0, "copy": 0, "stream": 0, "query_one": 1, "query_all": 1}


def _literal_text(node: ast.AST) -> str | None:
    """The text of a string literal or an f-string (placeholders as {}), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _is_sql_composition(node: ast.AST) -> bool:
    """psycopg.sql.SQL(...).format(...): identifiers and literals are quoted by psycopg."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, (ast.Attribute, ast.Name))
            and (getattr(node.func.value.func, "attr", None) or getattr(node.func.value.func, "id", None)) == "SQL")


def formatted_sql(source: str) -> list[str]:
    """Where `source` builds SQL by string formatting: an f-string, `%`, `+` or str.format() as the
    query of execute/copy/query_one/..., or applied to a literal that reads as SQL."""
    found = []
    for node in ast.walk(ast.parse(source)):
        built = None
        if isinstance(node, ast.JoinedStr):
            built = node
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
            built = node.left
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
              and not _is_sql_composition(node)):
            built = node.func.value
        text = _literal_text(built) if built is not None else None
        if text is not None and SQL_START.match(text):
            found.append(f"line {node.lineno}: SQL built by string formatting")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_CALLS:
            index = QUERY_CALLS[node.func.attr]
            if len(node.args) > index:
                query = node.args[index]
                if isinstance(query, ast.JoinedStr) or (isinstance(query, ast.BinOp)
                                                        and isinstance(query.op, (ast.Mod, ast.Add))) or (
                        isinstance(query, ast.Call) and isinstance(query.func, ast.Attribute)
                        and query.func.attr == "format" and not _is_sql_composition(query)):
                    found.append(f"line {node.lineno}: {node.func.attr}() of a query built by string formatting")
    return found


@pytest.mark.parametrize("code", [
    'cur.execute(f"SELECT * FROM t WHERE ip = \'{ip}\'")',
    'conn.execute("SELECT * FROM t WHERE ip = \'%s\'" % ip)',
    'conn.execute("SELECT * FROM t WHERE ip = \'" + ip + "\'")',
    'conn.execute("SELECT * FROM t WHERE ip = \'{}\'".format(ip))',
    'q = f"DELETE FROM t WHERE id = {n}"\nconn.execute(q)',
    'q = """\n-- why\nupdate t set v = %s""" % v',
    'db.query_one(conn, "SELECT %s" % x)',
    'cur.copy(f"COPY {table} FROM STDIN")',
])
def test_the_lint_finds_sql_built_from_input(code: str) -> None:
    assert formatted_sql(code), code


@pytest.mark.parametrize("code", [
    'conn.execute(db.query("tier_counts"), {"ip": ip})',
    'conn.execute(sql.SQL(db.query("create_database")).format(dbname=sql.Identifier(name)))',
    'cur.execute(query, params)',
    'message = f"{n} rows selected"',  # messages that name SQL words are not statements
    'line = f"lock timeout{where}: set lock_timeout higher; select fewer rows"',
    'sent = f"-- From {origin}: {name}\\n{statement}"',
])
def test_the_lint_leaves_parameters_and_composition_alone(code: str) -> None:
    assert not formatted_sql(code), code


def test_no_sql_in_the_loader_is_built_by_string_formatting() -> None:
    files = sorted(LOADER.rglob("*.py"))
    assert len(files) > 10
    found = {str(f.relative_to(LOADER)): problems for f in files if (problems := formatted_sql(f.read_text()))}
    assert found == {}
