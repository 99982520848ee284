"""The test oracle of the demo log generator: what the files ipintel.demo_logs writes amount to.

`generate()` runs the package's generator and, through its `on_session` hook, computes each
session's facts from the session as it was built (its events and its place in time), not from
the files: the reader's tests and the ingest tests check what they read, and what the database
holds, against these exact figures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

from ipintel import demo_logs

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # on_session's start_us counts microseconds from here


class SessionFacts(TypedDict):
    """What a session amounts to; a database built from the files should hold the same."""

    src_ip: str  # normalised, like ip_inventory.ip
    sensor: str
    protocol: str
    first_ts: datetime
    last_ts: datetime
    event_count: int  # all lines of the session, known eventids or not
    login_attempts: int  # cowrie.login.failed + cowrie.login.success
    login_successes: int
    command_count: int  # cowrie.command.input
    download_count: int  # cowrie.session.file_download (not .failed)
    duration: float | None  # cowrie.session.closed; None when the session never closed
    client_version: str | None
    hassh: str | None


@dataclass(frozen=True)
class ExpectedSet(demo_logs.GeneratedSet):
    """What generate() returned, with what its files must amount to."""

    expected: dict[str, SessionFacts]  # session id → facts
    eventid_counts: dict[str, int]


def generate(out_dir: Path, **options: Any) -> ExpectedSet:
    """demo_logs.generate(out_dir, **options), and the facts of every session it wrote."""
    expected: dict[str, SessionFacts] = {}
    eventid_counts: Counter[str] = Counter()

    def observe(session: demo_logs.Session, start_us: int) -> None:
        expected[session.sid] = session_facts(session, start_us)
        eventid_counts.update(event.eventid for event in session.events)

    generated = demo_logs.generate(out_dir, on_session=observe, **options)
    return ExpectedSet(**{f.name: getattr(generated, f.name) for f in fields(generated)},
                       expected=expected, eventid_counts=dict(sorted(eventid_counts.items())))


def session_facts(session: demo_logs.Session, start_us: int) -> SessionFacts:
    counts = Counter(event.eventid for event in session.events)
    by_id = {event.eventid: event for event in session.events}  # each of these occurs at most once
    closed = by_id.get("cowrie.session.closed")
    version = by_id.get("cowrie.client.version")
    kex = by_id.get("cowrie.client.kex")
    return SessionFacts(
        src_ip=session.attacker.ip,
        sensor=session.sensor.name,
        protocol=session.protocol,
        first_ts=_aware(start_us),
        last_ts=_aware(start_us + session.span),
        event_count=len(session.events),
        login_attempts=counts["cowrie.login.failed"] + counts["cowrie.login.success"],
        login_successes=counts["cowrie.login.success"],
        command_count=counts["cowrie.command.input"],
        download_count=counts["cowrie.session.file_download"],
        duration=closed.fields["duration"] if closed else None,
        client_version=version.fields["version"] if version else None,
        hassh=kex.fields["hassh"] if kex else None,
    )


def _aware(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)
