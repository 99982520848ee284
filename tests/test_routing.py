"""Reading dated routing tables (ipintel.routing), no database: every format, rejects with their
line numbers, compression, names and dates, MRT through pyasn, the generators of
bench/routing_data.py and the demo's synthetic set. Property tests (hypothesis): no input
crashes a reader, every line is a row, a reject or a line with nothing to load, and what the
writers write reads back as it was."""

from __future__ import annotations

import bz2
import gzip
import io
import ipaddress
import shutil
import struct
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bench import routing_data as rd
from ipintel import demo_logs, routing
from ipintel.routing import PrefixOrigin, Reject

needs_pyasn = pytest.mark.skipif(not routing.pyasn_available(),
                                 reason="MRT RIB dumps are read with pyasn: pip install -e '.[mrt]'")


def parse(fmt: str, text: str | bytes) -> list[PrefixOrigin | Reject]:
    data = text.encode() if isinstance(text, str) else text
    return list(routing.parse_lines(fmt, io.BytesIO(data)))


def rows(items: list[PrefixOrigin | Reject]) -> list[tuple[int, str, int]]:
    return [tuple(i) for i in items if isinstance(i, PrefixOrigin)]


def rejects(items: list[PrefixOrigin | Reject]) -> list[tuple[int, str]]:
    return [(i.line_no, i.reason) for i in items if isinstance(i, Reject)]


# --------------------------------------------------------------------------------------------
# CAIDA pfx2as
# --------------------------------------------------------------------------------------------

PFX2AS = (
    "1.0.0.0\t24\t13335\n"
    "1.0.4.0\t22\t38803_56203\n"  # two origins (MOAS)
    "8.8.8.0\t24\t15169,36040\n"  # an AS set
    "2001:db8::\t32\t6939_64496,64497\n"  # IPv6; an origin and an AS set
    "2001:0DB8:1::\t48\t4200000000\n"  # written long and in capitals: normalised
    "9.9.9.0\t24\t19281_19281\n"  # the same origin twice: one row
    "0.0.0.0\t0\t3356\n"  # the default route: no row, no reject
    "\n"
)


def test_pfx2as_gives_one_row_per_origin() -> None:
    assert rows(parse("pfx2as", PFX2AS)) == [
        (1, "1.0.0.0/24", 13335),
        (2, "1.0.4.0/22", 38803), (2, "1.0.4.0/22", 56203),
        (3, "8.8.8.0/24", 15169), (3, "8.8.8.0/24", 36040),
        (4, "2001:db8::/32", 6939), (4, "2001:db8::/32", 64496), (4, "2001:db8::/32", 64497),
        (5, "2001:db8:1::/48", 4200000000),
        (6, "9.9.9.0/24", 19281),
    ]
    assert rejects(parse("pfx2as", PFX2AS)) == []


@pytest.mark.parametrize(("line", "reason"), [
    ("10.0.0.1\t24\t1", "prefix has host bits set"),
    ("2001:db8::1\t32\t1", "prefix has host bits set"),
    ("1.2.3.0\t33\t1", "prefix length is out of range"),
    ("2001:db8::\t129\t1", "prefix length is out of range"),
    ("1.2.3.0\t+24\t1", "prefix length is not a number"),
    ("01.2.3.0\t24\t1", "bad address"),  # a leading zero: octal to some readers
    ("1.2.3\t24\t1", "bad address"),
    ("fe80::%eth0\t64\t1", "bad address"),
    ("1.2.3.0/24\t24\t1", "bad address"),
    ("::ffff:1.2.3.0\t120\t1", "IPv4-mapped IPv6 prefix"),
    ("::\t8\t1", "IPv4-mapped IPv6 prefix"),  # covers ::ffff:0:0/96
    ("1.2.3.0\t24\t0", "AS 0 is never an origin"),
    ("1.2.3.0\t24\t4294967296", "ASN is out of range"),
    ("1.2.3.0\t24\tAS13335", "ASN is not a number"),
    ("1.2.3.0\t24\t1__2", "ASN is not a number"),
    ("1.2.3.0\t24\t1,", "ASN is not a number"),
    ("1.2.3.0\t24\t\u0661\u0662", "ASN is not a number"),  # Arabic-Indic digits: int() takes them
    ("1.2.3.0\t24", "not 3 tab-separated fields"),
    ("1.2.3.0 24 13335", "not 3 tab-separated fields"),
    ("1.2.3.0\t24\t1\textra", "not 3 tab-separated fields"),
])
def test_pfx2as_rejects(line: str, reason: str) -> None:
    assert rejects(parse("pfx2as", f"1.0.0.0\t24\t13335\n{line}\n")) == [(2, reason)]


def test_the_largest_asn_is_read() -> None:
    assert rows(parse("pfx2as", "1.2.3.0\t24\t4294967295\n")) == [(1, "1.2.3.0/24", 4294967295)]


def test_a_reject_does_not_stop_the_file_and_keeps_its_line_number() -> None:
    items = parse("pfx2as", b"1.0.0.0\t24\t1\nbad\n\n1.0.1.0\t24\t\xff\xfe\n1.0.2.0\t24\t2\r\n1.0.3.0\t24\t3")
    assert rows(items) == [(1, "1.0.0.0/24", 1), (5, "1.0.2.0/24", 2), (6, "1.0.3.0/24", 3)]
    assert rejects(items) == [(2, "not 3 tab-separated fields"), (4, "not UTF-8")]


def test_an_overlong_line_is_rejected_without_being_read_whole() -> None:
    huge = b"1.0.0.0\t24\t" + b"1" * (routing.MAX_LINE_BYTES * 3) + b"\n"
    items = parse("pfx2as", huge + b"1.0.1.0\t24\t5\n")
    assert rejects(items) == [(1, "line longer than 65,536 bytes")]
    assert rows(items) == [(2, "1.0.1.0/24", 5)]
    assert len(items[0].excerpt) == routing.EXCERPT_CHARS


def test_excerpts_escape_what_a_terminal_or_a_log_would_interpret() -> None:
    [reject] = parse("pfx2as", b"\x1b[2J\x00 evil\xe2\x80\xae\xff\tline\r\n")
    assert isinstance(reject, Reject)
    assert reject.excerpt == "\\x1b[2J\\x00 evil\\u202e\\xff\\tline"
    assert all(ch.isprintable() for ch in reject.excerpt)
    assert len(routing.excerpt(b"\x01" * 500)) <= routing.EXCERPT_CHARS
    assert routing.excerpt(b"\x01" * 500) == "\\x01" * 50  # never a cut escape


# --------------------------------------------------------------------------------------------
# pyasn IPASN DAT
# --------------------------------------------------------------------------------------------

IPASN = (
    "; IP-ASN32-DAT file\n; Original source: rib.20180506.1200.bz2\n; Prefixes-v4   : 2\n; \n"
    "1.0.0.0/24\t13335\n"
    "2001:db8::/32\t6939\n"
    "1.0.4.0/22\t38803\n"
)


def test_ipasn_skips_comments_and_reads_both_families() -> None:
    items = parse("ipasn", IPASN)
    assert rows(items) == [(5, "1.0.0.0/24", 13335), (6, "2001:db8::/32", 6939), (7, "1.0.4.0/22", 38803)]
    assert rejects(items) == []


@pytest.mark.parametrize(("line", "reason"), [
    ("1.0.0.0\t13335", "prefix without /length"),
    ("1.0.0.0/24\t13335\tx", "not 2 tab-separated fields"),
    ("1.0.0.1/24\t13335", "prefix has host bits set"),
    ("1.0.0.0/24\t{1, 2}", "ASN is not a number"),  # pyasn's debug output of an AS set
])
def test_ipasn_rejects(line: str, reason: str) -> None:
    assert rejects(parse("ipasn", f"; header\n{line}\n")) == [(2, reason)]


# --------------------------------------------------------------------------------------------
# iptoasn TSV
# --------------------------------------------------------------------------------------------

IPTOASN = (
    "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n"
    "1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n"
    "1.0.4.0\t1.0.6.255\t38803\tAU\tGTELECOM-AUSTRALIA Gtelecom-AUSTRALIA\n"  # a /23 and a /24
    "2001:db8::\t2001:db8:2:ffff:ffff:ffff:ffff:ffff\t6939\tUS\tHURRICANE\n"  # a /47 and a /48
    "16777216\t16777471\t13335\tUS\tthe -u32 files: IPv4 as a number\n"
)


def test_iptoasn_splits_ranges_into_cidrs_and_skips_unrouted() -> None:
    items = parse("iptoasn", IPTOASN)
    assert rows(items) == [
        (1, "1.0.0.0/24", 13335),
        (3, "1.0.4.0/23", 38803), (3, "1.0.6.0/24", 38803),
        (4, "2001:db8::/47", 6939), (4, "2001:db8:2::/48", 6939),
        (5, "1.0.0.0/24", 13335),
    ]
    assert rejects(items) == []


@pytest.mark.parametrize(("line", "reason"), [
    ("1.0.0.0\t1.0.0.255\t13335\tUS", "not 5 tab-separated fields"),
    ("1.0.0.0\t2001:db8::\t13335\tUS\tx", "range ends of different families"),
    ("1.0.1.0\t1.0.0.255\t13335\tUS\tx", "range ends before it starts"),
    ("::ffff:1.0.0.0\t::ffff:1.0.0.255\t13335\tUS\tx", "IPv4-mapped IPv6 address"),
    ("1.0.0.0\t1.0.0.255\t-1\tUS\tx", "ASN is not a number"),
    ("1.0.0.0\t1.0.0.256\t1\tUS\tx", "bad address"),
    ("4294967296\t4294967296\t1\tUS\tx", "address is out of range"),
])
def test_iptoasn_rejects(line: str, reason: str) -> None:
    assert rejects(parse("iptoasn", f"{line}\n")) == [(1, reason)]


# --------------------------------------------------------------------------------------------
# Files: compression, formats and dates from names, datasets
# --------------------------------------------------------------------------------------------


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    elif path.name.endswith(".bz2"):
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2"])
def test_plain_gzip_and_bzip2_read_alike(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"routeviews-rv2-20180506-1200.pfx2as{suffix}", PFX2AS)
    snapshot = routing.describe(path)
    assert (snapshot.format, snapshot.dataset, snapshot.taken_on) == ("pfx2as", "routeviews_rv2", date(2018, 5, 6))
    assert list(routing.read(snapshot)) == parse("pfx2as", PFX2AS)


@pytest.mark.parametrize(("name", "fmt", "dataset", "day"), [
    ("routeviews-rv2-20180506-1200.pfx2as.gz", "pfx2as", "routeviews_rv2", date(2018, 5, 6)),
    ("routeviews-rv6-20180506-1200.pfx2as.gz", "pfx2as", "routeviews_rv6", date(2018, 5, 6)),
    ("routeviews-20260101-1200.pfx2as.gz", "pfx2as", "routeviews", date(2026, 1, 1)),
    ("ipasn_20180506.dat.gz", "ipasn", "pyasn", date(2018, 5, 6)),
    ("ipasn_20180506.dat", "ipasn", "pyasn", date(2018, 5, 6)),
    ("ip2asn-v4-2024-05-01.tsv.gz", "iptoasn", "iptoasn_v4", date(2024, 5, 1)),
    ("ip2asn-combined.20240501.tsv", "iptoasn", "iptoasn", date(2024, 5, 1)),
])
def test_format_dataset_and_date_from_the_name(tmp_path: Path, name: str, fmt: str, dataset: str, day: date) -> None:
    text = {"pfx2as": PFX2AS, "ipasn": IPASN, "iptoasn": IPTOASN}[fmt]
    assert routing.describe(write(tmp_path / name, text)) == routing.SnapshotFile(tmp_path / name, fmt, dataset, day)


@pytest.mark.parametrize(("name", "dataset"), [("ip2asn-v4.tsv.gz", "iptoasn_v4"), ("ip2asn-v6.tsv", "iptoasn_v6"),
                                               ("ip2asn-v4-u32.tsv", "iptoasn_v4"), ("ip2asn-combined.tsv", "iptoasn")])
def test_iptoasn_files_carry_no_date_and_need_one(tmp_path: Path, name: str, dataset: str) -> None:
    path = write(tmp_path / name, IPTOASN)
    with pytest.raises(routing.RoutingInputError, match=r"no date in the file name .*--date YYYY-MM-DD"):
        routing.describe(path)
    assert routing.describe(path, taken_on=date(2024, 5, 1)).dataset == dataset


@pytest.mark.parametrize(("text", "fmt"), [(PFX2AS, "pfx2as"), (IPASN, "ipasn"), (IPTOASN, "iptoasn"),
                                           ("1.0.0.0/24\t13335\n", "ipasn")])
def test_format_from_the_first_line_when_the_name_does_not_say(tmp_path: Path, text: str, fmt: str) -> None:
    assert routing.describe(write(tmp_path / "table-20200101.txt.gz", text)).format == fmt


def test_options_win_over_the_name(tmp_path: Path) -> None:
    path = write(tmp_path / "routeviews-rv2-20180506-1200.pfx2as", "1.0.0.0/24\t13335\n")
    snapshot = routing.describe(path, fmt="ipasn", taken_on=date(2018, 5, 7), dataset="mine")
    assert (snapshot.format, snapshot.taken_on, snapshot.dataset) == ("ipasn", date(2018, 5, 7), "mine")
    assert routing.describe(path, fmt="ipasn").dataset == "pyasn"  # the name's dataset is for its own format


def test_the_date_in_a_name_must_be_a_real_one() -> None:
    assert routing.date_from_name("routeviews-rv2-20181399-1200.pfx2as.gz") is None
    assert routing.date_from_name("x-20181399-20180506.gz") == date(2018, 5, 6)
    assert routing.date_from_name("rib.20180506.1200.bz2") == date(2018, 5, 6)
    assert routing.date_from_name("ipasn_201805061200.dat") is None  # twelve digits are no date
    assert routing.date_from_name("ip2asn-v4.tsv") is None


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing-20200101.pfx2as", None, "no such file"),
    ("folder", "dir", "is a folder; name the files"),
    ("table-20200101.txt", "hello world\n", "cannot tell its format from its name or its first line; give it "
                                            "with --format"),
    ("routeviews-rv2-20200101-1200.pfx2as.gz", b"plain text, not gzip\n", "cannot be read"),
    ("updates.20200101.1200.bz2", b"", "MRT update files hold changes, not a table"),
])
def test_files_that_cannot_be_loaded_are_found_before_loading(tmp_path: Path, name: str, content: str | bytes | None,
                                                              message: str) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        write(path, content)
    with pytest.raises(routing.RoutingInputError, match=message):
        routing.describe(path)


def test_a_file_cut_short_fails_while_it_is_read(tmp_path: Path) -> None:
    whole = gzip.compress(("1.0.0.0\t24\t13335\n" * 200_000).encode())
    path = tmp_path / "routeviews-rv2-20200101-1200.pfx2as.gz"
    path.write_bytes(whole[: len(whole) // 2])
    snapshot = routing.describe(path)  # its head reads well
    with pytest.raises(routing.RoutingFileError, match="cannot be read to its end"):
        list(routing.read(snapshot))


# --------------------------------------------------------------------------------------------
# MRT RIB dumps through pyasn
# --------------------------------------------------------------------------------------------

V4 = ipaddress.IPv4Address
RIB_ENTRIES: list[tuple[rd.Prefix, list[rd.AsPath]]] = [
    ((4, int(V4("1.0.0.0")), 24), [[3356, 13335], [174, 13335]]),  # two peers, one origin
    ((4, int(V4("1.0.4.0")), 22), [[3356, 38803], [174, 56203]]),  # two peers, two origins (MOAS)
    ((4, int(V4("8.8.8.0")), 24), [[3356, [15169, 36040]]]),  # ends in an AS set
    ((4, int(V4("9.9.9.0")), 24), [[3356, 19281, 64512]]),  # a private ASN last: pyasn takes the one before
    ((4, int(V4("10.0.0.0")), 8), [[]]),  # only the collector's own route: no origin
    ((6, int(ipaddress.IPv6Address("2001:db8::")), 32), [[6939, 64496]]),
    ((4, 0, 0), [[3356, 1]]),  # the default route: no row
]


@needs_pyasn
def test_mrt_rib_gives_every_origin_any_peer_saw(tmp_path: Path) -> None:
    path = tmp_path / "rib.20260101.1200.bz2"
    path.write_bytes(bz2.compress(rd.mrt_rib(RIB_ENTRIES)))
    snapshot = routing.describe(path)
    assert (snapshot.format, snapshot.dataset, snapshot.taken_on) == ("mrt", "mrt", date(2026, 1, 1))
    items = list(routing.read(snapshot))
    assert rows(items) == [
        (2, "1.0.0.0/24", 13335),
        (3, "1.0.4.0/22", 38803), (3, "1.0.4.0/22", 56203),
        (4, "8.8.8.0/24", 15169), (4, "8.8.8.0/24", 36040),
        (5, "9.9.9.0/24", 19281),
        (7, "2001:db8::/32", 6939),  # 64496 is reserved for documentation: pyasn skips it
    ]
    assert rejects(items) == [(6, "no origin AS in any RIB entry")]


@needs_pyasn
def test_mrt_agrees_with_pyasns_own_converter_on_single_origins(tmp_path: Path) -> None:
    from pyasn import mrtx

    table = rd.generate_table(v4=300, v6=60, seed=5)
    entries = [(p, [[3356, origins[0][0]]]) for p, origins in table.items()]
    path = tmp_path / "rib.20260101.1200.bz2"
    path.write_bytes(bz2.compress(rd.mrt_rib(entries)))
    theirs = mrtx.parse_mrt_file(str(path))
    ours = {(r.prefix, r.asn) for r in routing.read(routing.describe(path)) if isinstance(r, PrefixOrigin)}
    expected = {(str(ipaddress.ip_network(p)), asn) for p, asn in theirs.items() if not mrtx.is_asn_bogus(asn)}
    assert ours == expected and len(ours) > 300


@needs_pyasn
def test_mrt_damage(tmp_path: Path) -> None:
    rib = rd.mrt_rib(RIB_ENTRIES[:3])
    path = tmp_path / "rib.20260101.1200"
    path.write_bytes(rib[:-5])  # the last record cut short
    with pytest.raises(routing.RoutingFileError, match="MRT record 4 is cut short"):
        list(routing.read(routing.describe(path)))
    # A record of a type that is not a unicast RIB (here BGP4MP, 16) is a reject; the rest loads.
    path.write_bytes(struct.pack(">IHHI", 0, 16, 4, 3) + b"abc" + rib)
    items = list(routing.read(routing.describe(path, fmt="mrt")))
    assert rejects(items) == [(1, "not a unicast RIB record")]
    assert len(rows(items)) == 5


@needs_pyasn
def test_mrt_is_recognised_by_content_and_needs_pyasn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "collector-20260101.gz"
    path.write_bytes(gzip.compress(rd.mrt_rib(RIB_ENTRIES)))
    assert routing.describe(path).format == "mrt"
    monkeypatch.setattr(routing, "pyasn_available", lambda: False)
    with pytest.raises(routing.RoutingInputError, match=r"read with pyasn, which is not installed: "
                                                         r"pip install 'ipintel\[mrt\]'"):
        routing.describe(path)


# --------------------------------------------------------------------------------------------
# Properties (hypothesis)
# --------------------------------------------------------------------------------------------

LINE_CHARS = st.sampled_from(list("0123456789abcdefABCDEF.:/_,;%\t -+") + ["\x00", "\u0661", "\u202e", "\r"])
LINES = st.lists(st.one_of(st.text(LINE_CHARS, max_size=60), st.text(max_size=30)), max_size=30)


def nothing_to_load(fmt: str, line: bytes) -> bool:
    """A line a reader may skip without a reject: blank, a comment, a default route, not routed."""
    fields = line.strip().split(b"\t")
    if not line.strip() or (fmt == "ipasn" and line.strip().startswith(b";")):
        return True
    if fmt == "pfx2as" and len(fields) == 3:
        return fields[1].lstrip(b"0") == b""
    if fmt == "ipasn" and len(fields) == 2:
        return fields[0].partition(b"/")[2].lstrip(b"0") == b""
    if fmt == "iptoasn" and len(fields) == 5:
        return fields[2].lstrip(b"0") == b"" or fields[0] in (b"0.0.0.0", b"::", b"0")
    return False


def check_every_line_is_accounted_for(fmt: str, data: bytes) -> None:
    items = list(routing.parse_lines(fmt, io.BytesIO(data)))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    with_rows = {i.line_no for i in items if isinstance(i, PrefixOrigin)}
    rejected = [i.line_no for i in items if isinstance(i, Reject)]
    assert len(rejected) == len(set(rejected)), "a line rejected twice"
    assert not with_rows & set(rejected), "a line both loaded and rejected"
    for n, line in enumerate(lines, 1):
        if n not in with_rows and n not in rejected:
            assert nothing_to_load(fmt, line), (n, line)
    for item in items:
        assert 1 <= item.line_no <= len(lines)
        if isinstance(item, Reject):
            assert len(item.excerpt) <= routing.EXCERPT_CHARS and item.excerpt.isprintable()
        else:
            net = ipaddress.ip_network(item.prefix)  # strict: no host bits
            assert net.prefixlen > 0 and 1 <= item.asn <= routing.MAX_ASN


@pytest.mark.parametrize("fmt", ["pfx2as", "ipasn", "iptoasn"])
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_a_reader(fmt: str, data: bytes) -> None:
    check_every_line_is_accounted_for(fmt, data)


@pytest.mark.parametrize("fmt", ["pfx2as", "ipasn", "iptoasn"])
@settings(max_examples=300)
@given(lines=LINES)
def test_arbitrary_lines_never_crash_a_reader(fmt: str, lines: list[str]) -> None:
    check_every_line_is_accounted_for(fmt, "".join(f"{line}\n" for line in lines).encode("utf-8", "surrogatepass"))


@needs_pyasn
@settings(max_examples=200)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_mrt_reader(data: bytes) -> None:
    try:
        items = list(routing.parse_mrt(io.BytesIO(data)))
    except routing.RoutingFileError:
        return  # a record that cannot be framed: the file is refused whole
    assert all(isinstance(i, Reject) or ipaddress.ip_network(i.prefix) for i in items)


@st.composite
def networks(draw: st.DrawFn) -> rd.Prefix:
    version = draw(st.sampled_from([4, 6]))
    bits = 32 if version == 4 else 128
    length = draw(st.integers(1, bits))
    value = draw(st.integers(0, 2**bits - 1)) >> (bits - length) << (bits - length)
    if version == 6 and ipaddress.IPv6Network((value, length)).overlaps(ipaddress.IPv6Network("::ffff:0:0/96")):
        value |= 1 << 127  # the first bit is inside the prefix (length >= 1): now it is far from it
    return (version, value, length)


ASNS = st.integers(1, routing.MAX_ASN)
ORIGINS = st.lists(st.lists(ASNS, min_size=1, max_size=3).map(tuple), min_size=1, max_size=3).map(tuple)
TABLES = st.dictionaries(networks(), ORIGINS, max_size=40)


@settings(max_examples=300)
@given(table=TABLES)
def test_pfx2as_reads_back_what_was_written(table: rd.Table) -> None:
    items = parse("pfx2as", "".join(rd.pfx2as_lines(table)))
    assert rejects(items) == []
    assert {(r[1], r[2]) for r in rows(items)} == rd.rows_of(table)
    assert len(rows(items)) == len(rd.rows_of(table))  # each ASN of a line once


@settings(max_examples=300)
@given(table=TABLES)
def test_ipasn_reads_back_what_was_written(table: rd.Table) -> None:
    items = parse("ipasn", "".join(rd.ipasn_lines(table)))
    assert rejects(items) == []
    assert sorted((r[1], r[2]) for r in rows(items)) == sorted((rd.prefix_text(p), o[0][0]) for p, o in table.items())


@settings(max_examples=300)
@given(version=st.sampled_from([4, 6]), ends=st.tuples(st.integers(0, 2**32 - 2), st.integers(0, 2**32 - 2)),
       asn=ASNS, v6_shift=st.integers(0, 92))  # (2**32 << 92) + (1 << 125) < 2**128
def test_iptoasn_ranges_are_covered_exactly(version: int, ends: tuple[int, int], asn: int, v6_shift: int) -> None:
    first, last = sorted(ends)
    if version == 6:  # far from ::ffff:0:0/96
        first, last = (1 << 125) + (first << v6_shift), (1 << 125) + (last << v6_shift)
    text = rd.address_text(version, first), rd.address_text(version, last)
    items = parse("iptoasn", "".join(rd.iptoasn_lines([(*text, asn, "ZZ", "test \u00e9")])))
    nets = [ipaddress.ip_network(r[1]) for r in rows(items)]
    assert rejects(items) == [] and {r[2] for r in rows(items)} == {asn}
    assert int(nets[0].network_address) == first and int(nets[-1].broadcast_address) == last
    for a, b in zip(nets, nets[1:], strict=False):
        assert int(a.broadcast_address) + 1 == int(b.network_address)


@settings(max_examples=500)
@given(address=st.text(st.sampled_from(list("0123456789abcdef.:")), max_size=40), length=st.integers(0, 130))
def test_addresses_are_read_as_strictly_as_ipaddress_reads_them(address: str, length: int) -> None:
    try:
        ours = routing._cidr(address, str(length))
    except routing._Unreadable:
        ours = "rejected"
    try:
        net = ipaddress.ip_network(f"{address}/{length}")
        theirs = None if length == 0 else (
            "rejected" if net.version == 6 and net.overlaps(ipaddress.IPv6Network("::ffff:0:0/96")) else net)
    except ValueError:
        theirs = "rejected"
    if isinstance(theirs, ipaddress.IPv4Network | ipaddress.IPv6Network):
        assert ours is not None and ours != "rejected" and ipaddress.ip_network(ours) == theirs
    else:
        assert ours == theirs


# --------------------------------------------------------------------------------------------
# Generators (bench/routing_data.py) and the demo's synthetic set
# --------------------------------------------------------------------------------------------


def test_a_generated_table_looks_like_a_routing_table() -> None:
    table = rd.generate_table(v4=20_000, v6=4_000, seed=3)
    v4 = [p for p in table if p[0] == 4]
    v6 = [p for p in table if p[0] == 6]
    assert (len(v4), len(v6)) == (20_000, 4_000)
    assert sum(p[2] == 24 for p in v4) / len(v4) > 0.5
    assert sum(p[2] in (32, 48) for p in v6) / len(v6) > 0.6
    moas = sum(len(o) > 1 for o in table.values()) / len(table)
    assert 0.01 <= moas <= 0.02
    assert rd.generate_table(v4=20_000, v6=4_000, seed=3) == table
    assert rd.generate_table(v4=20_000, v6=4_000, seed=4) != table


def test_a_series_churns_by_the_rate_and_is_deterministic(tmp_path: Path) -> None:
    files = rd.write_series(tmp_path / "a", days=3, churn_rate=0.01, v4=5_000, v6=1_000, seed=2)
    assert [f.path.name for f in files] == [f"routeviews-2026010{d}-1200.pfx2as.gz" for d in (1, 2, 3)]
    again = rd.write_series(tmp_path / "b", days=3, churn_rate=0.01, v4=5_000, v6=1_000, seed=2)
    assert [f.path.read_bytes() for f in files] == [f.path.read_bytes() for f in again]
    day = [{(r.prefix, r.asn) for r in routing.read(routing.describe(f.path)) if isinstance(r, PrefixOrigin)}
           for f in files]
    assert [len(d) for d in day] == [f.origins for f in files]
    changed = len(day[0] ^ day[1]) / len(day[0])
    assert 0.005 < changed < 0.03  # 1% of prefixes touched: moved (out and in), withdrawn, announced


def test_the_shipped_demo_set_is_what_the_generator_writes(tmp_path: Path) -> None:
    written = rd.write_demo_set(tmp_path)
    shipped = routing.demo_snapshots()
    assert [s.path.name for s in shipped] == [p.name for p in written]
    assert [s.path.read_bytes() for s in shipped] == [p.read_bytes() for p in written]
    assert {s.dataset for s in shipped} == {"demo_synthetic"}
    assert [s.taken_on for s in shipped] == [date(2026, 10, 31), date(2026, 11, 2), date(2026, 11, 4)]
    assert (shipped[0].path.parent / "README.md").read_text().startswith("# Synthetic routing tables")


def test_the_demo_set_covers_the_demo_logs_networks_and_moves_one() -> None:
    tables = []
    for snapshot in routing.demo_snapshots():
        items = list(routing.read(snapshot))
        assert rejects(items) == []
        tables.append({(r.prefix, r.asn) for r in items if isinstance(r, PrefixOrigin)})
    first = [ipaddress.ip_network(p) for p, _ in tables[0]]
    for network, _ in (*demo_logs._V4_RANGES, *demo_logs._V6_RANGES):
        assert any(ipaddress.ip_network(network).subnet_of(n) for n in first
                   if n.version == ipaddress.ip_network(network).version), network
    assert ("45.148.10.0/24", 48090) in tables[0] and ("45.148.10.0/24", 214943) in tables[1]
    assert ("45.148.10.0/24", 48090) not in tables[1]
    assert {a for p, a in tables[0] if p == "198.235.24.0/24"} == {396982, 15169}


def test_the_generator_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rd.main(["series", str(tmp_path), "--days", "2", "--v4", "300", "--v6", "50"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    shutil.rmtree(tmp_path)
    assert rd.main(["demo", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.pfx2as.gz"))) == 3
