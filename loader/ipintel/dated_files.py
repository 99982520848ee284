"""What the loaders of dated files share (`ipintel routing load`, `ipintel geo load`): a file's
SHA-256, recorded with what it loaded, and the check that skips a file whose snapshot (or build)
is already loaded before a line of it is read.

A snapshot is one per dataset (or edition) and day: a second file for the same day is never
merged. When it is byte for byte the file loaded, that is the normal case of a folder loaded
again (cron, a rotation); when it differs, the operator is told, since one of the two is not
what it claims to be.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString, Protocol

import psycopg

from ipintel import db

CHUNK_BYTES = 1 << 20


def sha256_of(path: Path) -> str:
    """The file's SHA-256 in hex, read in chunks (a whole table is never held in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class AlreadyLoaded:
    """The snapshot (or build) of that dataset and day, as recorded when it was loaded."""

    number: int  # routing_snapshots.snapshot_id, geo_builds.build_id
    file: str  # the file it was loaded from
    same_file: bool  # this file's sha256 is the one recorded (or none was: loaded before 0029)


def already_loaded(conn: psycopg.Connection[Any], path: Path, query: LiteralString,
                   params: dict[str, Any]) -> tuple[str, AlreadyLoaded | None]:
    """The file's sha256, and what `query` (a named query giving `number`, `file` and `sha256`
    of the one snapshot recorded for `params`' day, if any) says: None when nothing is loaded for
    that day. OSError when the file cannot be read."""
    sha256 = sha256_of(path)
    row = db.query_one(conn, query, params)
    if row is None:
        return sha256, None
    return sha256, AlreadyLoaded(int(row["number"]), str(row["file"]), row["sha256"] in (None, sha256))


class DatedLoad(Protocol):
    """What the CLI reads of the result of loading one file (routing.LoadResult, geo.GeoLoadResult)."""

    @property
    def loaded(self) -> bool: ...  # False: that snapshot (or build) was loaded before; nothing changed

    @property
    def already(self) -> AlreadyLoaded | None: ...  # skipped before reading: loaded from which file

    @property
    def seconds(self) -> float: ...

    @property
    def what(self) -> str: ...  # "PATH: dataset day", as each line of the CLI starts

    @property
    def recorded(self) -> str: ...  # "snapshot 12", "build 3": the row that records it
