"""One large plain Cowrie log file, written fast, for volume tests and benchmarks.

The sessions are the demo generator's (ipintel.demo_logs): one day of them on one sensor is
generated once, then repeated day after day with fresh session ids and the next date.

    python -m tests.cowrie_large PATH SIZE [--seed N] [--start YYYY-MM-DD]   # SIZE: bytes, or 500M, 2G ...
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from ipintel import demo_logs

BLOCK_SESSIONS = 2000  # one day's block: a few MB
# A session id's first 4 of 12 hex digits, where it is written: the "session" key of every line,
# and the message of cowrie.session.connect. Each day's copy puts its day number there.
_SID_HEAD = re.compile(rb'(?<="session":")[0-9a-f]{4}(?=[0-9a-f]{8}")|(?<=\[session: )[0-9a-f]{4}(?=[0-9a-f]{8}\])')
_DAY_MARK = b"@@@@"  # never occurs in generated content (checked)


@dataclass(frozen=True)
class LargeFile:
    path: Path
    bytes: int
    sessions: int
    events: int


def generate_large(path: Path, target_bytes: int, *, seed: int = 42, start: date = date(2026, 11, 1)) -> LargeFile:
    """Write one plain `cowrie.json`-style file of at least `target_bytes`.

    Each day after the first repeats the first by two bytes.replace calls. Attacker addresses and
    credentials therefore repeat from day to day: fine for throughput, not for statistics. The
    file overshoots the target by less than one day's block.
    """
    tails: set[bytes] = set()

    def distinct_tail(session: demo_logs.Session, start_us: int) -> None:
        tail = session.sid[4:].encode()
        if tail in tails:
            raise ValueError(f"seed {seed}: two session ids share their last 8 digits, which stay the same "
                             "every day; choose another seed")
        tails.add(tail)

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".cowrie-large-") as scratch:
        day = demo_logs.generate(Path(scratch), seed=seed, days=1, sessions=BLOCK_SESSIONS, sensors=1,
                                 start=start, on_session=distinct_tail)
        (only_file,) = day.files
        block = only_file.read_bytes()
    assert _DAY_MARK not in block, f"{_DAY_MARK!r} occurs in the generated logs: choose another mark"
    block, marked = _SID_HEAD.subn(_DAY_MARK, block)
    assert marked == day.events + day.sessions, (marked, day.events, day.sessions)  # every line, every connect
    date_mark = f'"timestamp":"{start:%Y-%m-%d}T'.encode()

    written = days = 0
    with open(path, "wb") as out:
        while written < target_bytes:
            data = block.replace(_DAY_MARK, b"%04x" % days).replace(
                date_mark, f'"timestamp":"{start + timedelta(days=days):%Y-%m-%d}T'.encode()
            )
            out.write(data)
            written += len(data)
            days += 1
    return LargeFile(path, written, day.sessions * days, day.events * days)


def _byte_count(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    suffix = text[-1:].upper()
    return int(text[:-1]) * units[suffix] if suffix in units else int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cowrie_large", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="the file to write")
    parser.add_argument("size", type=_byte_count, help="at least this many bytes (suffix K, M or G)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 1))
    args = parser.parse_args(argv)
    args.path.parent.mkdir(parents=True, exist_ok=True)
    large = generate_large(args.path, args.size, seed=args.seed, start=args.start)
    print(f"{large.path}: {large.bytes} bytes, {large.events} events, {large.sessions} sessions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
