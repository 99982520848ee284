"""Progress for operators: a rich bar on a terminal, plain periodic lines otherwise (cron, logs)."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

PLAIN_INTERVAL_SECONDS = 10.0


class Reporter:
    """One task at a time: `start(label, total, unit)`, `advance(n, **info)`, `finish()`.

    `unit` is "bytes" or "items". `info` (e.g. events=..., rate=...) appears on plain lines.
    Code that waits calls `advance(0, **info)` every second or so: a plain line then still goes
    out every PLAIN_INTERVAL_SECONDS (cron logs show the run is alive during a stall), and on a
    terminal the bar's info is refreshed.
    """

    def __init__(self, console: Console | None = None, *, interactive: bool | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._label = ""
        self._done = 0
        self._total: int | None = None
        self._last_line = 0.0
        self._started = 0.0

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.finish()

    def start(self, label: str, total: int | None, unit: str = "items") -> None:
        self.finish()
        self._label, self._total, self._done = label, total, 0
        self._started = self._last_line = time.monotonic()
        if self.interactive:
            columns = [TextColumn("{task.description}"), BarColumn()]
            if unit == "bytes":
                columns += [DownloadColumn(), TransferSpeedColumn()]
            else:
                columns += [MofNCompleteColumn()]
            columns += [TextColumn("{task.fields[info]}"), TimeElapsedColumn()]
            self._progress = Progress(*columns, console=self.console, transient=False)
            self._progress.start()
            self._task = self._progress.add_task(label, total=total, info="")
        else:
            self.console.print(f"{label}: started" + (f" ({total:,} {unit})" if total else ""))

    def advance(self, n: int, **info: object) -> None:
        self._done += n
        text = " ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in info.items())
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=n, info=text)
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_INTERVAL_SECONDS:
            self._last_line = now
            share = f" {100 * self._done / self._total:.0f}%" if self._total else ""
            self.console.print(f"{self._label}:{share} {text}".rstrip())

    def note(self, text: str) -> None:
        """One line of its own (above the bar on a terminal), e.g. why a file was left for later."""
        self.console.print(text, markup=False)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
        self._label = ""
