"""`ipintel enrich`: the passes of the registered sources and what they share.

The sources are rows of ipintel.enrichment_policy, run in its pass_order (ipintel.passes.
make_passes). Every pass has the same shape: a run row (`ipintel.start_run`), the IPs SQL says
are due (`ipintel.run_due_ips`), fetched in batches; each batch is ONE transaction: COPY the
results into ipintel_staging.enrichment_results and the failures into
ipintel_staging.enrichment_failures, then one call of `ipintel.merge_batch(run, batch)`, which
runs the source's merge function and keeps the run's counters. A crash loses at most the batch
in flight; merged data is never touched by a later failure.

One enrichment at a time per database: a PostgreSQL advisory lock (`ipintel.enrich`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from ipintel import db, metrics
from ipintel.config import Settings
from ipintel.copytext import copy_field
from ipintel.locks import Lock, LockHeld as LockHeld  # LockHeld re-exported: enrich() raises it
from ipintel.progress import Reporter

ENRICH_LOCK = "ipintel.enrich"
INTERRUPTED_EXIT_CODE = 130  # Ctrl-C or SIGTERM: the CLI's exit code, also in the status file


class EnrichError(RuntimeError):
    """A pass cannot go on: raised from prepare() it is bad configuration (CLI exit 2); raised
    from fetch() it fails that pass only (exit 1). ConfigurationError stops the whole run."""


class ConfigurationError(EnrichError):
    """The source refused our configuration mid-pass (e.g. the API key): the run stops, exit 2."""


class BrokenDataError(EnrichError):
    """A local data file turned out broken mid-pass (corrupt records in a MaxMind file): that pass
    fails, what it merged stays, the other passes run; the exit code is 2, bad configuration."""


@dataclass(frozen=True, slots=True)
class Failure:
    ip: str
    error: str
    retryable: bool = True
    retry_after: datetime | None = None


@dataclass
class PassSummary:
    source: str
    run_id: int | None = None
    status: str = "running"
    due: int = 0
    fetched: int = 0
    merged: int = 0
    failed: int = 0
    seconds: float = 0.0
    message: str | None = None
    quota_spent: bool = False  # stopped by the source's daily quota or budget: not a failure


@dataclass
class EnrichSummary:
    passes: list[PassSummary] = field(default_factory=list)
    snapshots: int = 0
    notices: list[str] = field(default_factory=list)
    broken_configuration: bool = False  # a pass failed on BrokenDataError

    @property
    def exit_code(self) -> int:
        """0 all done, 1 recorded failures, 2 a pass failed on broken configuration (a corrupt
        MaxMind file). A pass "stopped" by a spent daily quota or budget (quota_spent) is normal
        daily operation (its notice says how many IPs stay due): still 0, so cron stays quiet;
        stopped for another reason (e.g. out of time) it is 1."""
        if self.broken_configuration:
            return 2
        bad = {"finished_with_failures", "failed", "interrupted"}
        return 1 if any(p.status in bad or (p.status == "stopped" and not p.quota_spent)
                        for p in self.passes) else 0


class StatusFile:
    """A JSON document for cron monitoring, rewritten atomically as the run progresses.

    A pass that waits on a remote service calls `keepalive` every second or so: the document is
    then rewritten at least every KEEPALIVE_SECONDS, so a fresh `updated_at` tells a monitor the
    run is alive even while no batch completes.
    """

    KEEPALIVE_SECONDS = 10.0

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.started = datetime.now(UTC)
        self._written = time.monotonic()

    def keepalive(self, summary: EnrichSummary) -> None:
        if time.monotonic() - self._written >= self.KEEPALIVE_SECONDS:
            self.write("running", summary)

    def write(self, state: str, summary: EnrichSummary, exit_code: int | None = None) -> None:
        self._written = time.monotonic()
        if self.path is None:
            return
        doc = {
            "tool": "ipintel enrich",
            "state": state,
            "pid": os.getpid(),
            "started_at": self.started.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "exit_code": exit_code,
            "passes": [asdict(p) for p in summary.passes],
            "snapshots_taken": summary.snapshots,
            "notices": summary.notices,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


_encode_json = msgspec.json.encode


def copy_json(document: Any) -> bytes:
    """A document as a field of COPY text: JSON (msgspec, in C: ~9x json.dumps; what msgspec will
    not encode, an integer beyond 64 bits or a key that is not a string, goes through json, which
    says why) with its backslashes doubled. JSON holds no raw tab, newline or carriage return
    (escaped in its strings), so that is all COPY text needs."""
    try:
        text = _encode_json(document)
    except (TypeError, OverflowError, ValueError):
        text = json.dumps(document, ensure_ascii=False, allow_nan=False).encode()
    return text.replace(b"\\", b"\\\\")


def copy_results(run_id: int | None, source: str, fetched_at: datetime, build: int | None,
                 results: Sequence[tuple[str, Any]]) -> bytes:
    """A batch's answers as COPY text for copy_enrichment_results, without the batch id (the
    writer puts it in front of each line). Built here rather than by psycopg's write_row, whose
    Jsonb goes through json.dumps: 0.37 s per 200,000 MaxMind documents instead of about 1 s,
    and made in the fetching thread, so the writer thread only sends (Batches)."""
    head = f"{copy_field(run_id)}\t{copy_field(source)}\t".encode()
    tail = f"\t{fetched_at.isoformat()}\t{copy_field(build)}\t".encode()
    return b"".join(head + copy_field(ip).encode() + tail + copy_json(document) + b"\n"
                    for ip, document in results)


class Batches:
    """Writes batches of one pass: staging COPY + merge + failures, one transaction each.

    A pipeline one batch deep: `write` hands its batch to a writer thread with its own
    connection and returns, so the pass fetches the next batch (MaxMind lookups, Team Cymru's
    socket, GreyNoise's HTTP) while PostgreSQL COPYs and merges this one; the next `write` first
    waits for that batch to commit. The counters, the progress line and the status file follow
    the committed batches only. `finish` waits for the last one; the pass calls it whatever
    happens (an error, Ctrl-C), so a batch handed over is committed or rolled back whole before
    the pass ends. An error of the writer is raised by the next `write` or by `finish`.
    """

    def __init__(self, conn: psycopg.Connection[Any], source: str, summary: PassSummary,
                 status: StatusFile, overall: EnrichSummary, reporter: Reporter, *, build: int | None,
                 dsn: str | None = None) -> None:
        self.conn, self.source, self.summary = conn, source, summary
        # Freshness beside each answer, not inside it: the merge records fetched_at and build in
        # ipintel.enrichment_state; the document holds the facts only.
        self.build = build
        self.status, self.overall, self.reporter = status, overall, reporter
        # dsn None: no pipeline, each write commits before it returns (on `conn`).
        self.dsn = dsn
        self._writer: ThreadPoolExecutor | None = None
        self._writer_conn: psycopg.Connection[Any] | None = None
        self._in_flight: tuple[Future[tuple[int, int]], int, int] | None = None

    def notice(self, text: str) -> None:
        self.overall.notices.append(text)

    def alive(self, **info: object) -> None:
        """For a pass waiting on a remote service, every second or so: the progress line (with
        `info`, e.g. how long it has waited) and the status file say the run is alive."""
        self.reporter.advance(0, merged=self.summary.merged, failed=self.summary.failed, **info)
        self.status.keepalive(self.overall)

    def spend_budget(self, want: int, daily_limit: int) -> int:
        """Lookups granted from today's shared budget (counted in ipintel.api_budget)."""
        row = db.query_one(self.conn, db.query("spend_budget"),
                           {"source": self.source, "want": want, "limit": daily_limit})
        return int(row["n"]) if row else 0

    def write(self, results: Sequence[tuple[str, dict[str, Any]]], failures: Sequence[Failure]) -> None:
        if not results and not failures:
            return
        # Formatted here, while the writer sends the batch before: it then only does I/O.
        payload = copy_results(self.summary.run_id, self.source, datetime.now(UTC), self.build, results)
        self._settle()  # the previous batch committed (or its error raised) before the next goes
        if self.dsn is None:
            counts = self._write_batch(self.conn, payload, list(failures))
            self._account(counts, len(results), len(failures))
            return
        if self._writer is None or self._writer_conn is None:
            self._writer_conn = db.connect(self.dsn, autocommit=True)
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ipintel-{self.source}-writer")
        future = self._writer.submit(self._write_batch, self._writer_conn, payload, list(failures))
        self._in_flight = (future, len(results), len(failures))

    def finish(self) -> None:
        """Wait for the batch in flight to commit, then close the writer. Raises its error."""
        try:
            self._settle()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            if self._writer_conn is not None:
                self._writer_conn.close()
                self._writer_conn = None

    def _settle(self) -> None:
        if self._in_flight is None:
            return
        future, n_results, n_failures = self._in_flight
        self._in_flight = None
        # Ctrl-C while waiting: the batch still commits or rolls back whole (finish waits again).
        try:
            counts = future.result()
        except KeyboardInterrupt:
            self._in_flight = (future, n_results, n_failures)
            raise
        self._account(counts, n_results, n_failures)

    def _account(self, counts: tuple[int, int], n_results: int, n_failures: int) -> None:
        merged_n, recorded_n = counts
        self.summary.fetched += n_results
        self.summary.merged += merged_n
        self.summary.failed += recorded_n
        self.reporter.advance(n_results + n_failures, merged=self.summary.merged, failed=self.summary.failed)
        self.status.write("running", self.overall)

    def _write_batch(self, conn: psycopg.Connection[Any], payload: bytes, failures: list[Failure]) -> tuple[int, int]:
        run_id = self.summary.run_id

        def write_batch() -> tuple[int, int]:
            batch = db.query_one(conn, db.query("next_batch_id"))
            assert batch is not None
            batch_id = batch["id"]
            with conn.cursor() as cur:
                db.copy_batch(cur, db.query("copy_enrichment_results"), batch_id, payload)
                if failures:
                    with cur.copy(db.query("copy_enrichment_failures")) as copy:
                        for f in failures:
                            copy.write_row((run_id, batch_id, self.source, f.ip, f.error, f.retryable, f.retry_after))
            counts = db.query_one(conn, db.query("merge_batch"), {"run": run_id, "batch": batch_id})
            assert counts is not None
            return int(counts["merged"]), int(counts["failed"])

        # A concurrent ingest takes the same locks in the same order (ipintel.lock_for_merge), so a
        # deadlock should not happen; should one happen all the same, the batch runs again whole.
        return db.in_transaction_with_retry(conn, write_batch)


class Pass(Protocol):
    source: str

    def prepare(self) -> dict[str, Any]:
        """Check configuration, open what is needed; return provenance for the runs table.
        Raise EnrichError when the pass cannot run, SkipPass when it is not configured."""

    def current_build(self) -> int | None:
        """A data build number, staged with every answer: IPs fetched from an older build are due
        again (MaxMind); None for live services."""

    def fetch(self, ips: list[str], batches: Batches) -> Stopped | None:
        """Fetch `ips` and hand results to `batches.write`. Return Stopped when the pass ended
        early on purpose (a quota, a time budget), else None."""

    def close(self) -> None: ...


class SkipPass(Exception):
    """The source is not configured (e.g. no GreyNoise key): skipped, said plainly."""


@dataclass(frozen=True, slots=True)
class Stopped:
    """What fetch() returns when it ended the pass early on purpose; the rest stays due.
    quota: the source's daily quota or budget is spent, which is normal daily operation (the
    run still exits 0); otherwise (e.g. out of time) the run exits 1."""

    message: str
    quota: bool = False


@dataclass
class EnrichOptions:
    sources: Sequence[str] = ()  # () = every registered source, in pass order
    limit: int | None = None
    ips: Sequence[str] = ()
    asns: Sequence[int] = ()  # --asn: the IPs whose current ASN is one of these (ipintel.ips_in)
    countries: Sequence[str] = ()  # --country: the IPs geolocated in one of these
    force: bool = False
    wait: bool = False
    status_file: Path | None = None
    metrics_file: Path | None = None  # Prometheus text format, written when the run ends


def _holder_run(dsn: str) -> str:
    with db.connection(dsn, autocommit=True) as conn:
        row = db.query_one(conn, db.query("running_enrichment_run"))
    if row is None:
        return "no pass running: it is starting, or between two passes"
    return f"run {row['run_id']} ({row['source']}, started {row['started_at']:%Y-%m-%d %H:%M:%S%z})"


def enrich(settings: Settings, options: EnrichOptions, *, passes: Sequence[Pass],
           reporter: Reporter | None = None) -> EnrichSummary:
    """Run the passes (ipintel.passes.make_passes: the registered sources, in pass order).
    Raises LockHeld (with the holder's run) when another enrich runs."""
    reporter = reporter or Reporter()
    summary = EnrichSummary()
    status = StatusFile(options.status_file)
    try:
        lock = Lock(settings.database_url, ENRICH_LOCK, wait=options.wait).__enter__()
    except LockHeld as exc:
        raise LockHeld(f"{exc.name} ({_holder_run(settings.database_url)})", exc.holder_pid,
                       exc.holder_since) from None

    def ended(state: str, exit_code: int) -> None:
        # The run's last word, still under the lock: the status file, then the metrics file.
        status.write(state, summary, exit_code)
        if options.metrics_file is not None:
            outcome = metrics.RunOutcome(state, exit_code, status.started, datetime.now(UTC))
            metrics.write_enrich(options.metrics_file, settings.database_url, outcome,
                                 snapshots_taken=summary.snapshots if state == "finished" else None,
                                 reporter=reporter)

    try:
        # We hold the lock: any run still marked running was killed.
        lock.conn.execute(db.query("interrupt_abandoned_runs"))
        status.write("running", summary)
        with db.connection(settings.database_url, autocommit=True) as conn:
            selected = _selected_ips(conn, options, summary)
            for p in passes:
                _run_pass(conn, lock.conn, p, options, selected, summary, status, reporter, settings.redact,
                          settings.database_url)
            # Whatever ran: SQL decides, per session and field, which sources are still awaited;
            # planned with statistics (sessions loaded a moment ago have none yet).
            db.query_one(conn, db.query("analyze_sessions_without_statistics"))
            row = db.query_one(conn, db.query("take_snapshots"))
            summary.snapshots = int(row["n"]) if row else 0
            # The days those snapshots (and ingest since the last roll-up) touched, recounted.
            db.query_one(conn, db.query("roll_up_attribution"))
        ended("finished", summary.exit_code)
        return summary
    except KeyboardInterrupt:
        # Ctrl-C, or SIGTERM (systemd, timeout), which the CLI raises as KeyboardInterrupt too.
        ended("interrupted", INTERRUPTED_EXIT_CODE)
        raise
    except BaseException as exc:
        # The exit code the CLI gives: 2 for configuration (also a database that refuses us), else 1.
        ended("failed", 2 if isinstance(exc, EnrichError) or db.is_configuration_error(exc) else 1)
        raise
    finally:
        lock.__exit__(None, None, None)


def _selected_ips(conn: psycopg.Connection[Any], options: EnrichOptions, summary: EnrichSummary) -> list[str] | None:
    """The IPs a refresh on demand re-fetches (--ip, and the IPs of --asn / --country, resolved
    once by SQL before the first pass: a pass that moves an IP to another ASN does not change
    what the next pass fetches), or None: no selection, every due IP."""
    if not (options.ips or options.asns or options.countries):
        return None
    selected = list(options.ips)
    if options.asns or options.countries:
        row = db.query_one(conn, db.query("ips_in"), {"asns": list(options.asns), "countries": list(options.countries)})
        found = list(row["ips"]) if row else []
        what = " and ".join(part for part in (
            f"AS {', '.join(map(str, options.asns))}" if options.asns else "",
            f"country {', '.join(options.countries)}" if options.countries else "") if part)
        summary.notices.append(f"{what}: {len(found):,} IPs in ip_inventory to re-fetch" if found
                               else f"{what}: no IP in ip_inventory: nothing to re-fetch")
        selected += found  # an IP named twice is fetched once (ips_due reads ip_inventory)
    return selected


def _run_pass(conn: psycopg.Connection[Any], lock_conn: psycopg.Connection[Any], p: Pass,
              options: EnrichOptions, selected: list[str] | None, summary: EnrichSummary, status: StatusFile,
              reporter: Reporter, redact: Callable[[str], str], dsn: str | None = None) -> PassSummary:
    """One pass. Its messages (run row, status file, notices) go through `redact`: an exception's
    text may quote anything, a key included. With `dsn`, batches are written by a second
    connection while the pass fetches the next one (Batches)."""
    ps = PassSummary(p.source)
    summary.passes.append(ps)
    started = time.monotonic()
    policy = db.query_one(conn, db.query("source_enabled"), {"source": p.source})
    try:
        if policy is None or not policy["enabled"]:
            raise SkipPass(f"{p.source} is disabled in ipintel.enrichment_policy")
        provenance = p.prepare()
    except SkipPass as exc:
        ps.status, ps.message = "skipped", redact(str(exc))
        summary.notices.append(f"{p.source}: skipped: {ps.message}")
        _record_run(lock_conn, ps, {})
        return ps
    except EnrichError as exc:
        ps.status, ps.message = "failed", redact(str(exc))
        _record_run(lock_conn, ps, {})
        raise
    notice = provenance.pop("notice", None)
    if notice:
        summary.notices.append(redact(notice))
    _record_run(lock_conn, ps, provenance)
    status.write("running", summary)  # the pass shows as running from its start, not its first batch
    try:
        build = p.current_build()
        due = db.query_all(
            lock_conn, db.query("run_due_ips"),
            {"run": ps.run_id, "limit": options.limit, "force": options.force or selected is not None,
             "ips": selected, "build": build})
        ps.due = len(due)
        reporter.start(f"{p.source}", ps.due, unit="items")
        batches = Batches(conn, p.source, ps, status, summary, reporter, build=build, dsn=dsn)
        try:
            stopped = p.fetch([r["ip"] for r in due], batches)
        finally:
            batches.finish()  # the batch in flight commits (or fails) before the pass ends, whatever happened
        reporter.finish()
        if stopped:
            ps.status, ps.message, ps.quota_spent = "stopped", redact(stopped.message), stopped.quota
        else:
            ps.status = "finished_with_failures" if ps.failed else "succeeded"
    except KeyboardInterrupt as exc:
        ps.status, ps.message = "interrupted", f"interrupted ({exc or 'Ctrl-C'}); merged batches are kept"
        raise
    except ConfigurationError as exc:
        ps.status, ps.message = "failed", redact(str(exc))
        raise
    except EnrichError as exc:
        ps.status, ps.message = "failed", redact(str(exc))
        summary.notices.append(f"{p.source}: failed: {ps.message}")
        summary.broken_configuration |= isinstance(exc, BrokenDataError)
    except Exception as exc:
        ps.status, ps.message = "failed", redact(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        reporter.finish()
        p.close()
        ps.seconds = round(time.monotonic() - started, 3)
        lock_conn.execute(db.query("finish_run"), {"status": ps.status, "message": ps.message, "run": ps.run_id})
        status.write("running", summary)
    return ps


def _record_run(lock_conn: psycopg.Connection[Any], ps: PassSummary, provenance: dict[str, Any]) -> None:
    row = db.query_one(lock_conn, db.query("start_run"),
                       {"source": ps.source, "status": ps.status, "provenance": Jsonb(provenance), "message": ps.message})
    assert row is not None
    ps.run_id = int(row["id"])
