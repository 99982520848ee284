"""A fake Team Cymru bulk whois server: real TCP on 127.0.0.1, the real line protocol, fault switches.

It speaks the protocol as clients meet it on ``whois.cymru.com:43``:

* lines end in ``\\n`` or ``\\r\\n``; keywords are case-insensitive;
* ``begin`` → the banner ``Bulk mode; whois.cymru.com [YYYY-MM-DD HH:MM:SS +0000]`` (now, UTC);
* ``verbose`` → 7-field rows ``AS | IP | BGP Prefix | CC | Registry | Allocated | AS Name``,
  padded like the real service (without it, 3-field ``AS | IP | AS Name`` rows);
* every other line is answered as soon as it arrives: the table's rows for that IP (several
  for a multi-origin IP), or for an unknown IP an ``NA ... | other |`` row (``unknown="na"``),
  an Error line (``"error"``) or nothing (``"silent"``); a line that is not an IP gets
  ``Error: no ASN or IP match on line N.``, N counting every line of the session from 1,
  ``begin`` and ``verbose`` included, as the real server does;
* ``end`` → the connection is closed.

The table maps an IP to a list of rows; a row is ``(asn, prefix, cc, registry, allocated,
as_name)`` (``None`` for ``NA``) or a raw line sent verbatim; ``NO_MATCH`` instead of a list
makes the server answer that IP with the Error line.

Faults are per connection: ``server.behaviours`` is a queue of ``Behaviour`` taken one per
accepted connection, then ``server.default`` (so a test can fail the first attempts only, or
fail everything). Every connection's received IP lines are recorded in ``server.queries`` (one
list per connection, in arrival order) and the peak of simultaneously open connections in
``server.max_concurrent``.

Use in a test module::

    from tests.fakes.cymru_server import cymru_server  # noqa: F401

    def test_x(cymru_server):
        server = cymru_server({"192.0.2.1": [(64496, "192.0.2.0/24", "ZZ", "arin", "2020-01-01", "EX")]})
        ... CymruSettings(addr=server.addr) ...
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Literal

import pytest

Row = tuple[int | None, str | None, str, str, str, str | None]  # asn, prefix, cc, registry, allocated, as_name
Unknown = Literal["na", "error", "silent"]


class _NoMatch:
    def __repr__(self) -> str:
        return "NO_MATCH"


NO_MATCH = _NoMatch()
Answer = Sequence[Row | str] | _NoMatch
Table = Mapping[str, Answer]


@dataclass(frozen=True)
class Behaviour:
    """How the server treats one connection. Row counts include Error lines, not the banner.

    ``latency`` sleeps before the banner and ``close_delay`` before closing; ``reverse_order``
    holds every answer until ``end`` and sends them last IP first. ``close_after_rows`` ends
    the connection cleanly (FIN) after that many rows, ``reset_after_rows`` with a TCP reset,
    ``half_line_after_rows`` sends half of the next row and then closes. ``garbage`` lines are
    sent right after the banner. ``trickle_chunk`` bytes are written at a time, ``trickle_delay``
    apart. ``drip`` sleeps that many seconds before each line (banner included): a server that
    keeps answering, too slowly for any batch deadline. ``refuse`` closes the connection on
    accept; ``hang`` reads the query and never answers.
    """

    latency: float = 0.0
    close_delay: float = 0.0
    reverse_order: bool = False
    close_after_rows: int | None = None
    reset_after_rows: int | None = None
    half_line_after_rows: int | None = None
    garbage: Sequence[str] = ()
    trickle_chunk: int | None = None
    trickle_delay: float = 0.0
    drip: float = 0.0
    refuse: bool = False
    hang: bool = False


def format_row(asn: int | None, ip: str, prefix: str | None, cc: str, registry: str, allocated: str,
               as_name: str | None, *, verbose: bool = True) -> str:
    """One answer row, padded the way whois.cymru.com pads it."""
    as_text = "NA" if asn is None else str(asn)
    name = "NA" if as_name is None else as_name
    ip_width = 16 if ":" not in ip else 39
    if not verbose:
        return f"{as_text:<8}| {ip:<{ip_width}} | {name}"
    prefix_text = "NA" if prefix is None else prefix
    return (f"{as_text:<8}| {ip:<{ip_width}} | {prefix_text:<19} | {cc:<2} | {registry:<8} | "
            f"{allocated:<10} | {name}")


def no_match_line(line_number: int) -> str:
    return f"Error: no ASN or IP match on line {line_number}."


class _Hangup(Exception):
    """Raised inside a connection handler when a fault switch ends the connection early."""


def _canonical(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class FakeCymruServer:
    """The server's state; runs on its own event loop (see ``running_cymru_server``)."""

    def __init__(self, table: Table | None = None, unknown: Unknown = "na") -> None:
        self.table: dict[str, Answer] = {}
        for ip, answer in (table or {}).items():
            self.table[_canonical(ip) or ip] = answer
        self.unknown: Unknown = unknown
        self.default = Behaviour()
        self.behaviours: deque[Behaviour] = deque()  # taken one per connection, then `default`
        self.queries: list[list[str]] = []
        self.max_concurrent = 0
        self.port = 0
        self._open = 0
        self._server: asyncio.Server | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        return len(self.queries)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        # Every task of this loop but this one is a connection's handler, including one for a
        # connection accepted just before close() whose task had not started yet (it used to
        # register itself when it started, and was missed): left pending, it was destroyed with
        # the loop mid-sleep, and Python reported its coroutine (PytestUnraisableExceptionWarning).
        while pending := asyncio.all_tasks() - {asyncio.current_task()}:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        behaviour = self.behaviours.popleft() if self.behaviours else self.default
        query: list[str] = []
        self.queries.append(query)
        self._open += 1
        self.max_concurrent = max(self.max_concurrent, self._open)
        try:
            if not behaviour.refuse:
                await self._converse(reader, writer, behaviour, query)
                await asyncio.sleep(behaviour.close_delay)
        except (_Hangup, ConnectionError):
            pass
        finally:
            # Counted closed before the FIN leaves, so a client that reconnects on seeing it can
            # never be counted as overlapping its own previous connection.
            self._open -= 1
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        behaviour: Behaviour, query: list[str]) -> None:
        line_number = 0
        verbose = False
        rows_sent = 0
        held: list[list[str]] = []  # answers per IP, for reverse_order

        async def send_row(row: str) -> None:
            nonlocal rows_sent
            if rows_sent == behaviour.close_after_rows:
                raise _Hangup
            if rows_sent == behaviour.reset_after_rows:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                raise _Hangup
            if rows_sent == behaviour.half_line_after_rows:
                data = row.encode()
                await self._write(writer, data[: max(1, len(data) // 2)], behaviour)
                raise _Hangup
            await self._write(writer, f"{row}\n".encode(), behaviour)
            rows_sent += 1

        while raw := await reader.readline():
            line_number += 1
            text = raw.decode("utf-8", errors="replace").strip()
            keyword = text.lower()
            if keyword in ("begin", "verbose", "end") or not text:
                if behaviour.hang:
                    continue  # read on until the client gives up and closes
                if keyword == "begin":
                    await asyncio.sleep(behaviour.latency)
                    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S +0000")
                    await self._write(writer, f"Bulk mode; whois.cymru.com [{now}]\n".encode(), behaviour)
                    for line in behaviour.garbage:
                        await self._write(writer, f"{line}\n".encode(), behaviour)
                elif keyword == "verbose":
                    verbose = True
                elif keyword == "end":
                    break
                continue
            query.append(text)
            if behaviour.hang:
                continue
            answer = self._answer(text, line_number, verbose)
            if behaviour.reverse_order:
                held.append(answer)
                continue
            for row in answer:
                await send_row(row)
        for answer in reversed(held):
            for row in answer:
                await send_row(row)

    def _answer(self, text: str, line_number: int, verbose: bool) -> list[str]:
        ip = _canonical(text)
        if ip is None:
            return [no_match_line(line_number)]
        answer = self.table.get(ip)
        if answer is None:
            if self.unknown == "silent":
                return []
            if self.unknown == "error":
                return [no_match_line(line_number)]
            answer = [(None, None, "", "other", "", None)]
        if isinstance(answer, _NoMatch):
            return [no_match_line(line_number)]
        return [row if isinstance(row, str) else format_row(row[0], text, *row[1:], verbose=verbose)
                for row in answer]

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, data: bytes, behaviour: Behaviour) -> None:
        if behaviour.drip:  # every call writes one line, or the half of one
            await asyncio.sleep(behaviour.drip)
        if behaviour.trickle_chunk is None:
            writer.write(data)
            await writer.drain()
            return
        for start in range(0, len(data), behaviour.trickle_chunk):
            writer.write(data[start:start + behaviour.trickle_chunk])
            await writer.drain()
            await asyncio.sleep(behaviour.trickle_delay)


@contextmanager
def running_cymru_server(table: Table | None = None, unknown: Unknown = "na") -> Iterator[FakeCymruServer]:
    """A started ``FakeCymruServer`` whose event loop runs in a background thread.

    The test's own client then runs in the main thread (e.g. ``asyncio.run``), so the two talk
    over a real socket, as a client and whois.cymru.com would.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-cymru", daemon=True)
    thread.start()
    server = FakeCymruServer(table, unknown)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=5)
        yield server
    finally:
        if server.port:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


@pytest.fixture
def cymru_server() -> Iterator[Callable[..., FakeCymruServer]]:
    """Factory: ``cymru_server(table, unknown="na")`` starts a fake; all are stopped after the test."""
    with ExitStack() as stack:

        def start(table: Table | None = None, unknown: Unknown = "na") -> FakeCymruServer:
            return stack.enter_context(running_cymru_server(table, unknown))

        yield start
