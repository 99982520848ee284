"""What the fake lookup APIs share (tests/fakes/greynoise_server.py, dshield_server.py): a threaded
pytest-httpserver on 127.0.0.1, replies scripted per IP, every request recorded, and the faults a
real service shows beyond its status codes.

``Reply`` fields beyond the status: ``body`` (JSON) or ``raw`` bytes (garbage, an HTML page),
``retry_after`` / ``headers``, ``delay`` (seconds before answering: latency, or a client timeout),
``hang`` (read the request, never answer, until the fake stops), ``drip`` (the headers, then the
body one line every ``drip`` seconds) and ``reset`` (drop the connection with a TCP reset instead
of answering).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ipintel.sources.http_api import LookupFailure


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body=None`` means the body the real API would send for ``status``."""

    status: int = 200
    body: Any = None
    retry_after: str | None = None
    delay: float = 0.0  # seconds before answering
    raw: bytes | None = None  # the body as these bytes (not JSON), instead of ``body``
    headers: dict[str, str] | None = None
    hang: bool = False  # accept, read the request, never answer
    drip: float = 0.0  # seconds between the body's lines, sent after the headers
    reset: bool = False  # close the connection with a TCP RST, no answer at all


@dataclass(frozen=True)
class Seen:
    """A request as the fake received it."""

    method: str
    path: str
    ips: tuple[str, ...]
    key: str | None
    at: float  # time.monotonic() at arrival
    user_agent: str | None = None


class ScriptedFake:
    """Scripts per IP, the request log and the answering of a Reply; a fake API extends it."""

    content_type = "application/json"

    def __init__(self, server: HTTPServer) -> None:
        self.url = server.url_for("").rstrip("/")
        self.requests: list[Seen] = []
        self._scripts: dict[str, list[Reply]] = {}
        # Set when the fake stops: a hanging reply then ends, so the server's threads can too.
        self.released = threading.Event()
        # The server is threaded (a slow reply must not hold up the client's retry).
        self._lock = threading.Lock()

    def script(self, ip: str, *replies: Reply) -> None:
        """Answer requests about ``ip`` with ``replies`` in order; the last one repeats."""
        self._scripts[ip] = list(replies)

    def requests_for(self, ip: str) -> list[Seen]:
        return [seen for seen in self.requests if ip in seen.ips]

    def _scripted(self, ip: str) -> Reply | None:
        """The next scripted reply for ``ip`` (call with the lock held), or None: not scripted."""
        replies = self._scripts.get(ip)
        if replies is None:
            return None
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def _respond(self, request: Request, reply: Reply, body: Callable[[], Any]) -> Response:
        """Answer ``reply``; ``body()`` gives the JSON body when the reply brings none."""
        if reply.reset:
            connection: socket.socket = request.environ["werkzeug.socket"]
            # Linger 0: the last close of the socket sends a RST, not a FIN. The connection's file
            # descriptor becomes /dev/null in one step (dup2), which is that last close; the
            # server thread then writes its answer into /dev/null, and no new connection can be
            # given the descriptor meanwhile.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(devnull, connection.fileno())
            finally:
                os.close(devnull)
            return Response(b"", 500)  # goes nowhere
        if reply.hang:
            self.released.wait(timeout=600)  # the client gives up long before
            return Response(b"", 503)
        if reply.delay:
            self.released.wait(timeout=reply.delay)
        if reply.raw is not None:
            data = reply.raw
        else:
            data = json.dumps(reply.body if reply.body is not None else body(), indent=1).encode()
        headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
        headers |= reply.headers or {}
        if not reply.drip:
            return Response(data, reply.status, headers, content_type=self.content_type)

        def drip() -> Iterator[bytes]:
            for line in data.splitlines(keepends=True):
                yield line
                if self.released.wait(timeout=reply.drip):
                    return

        # No length: the body streams (chunked), a line at a time.
        return Response(drip(), reply.status, headers, content_type=self.content_type)


class _QuickStopHTTPServer(HTTPServer):
    """HTTPServer whose stop() takes milliseconds instead of the default 0.5 s poll."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.02)


FakeT = TypeVar("FakeT", bound=ScriptedFake)


@contextmanager
def serving(make: Callable[[HTTPServer], FakeT]) -> Iterator[FakeT]:
    """A fresh fake listening on 127.0.0.1, stopped at the end."""
    server = _QuickStopHTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    fake = make(server)
    try:
        yield fake
    finally:
        fake.released.set()
        server.stop()
    # A bug in the fake's handlers, or a request to a path it does not serve, shows up as an
    # error here rather than as a confusing 500 seen by the client.
    server.check()


class _Answer(Protocol):
    @property
    def ip(self) -> str: ...


AnswerT = TypeVar("AnswerT", bound=_Answer)


@dataclass
class Sink(Generic[AnswerT]):
    """A lookup client's on_results callback that keeps everything it is given, by IP."""

    results: dict[str, AnswerT] = field(default_factory=dict)
    failures: dict[str, LookupFailure] = field(default_factory=dict)
    calls: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, results: list[AnswerT], failures: list[LookupFailure]) -> None:
        self.calls.append((len(results), len(failures)))
        self.results.update((r.ip, r) for r in results)
        self.failures.update((f.ip, f) for f in failures)


def override_settings(monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str,
                      overrides: dict[str, Any]) -> dict[str, Any]:
    """Every ``module.<name>(...)`` (the settings class a pass builds through the module attribute)
    takes ``overrides`` on top of what the pass gives; returns the dict, which a test may extend
    before the pass is built."""
    real = getattr(module, name)

    def settings(**values: Any) -> Any:
        return real(**(values | overrides))

    monkeypatch.setattr(module, name, settings)
    return overrides
