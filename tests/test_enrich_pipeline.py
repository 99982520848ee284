"""The enrichment pipeline (ipintel.enrich.Batches): a pass fetches its next batch while the
previous one is COPYed and merged on a second connection, and nothing handed over is lost or
counted twice, whether the pass ends normally, fails, or is interrupted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from ipintel.config import Settings
from ipintel.enrich import Batches, EnrichError, EnrichOptions, Stopped, enrich
from ipintel.progress import Reporter

NOT_FOUND = {"found": False, "asn": None, "origins": []}  # Team Cymru's "no ASN or IP match"
IPS = [f"45.33.{n}.1" for n in range(1, 7)]  # routed addresses: bogons are never due


def settings(dsn: str) -> Settings:
    return Settings(database_url=dsn, geoip_dir="", cymru_addr="", greynoise_url="", greynoise_key=None)


class ScriptedPass:
    """A Team Cymru pass whose fetch hands its IPs over two at a time, calling `between(n)` after
    the n-th write returned (before fetching the next batch)."""

    source = "cymru"

    def __init__(self, between: Callable[[int], None] = lambda n: None, fail_after: int | None = None,
                 garbled_batch: int | None = None) -> None:
        self.between, self.fail_after, self.garbled_batch = between, fail_after, garbled_batch

    def prepare(self) -> dict[str, Any]:
        return {}

    def current_build(self) -> int | None:
        return None

    def fetch(self, ips: list[str], batches: Batches) -> Stopped | None:
        for n, start in enumerate(range(0, len(ips), 2), start=1):
            batch = ips[start:start + 2] if n != self.garbled_batch else ["not-an-ip"]
            batches.write([(ip, NOT_FOUND) for ip in batch], [])
            self.between(n)
            if self.fail_after == n:
                raise EnrichError("the service went away")
        return None

    def close(self) -> None:
        pass


@pytest.fixture
def inventory(db: str) -> str:
    with psycopg.connect(db) as conn:
        for ip in IPS:
            conn.execute("INSERT INTO ipintel.ip_inventory (ip) VALUES (%s)", (ip,))
        # Only the Team Cymru pass: the other sources would otherwise wait on these IPs.
        conn.execute("UPDATE ipintel.enrichment_policy SET enabled = (source = 'cymru')")
    return db


def answered(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM ipintel.enrichment_state WHERE source = 'cymru'").fetchone()
    assert row is not None
    return int(row[0])


def test_the_next_batch_is_fetched_while_the_previous_one_merges(inventory: str) -> None:
    # Another session holds the first batch's IP rows for a second: that batch's merge
    # (lock_for_merge) waits for them.
    blocker = psycopg.connect(inventory)
    blocker.execute("SELECT 1 FROM ipintel.ip_inventory WHERE ip = ANY(%s::inet[]) FOR UPDATE", (IPS[:2],))
    released: list[float] = []

    def release() -> None:
        released.append(time.monotonic())
        blocker.rollback()

    seen: dict[int, float] = {}

    def between(n: int) -> None:
        seen[n] = time.monotonic()
        if n == 1:
            assert answered(inventory) == 0  # the first batch has not committed yet

    timer = threading.Timer(1.0, release)
    timer.start()
    try:
        summary = enrich(settings(inventory), EnrichOptions(sources=("cymru",)), passes=[ScriptedPass(between)],
                         reporter=Reporter())
    finally:
        timer.join()
        blocker.close()
    [ps] = summary.passes
    assert (ps.status, ps.due, ps.fetched, ps.merged) == ("succeeded", 6, 6, 6)
    # The pass went on to its second batch while the first one waited for the rows; its second
    # write returned only once the first batch had committed, after the rows were released.
    assert seen[1] < released[0] <= seen[2]
    assert answered(inventory) == 6


def test_a_failed_pass_keeps_the_batch_it_handed_over(inventory: str) -> None:
    summary = enrich(settings(inventory), EnrichOptions(sources=("cymru",)),
                     passes=[ScriptedPass(fail_after=2)], reporter=Reporter())
    [ps] = summary.passes
    assert ps.status == "failed" and ps.message == "the service went away"
    # Both batches handed over before the failure are merged and counted, once.
    assert (ps.fetched, ps.merged) == (4, 4)
    assert answered(inventory) == 4
    with psycopg.connect(inventory) as conn:
        row = conn.execute("SELECT merged FROM ipintel.enrichment_runs WHERE source = 'cymru'").fetchone()
    assert row == (4,)


def test_an_interrupted_pass_commits_the_batch_in_flight(inventory: str) -> None:
    def between(n: int) -> None:
        if n == 2:
            raise KeyboardInterrupt("SIGTERM")

    with pytest.raises(KeyboardInterrupt):
        enrich(settings(inventory), EnrichOptions(sources=("cymru",)), passes=[ScriptedPass(between)],
               reporter=Reporter())
    assert answered(inventory) == 4
    with psycopg.connect(inventory) as conn:
        row = conn.execute("SELECT status, merged FROM ipintel.enrichment_runs WHERE source = 'cymru'").fetchone()
    assert row == ("interrupted", 4)


def test_an_error_of_the_writer_reaches_the_pass_and_keeps_what_merged(inventory: str) -> None:
    # The second batch holds an address its COPY refuses: the error surfaces at the next write,
    # the pass fails, the first batch stays merged and the third is never handed over.
    with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="not-an-ip"):
        enrich(settings(inventory), EnrichOptions(sources=("cymru",)), passes=[ScriptedPass(garbled_batch=2)],
               reporter=Reporter())
    assert answered(inventory) == 2
    with psycopg.connect(inventory) as conn:
        row = conn.execute("SELECT status, merged FROM ipintel.enrichment_runs WHERE source = 'cymru'").fetchone()
    assert row == ("failed", 2)
