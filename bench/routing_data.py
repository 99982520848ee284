"""Routing table files for benchmarks, tests and the demo: CAIDA prefix2as snapshots, and the
writers of every format `ipintel routing load` reads (pfx2as, pyasn IPASN DAT, iptoasn TSV, MRT
TABLE_DUMP_V2), so tests can check parse(write(rows)) == rows.

`generate_table()` builds one realistic table: by default ~1M IPv4 and ~200K IPv6 prefixes in
families (an aggregate announced by its holder, more-specifics inside it, mostly by the same AS,
some by customers), so prefixes nest as they do in BGP; /24 is the commonest IPv4 length, /48 and
/32 the commonest IPv6 ones; origins are Zipf-distributed over ~1 AS per 12 prefixes, 16- and
32-bit; ~1.5% of prefixes have several origins (MOAS, `a_b`), ~0.02% end in an AS set (`a,b`).
`write_series()` writes N daily snapshots with a daily churn (some prefixes change origin, some
are withdrawn, new ones appear), named like CAIDA's files by date. Everything is deterministic
by seed: the same arguments give byte-identical files (gzip without name or time).

`write_demo_set()` writes the small synthetic routing set shipped in
loader/ipintel/demo_routing/ for `ipintel demo` (see its README.md).

    python -m bench.routing_data series OUT [--days 30] [--churn 0.005] [--v4 N] [--v6 N] [--seed S]
    python -m bench.routing_data demo OUT
"""

from __future__ import annotations

import argparse
import bisect
import bz2
import contextlib
import functools
import gzip
import ipaddress
import itertools
import random
import socket
import struct
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO

# A prefix: (IP version, network address as an int, length). Sorting these sorts like CAIDA's
# files: IPv4 before IPv6, then by address, then shorter first.
Prefix = tuple[int, int, int]
# Its origins: groups of ASNs; a group of one is a plain origin, a longer group an AS set.
# ((13335,),) one origin; ((1,), (2,)) MOAS `1_2`; ((1, 2),) AS set `1,2`; ((1,), (2, 3)) `1_2,3`.
Origins = tuple[tuple[int, ...], ...]
Table = dict[Prefix, Origins]

MOAS_SHARE = 0.015
AS_SET_SHARE = 0.0002
PREFIXES_PER_AS = 12
SERIES_START = date(2026, 1, 1)

# (aggregate length, weight) of prefix families, and the lengths of more-specifics inside them.
_V4_AGGREGATES = ((8, 0.02), (12, 0.1), (14, 0.3), (15, 0.4), (16, 3.0), (17, 1.5), (18, 2.5), (19, 4.5),
                  (20, 6.5), (21, 6.5), (22, 17.0), (23, 7.0), (24, 50.0))
_V6_AGGREGATES = ((29, 3.0), (32, 24.0), (36, 3.0), (40, 6.0), (44, 8.0), (46, 1.0), (47, 1.0), (48, 54.0))
_V4_CHILD_LENGTHS = ((19, 1), (20, 2), (21, 3), (22, 8), (23, 8), (24, 70))
_V6_CHILD_LENGTHS = ((36, 2), (40, 4), (44, 8), (46, 2), (47, 2), (48, 60))
# Where addresses are drawn: public unicast (first octets) and the RIRs' IPv6 /12s.
_V4_FIRST_OCTETS = tuple(o for o in range(1, 224) if o not in (10, 100, 127, 169, 172, 192, 198, 203))
_V6_BLOCKS = (0x2001, 0x2400, 0x2600, 0x2800, 0x2A00, 0x2C00)


@dataclass(frozen=True)
class SeriesFile:
    path: Path
    taken_on: date
    prefixes: int
    origins: int  # (prefix, ASN) rows it loads as


# ------------------------------------------------------------------------------------------------
# One realistic table
# ------------------------------------------------------------------------------------------------


class _Lengths:
    """Prefix lengths drawn with weights (cumulative weights computed once: this runs 1M times)."""

    def __init__(self, weights: Sequence[tuple[int, float]]) -> None:
        self.weights = weights
        self.lengths = [n for n, _ in weights]
        self.cum = list(itertools.accumulate(w for _, w in weights))

    def pick(self, rng: random.Random) -> int:
        return self.lengths[bisect.bisect(self.cum, rng.random() * self.cum[-1])]

    def longer_than(self, length: int) -> _Lengths | None:
        longer = [(n, w) for n, w in self.weights if n > length]
        return _Lengths(longer) if longer else None


class _AsPool:
    """Origin ASNs with Zipf-like weights: a few ASes originate thousands of prefixes."""

    def __init__(self, rng: random.Random, size: int) -> None:
        asns: set[int] = set()
        while len(asns) < size:
            asns.add(rng.randint(1, 64_495) if rng.random() < 0.6 else rng.randint(131_072, 402_000))
        self.asns = sorted(asns)
        rng.shuffle(self.asns)
        self.cum: list[float] = []
        total = 0.0
        for rank in range(1, size + 1):
            total += rank ** -0.65
            self.cum.append(total)

    def pick(self, rng: random.Random) -> int:
        return self.asns[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


def _origins(rng: random.Random, pool: _AsPool, asn: int) -> Origins:
    roll = rng.random()
    if roll < AS_SET_SHARE:
        return (tuple(sorted({asn, pool.pick(rng)})),)
    if roll < AS_SET_SHARE + MOAS_SHARE:
        others = {pool.pick(rng) for _ in range(1 if rng.random() < 0.9 else 2)} - {asn}
        return tuple((a,) for a in sorted({asn} | others))
    return ((asn,),)


def _random_base(rng: random.Random, version: int) -> int:
    if version == 4:
        return rng.choice(_V4_FIRST_OCTETS) << 24 | rng.getrandbits(24)
    return rng.choice(_V6_BLOCKS) << 112 | rng.getrandbits(100) << 12  # inside the /12s' first /16s


@functools.cache
def _length_tables(version: int) -> tuple[_Lengths, dict[int, _Lengths | None]]:
    aggregates, children = (_V4_AGGREGATES, _V4_CHILD_LENGTHS) if version == 4 else (_V6_AGGREGATES, _V6_CHILD_LENGTHS)
    child_lengths = _Lengths(children)
    return _Lengths(aggregates), {n: child_lengths.longer_than(n) for n, _ in aggregates}


def _family(rng: random.Random, pool: _AsPool, version: int, table: Table, want: int) -> int:
    """An aggregate and its more-specifics, added to `table`; how many prefixes were added."""
    bits = 32 if version == 4 else 128
    aggregates, children = _length_tables(version)
    length = aggregates.pick(rng)
    base = _random_base(rng, version) >> (bits - length) << (bits - length)
    holder = pool.pick(rng)
    added = 0
    if (version, base, length) not in table and rng.random() < 0.85:  # some aggregates are not announced whole
        table[(version, base, length)] = _origins(rng, pool, holder)
        added += 1
    longer = children[length]
    count = 0 if longer is None else min(want - added, int(rng.expovariate(1 / (3 if length < 20 else 1.5))))
    for _ in range(max(0, count)):
        assert longer is not None
        child_length = longer.pick(rng)
        child = base | rng.getrandbits(child_length - length) << (bits - child_length)
        key = (version, child, child_length)
        if key not in table:
            asn = holder if rng.random() < 0.85 else pool.pick(rng)  # a customer's more-specific
            table[key] = _origins(rng, pool, asn)
            added += 1
    return added


def generate_table(*, v4: int = 1_000_000, v6: int = 200_000, seed: int = 1) -> Table:
    """One routing table of about `v4` IPv4 and `v6` IPv6 prefixes (exactly, unless a count is
    too small for a family), in insertion order."""
    rng = random.Random(seed)
    pool = _AsPool(rng, max(10, (v4 + v6) // PREFIXES_PER_AS))
    table: Table = {}
    for version, want in ((4, v4), (6, v6)):
        have = 0
        while have < want:
            have += _family(rng, pool, version, table, want - have)
    return table


def churn(table: Table, rate: float, rng: random.Random, pool_asns: Sequence[int]) -> Table:
    """The next day's table: `rate` of the prefixes touched, 40% of them changing origin, 30%
    withdrawn, and as many new ones as withdrawn (next to existing ones, so they nest too)."""
    keys = list(table)
    touched = rng.sample(range(len(keys)), round(len(keys) * rate))
    nxt = dict(table)
    moved = int(len(touched) * 0.4)
    for i in touched[:moved]:
        nxt[keys[i]] = ((rng.choice(pool_asns),),)
    withdrawn = touched[moved:moved + int(len(touched) * 0.3)]
    for i in withdrawn:
        del nxt[keys[i]]
    announced = 0
    for _ in range(len(withdrawn) * 20):  # new announcements: a /24 (/48) inside some existing prefix
        if announced == len(withdrawn):
            break
        version, base, length = keys[rng.randrange(len(keys))]
        bits = 32 if version == 4 else 128
        new_length = max(length, 24 if version == 4 else 48)
        key = (version, base | rng.getrandbits(new_length - length) << (bits - new_length), new_length)
        if key not in table and key not in nxt:
            nxt[key] = ((rng.choice(pool_asns),),)
            announced += 1
    return nxt


# ------------------------------------------------------------------------------------------------
# Writers
# ------------------------------------------------------------------------------------------------


_V4 = struct.Struct(">I")


def address_text(version: int, value: int) -> str:
    """The canonical text of an address (RFC 5952 for IPv6: the libc's, as fast as it gets)."""
    if version == 4:
        return socket.inet_ntoa(_V4.pack(value))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def prefix_text(prefix: Prefix) -> str:
    return f"{address_text(prefix[0], prefix[1])}/{prefix[2]}"


def rows_of(table: Table) -> set[tuple[str, int]]:
    """The (prefix, ASN) rows `ipintel routing load` makes of a table: one per distinct ASN."""
    return {(prefix_text(p), asn) for p, origins in table.items() for group in origins for asn in group}


def _sort_key(item: tuple[Prefix, Origins]) -> int:
    """The order of sorted(prefixes) as one int (IPv4 first, then by address, shorter first):
    comparing ints is three times faster than comparing tuples, on a million lines."""
    version, value, length = item[0]
    return (version == 6) << 136 | value << 8 | length


def pfx2as_lines(table: Table) -> Iterator[str]:
    """CAIDA's format, sorted as CAIDA sorts: `address<TAB>length<TAB>a_b,c`."""
    ntoa, ntop, v4, v6 = socket.inet_ntoa, socket.inet_ntop, _V4.pack, socket.AF_INET6
    for (version, value, length), groups in sorted(table.items(), key=_sort_key):
        address = ntoa(v4(value)) if version == 4 else ntop(v6, value.to_bytes(16, "big"))
        if len(groups) == 1 and len(groups[0]) == 1:  # nearly every line: one origin
            yield f"{address}\t{length}\t{groups[0][0]}\n"
        else:
            yield f"{address}\t{length}\t{'_'.join(','.join(map(str, group)) for group in groups)}\n"


def ipasn_lines(table: Table, source: str = "synthetic") -> Iterator[str]:
    """pyasn's IPASN DAT as pyasn_util_convert.py writes it: a `;` header, then
    `prefix/len<TAB>asn`, one origin per prefix (pyasn keeps one: here the first)."""
    v6 = sum(1 for p in table if p[0] == 6)
    yield f"; IP-ASN32-DAT file\n; Original source: {source}\n; Converted on  : Thu Jan  1 00:00:00 2026\n"
    yield f"; Prefixes-v4   : {len(table) - v6}\n; Prefixes-v6   : {v6}\n; \n"
    for prefix, origins in sorted(table.items(), key=_sort_key):
        yield f"{prefix_text(prefix)}\t{origins[0][0]}\n"


def iptoasn_lines(ranges: Iterable[tuple[str, str, int, str, str]]) -> Iterator[str]:
    """iptoasn.com's TSV: `start<TAB>end<TAB>asn<TAB>country<TAB>description` (ASN 0: not routed)."""
    for start, end, asn, country, description in ranges:
        yield f"{start}\t{end}\t{asn}\t{country}\t{description}\n"


@contextlib.contextmanager
def open_for_writing(path: Path) -> Iterator[IO[bytes]]:
    """`path` for writing, compressed by its extension; a .gz carries no name and no time, so the
    same content gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                yield gz  # type: ignore[misc]  # a GzipFile is a binary file
        elif path.name.endswith(".bz2"):
            with bz2.BZ2File(raw, "wb") as bz:
                yield bz
        else:
            yield raw


def write_lines(path: Path, lines: Iterable[str]) -> None:
    with open_for_writing(path) as out:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= 50_000:
                out.write("".join(chunk).encode())
                chunk.clear()
        out.write("".join(chunk).encode())


def pfx2as_name(taken_on: date, collector: str = "") -> str:
    """CAIDA's name for a snapshot: `routeviews-rv2-YYYYMMDD-1200.pfx2as.gz` (collector `rv2`:
    IPv4, `rv6`: IPv6), or without a collector for a table holding both families."""
    return f"routeviews-{collector + '-' if collector else ''}{taken_on:%Y%m%d}-1200.pfx2as.gz"


def write_series(out_dir: Path, *, days: int = 30, churn_rate: float = 0.005, v4: int = 1_000_000,
                 v6: int = 200_000, seed: int = 1, start: date = SERIES_START) -> list[SeriesFile]:
    """`days` daily snapshots under out_dir, each `routeviews-YYYYMMDD-1200.pfx2as.gz` with both
    families, the first from generate_table(), each next one churned by `churn_rate`."""
    return list(iter_series(out_dir, days=days, churn_rate=churn_rate, v4=v4, v6=v6, seed=seed, start=start))


def iter_series(out_dir: Path, *, days: int, churn_rate: float, v4: int, v6: int, seed: int,
                start: date) -> Iterator[SeriesFile]:
    """write_series(), each file as soon as it is written."""
    rng = random.Random(seed + 1)
    table = generate_table(v4=v4, v6=v6, seed=seed)
    pool = sorted({a for origins in table.values() for group in origins for a in group})
    for day in range(days):
        if day:
            table = churn(table, churn_rate, rng, pool)
        taken_on = start + timedelta(days=day)
        path = out_dir / pfx2as_name(taken_on)
        write_lines(path, pfx2as_lines(table))
        yield SeriesFile(path, taken_on, len(table), sum(len({a for g in o for a in g}) for o in table.values()))


# ------------------------------------------------------------------------------------------------
# MRT TABLE_DUMP_V2 (RFC 6396), enough of it for pyasn: a peer index, then one RIB record per prefix
# ------------------------------------------------------------------------------------------------

_AS_SET, _AS_SEQUENCE = 1, 2


def _mrt_record(kind: int, subtype: int, body: bytes, timestamp: int) -> bytes:
    return struct.pack(">IHHI", timestamp, kind, subtype, len(body)) + body


def _as_path(path: Sequence[int], as_set: Sequence[int] = ()) -> bytes:
    segments = struct.pack(">BB", _AS_SEQUENCE, len(path)) + b"".join(struct.pack(">I", a) for a in path)
    if as_set:
        segments += struct.pack(">BB", _AS_SET, len(as_set)) + b"".join(struct.pack(">I", a) for a in as_set)
    attribute = struct.pack(">BBB", 0x40, 2, len(segments)) + segments  # transitive AS_PATH, 4-byte ASNs
    origin = struct.pack(">BBBB", 0x40, 1, 1, 0)  # ORIGIN IGP, before AS_PATH as routers send it
    return origin + attribute


AsPath = Sequence[int | Sequence[int]]  # [3356, 13335], or ending in an AS set: [3356, [64512, 13335]]


def mrt_rib(entries: Iterable[tuple[Prefix, Sequence[AsPath]]], timestamp: int = 1_767_225_600) -> bytes:
    """A TABLE_DUMP_V2 RIB: for each prefix, one RIB entry per AS path given (a path's last AS is
    its origin; a path ending in a list [a, [b, c]] ends in the AS set {b, c}). An empty path is
    a route of the collector itself (no origin)."""
    peers = struct.pack(">IH", 0x0A000001, 0) + struct.pack(">H", 1) + struct.pack(">BI4sI", 2, 1, bytes(4), 65000)
    out = [_mrt_record(13, 1, peers, timestamp)]
    for seq, ((version, value, length), paths) in enumerate(entries):
        octets = (length + 7) // 8
        raw = value.to_bytes(4 if version == 4 else 16, "big")[:octets]
        rib_entries = b""
        for path in paths:
            plain = [a for a in path if isinstance(a, int)]
            as_set: list[int] = next((list(a) for a in path if not isinstance(a, int)), [])
            attrs = _as_path(plain, as_set) if plain else struct.pack(">BBBB", 0x40, 1, 1, 0) + b"\x40\x02\x00"
            rib_entries += struct.pack(">HIH", 0, timestamp, len(attrs)) + attrs
        body = struct.pack(">IB", seq, length) + raw + struct.pack(">H", len(paths)) + rib_entries
        out.append(_mrt_record(13, 2 if version == 4 else 4, body, timestamp))
    return b"".join(out)


# ------------------------------------------------------------------------------------------------
# The demo's synthetic routing set
# ------------------------------------------------------------------------------------------------

# The networks ipintel.demo_logs draws attackers from (its _V4_RANGES / _V6_RANGES), with ASNs
# that resemble their operators'. Synthetic: a plausible table, not a record of real routing.
DEMO_START = date(2026, 10, 31)  # the demo's logs start on 2026-11-01 (demo_logs.generate)
DEMO_DAYS = (0, 2, 4)  # snapshots of 10-31, 11-02, 11-04: every session is within a few days of one
DEMO_TABLE: dict[str, str] = {
    "218.92.0.0/16": "4134", "61.177.172.0/22": "4134", "222.186.0.0/16": "4134", "36.134.0.0/16": "9808",
    "14.103.0.0/16": "4812", "118.25.0.0/16": "45090", "43.153.0.0/16": "132203", "159.89.0.0/16": "14061",
    "167.99.0.0/16": "14061", "134.209.0.0/16": "14061", "170.64.128.0/17": "14061", "45.148.10.0/24": "48090",
    "141.98.10.0/23": "43350", "80.94.95.0/24": "204428", "193.32.162.0/24": "47890", "92.118.39.0/24": "51396",
    "2.57.122.0/24": "47890", "176.111.174.0/24": "202306", "177.12.0.0/16": "28573", "181.115.0.0/16": "27932",
    "117.50.0.0/16": "135377", "162.142.125.0/24": "398324", "167.94.138.0/24": "398324",
    "198.235.24.0/24": "396982_15169",  # two origins (MOAS)
    "71.6.199.0/24": "10439", "89.248.165.0/24": "202425",
    "159.89.128.0/20": "200130",  # a customer's more-specific inside DigitalOcean's /16
    "2a01:4f8::/32": "24940", "2604:a880::/32": "14061", "2001:41d0::/32": "16276", "240e::/20": "4134",
    "2602:80d:1000::/44": "398324",
    # A few unrelated routes, as a table has.
    "1.1.1.0/24": "13335", "8.8.8.0/24": "15169", "9.9.9.0/24": "19281", "2606:4700::/32": "13335",
}
# What changes between the demo's snapshots: (from snapshot index, prefix, new origins or None).
DEMO_CHANGES: tuple[tuple[int, str, str | None], ...] = (
    (1, "45.148.10.0/24", "214943"),  # the hosting /24 moves to another AS on 11-02
    (2, "141.98.10.0/23", None),  # withdrawn on 11-04: sessions after it fall back to other sources
    (2, "43.153.0.0/16", "132203_45090"),  # a second origin appears on 11-04
)


def demo_tables() -> list[tuple[date, dict[str, str]]]:
    tables = []
    table = dict(DEMO_TABLE)
    for index, day in enumerate(DEMO_DAYS):
        for at, prefix, origins in DEMO_CHANGES:
            if at == index:
                if origins is None:
                    table.pop(prefix)
                else:
                    table[prefix] = origins
        tables.append((DEMO_START + timedelta(days=day), dict(table)))
    return tables


def demo_name(taken_on: date) -> str:
    """The demo's files say what they are in their name: `demo-synthetic-YYYYMMDD.pfx2as.gz`."""
    return f"demo-synthetic-{taken_on:%Y%m%d}.pfx2as.gz"


def write_demo_set(out_dir: Path) -> list[Path]:
    """The demo's snapshots in CAIDA's format, sorted as CAIDA sorts (IPv4 then IPv6, by address)."""
    written = []
    for taken_on, table in demo_tables():
        nets = {ipaddress.ip_network(p): origins for p, origins in table.items()}
        ordered = sorted(nets, key=lambda n: (n.version, int(n.network_address), n.prefixlen))
        path = out_dir / demo_name(taken_on)
        write_lines(path, (f"{n.network_address}\t{n.prefixlen}\t{nets[n]}\n" for n in ordered))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing_data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    series = sub.add_parser("series", help="N daily CAIDA pfx2as snapshots with churn")
    series.add_argument("out", type=Path)
    series.add_argument("--days", type=int, default=30)
    series.add_argument("--churn", type=float, default=0.005, help="share of prefixes touched a day")
    series.add_argument("--v4", type=int, default=1_000_000)
    series.add_argument("--v6", type=int, default=200_000)
    series.add_argument("--seed", type=int, default=1)
    demo = sub.add_parser("demo", help="the synthetic routing set of `ipintel demo`")
    demo.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.what == "demo":
        for path in write_demo_set(args.out):
            print(path)
        return 0
    for f in iter_series(args.out, days=args.days, churn_rate=args.churn, v4=args.v4, v6=args.v6, seed=args.seed,
                         start=SERIES_START):
        print(f"{f.path}: {f.prefixes:,} prefixes, {f.origins:,} origins ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
