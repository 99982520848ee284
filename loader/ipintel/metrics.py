"""`--metrics-file`: Prometheus metrics of a run, for node_exporter's textfile collector.

`ipintel ingest` and `ipintel enrich` each write their own file (node_exporter merges every
`*.prom` file of its `--collector.textfile.directory`, so no metric is in both). The file is
written once, when a run that took its lock ends (finished, failed or interrupted), by
prometheus_client's `write_to_textfile`: a temporary file beside it, then a rename, so a scrape
never reads half a file. A run that never started (bad configuration, exit 2; another run holds
the lock, exit 3) leaves the file as it was: alert on the last run's end time growing old.

What the tables already keep (runs, coverage, freshness, the snapshot backlog) is read from the
database when the file is written (named queries `metrics_*`); the invocation adds its own
outcome (state, exit code, times). Labels are source names, run statuses and run states only:
never a message, an address, a path or a secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from ipintel import db
from ipintel.config import redact_dsn
from ipintel.progress import Reporter

Command = Literal["ingest", "enrich"]
# The outcome of an invocation, as the status file says it too.
RUN_STATES = ("finished", "failed", "interrupted")
SUFFIX = ".prom"  # node_exporter's textfile collector reads only these
# Metrics are read after the run, also after Ctrl-C or systemd's SIGTERM: bounded, so a stop
# never waits long on them (systemd's TimeoutStopSec is 90 s by default).
STATEMENT_TIMEOUT_MS = 20_000


class MetricsFileError(ValueError):
    """The metrics file cannot be written where it is named (CLI exit 2, before the run)."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str  # as exposed (a counter's name ends in _total)
    kind: Literal["gauge", "counter"]
    help: str
    labels: tuple[str, ...] = ()


def _specs(*specs: MetricSpec) -> dict[str, MetricSpec]:
    return {s.name: s for s in specs}


# Every metric each command's file holds, in the order written; docs/operations.md lists them and
# the Grafana dashboard's test checks its queries against these names.
CATALOGUE: dict[Command, dict[str, MetricSpec]] = {
    "ingest": _specs(
        MetricSpec("ipintel_ingest_last_run_start_timestamp_seconds", "gauge",
                   "When the last ingest run that took the ingest lock started (Unix time)."),
        MetricSpec("ipintel_ingest_last_run_end_timestamp_seconds", "gauge",
                   "When that run ended (Unix time), whatever its outcome."),
        MetricSpec("ipintel_ingest_last_run_exit_code", "gauge",
                   "Exit code of that run: 0 done, 1 rejected lines or a database error mid-run, 2 the "
                   "database refused us, 130 interrupted."),
        MetricSpec("ipintel_ingest_last_run_state", "gauge",
                   "1 for the outcome of that run (finished, failed, interrupted), 0 for the others.",
                   ("state",)),
        MetricSpec("ipintel_ingest_last_run_lines", "gauge", "Lines that run read (loaded or rejected)."),
        MetricSpec("ipintel_ingest_last_run_events", "gauge", "Events that run merged into the tiers."),
        MetricSpec("ipintel_ingest_last_run_rejects", "gauge", "Lines that run rejected (ipintel.ingest_rejects)."),
        MetricSpec("ipintel_ingest_last_run_sessions_new", "gauge", "Sessions that run created."),
        MetricSpec("ipintel_ingest_last_run_ips_new", "gauge", "Source IPs that run added to ip_inventory."),
        MetricSpec("ipintel_ingest_last_run_files_read", "gauge", "Files with new lines that run read."),
        MetricSpec("ipintel_ingest_runs_total", "counter",
                   "Ingest runs that ended, by status (ipintel.ingest_runs).", ("status",)),
        MetricSpec("ipintel_ingest_lines_total", "counter", "Lines read by every ingest run (loaded or rejected)."),
        MetricSpec("ipintel_ingest_events_total", "counter", "Events merged by every ingest run (rows ingested)."),
        MetricSpec("ipintel_ingest_rejects_total", "counter", "Lines rejected by every ingest run."),
    ),
    "enrich": _specs(
        MetricSpec("ipintel_enrich_last_run_start_timestamp_seconds", "gauge",
                   "When the last enrich run that took the enrich lock started (Unix time)."),
        MetricSpec("ipintel_enrich_last_run_end_timestamp_seconds", "gauge",
                   "When that run ended (Unix time), whatever its outcome."),
        MetricSpec("ipintel_enrich_last_run_exit_code", "gauge",
                   "Exit code of that run: 0 done (a spent daily quota included), 1 recorded failures or a "
                   "database error mid-run, 2 bad configuration met mid-run, 130 interrupted."),
        MetricSpec("ipintel_enrich_last_run_state", "gauge",
                   "1 for the outcome of that run (finished, failed, interrupted), 0 for the others.",
                   ("state",)),
        MetricSpec("ipintel_enrich_last_run_snapshots_taken", "gauge",
                   "Sessions whose snapshot that run filled (take_snapshots)."),
        MetricSpec("ipintel_enrich_last_pass_ips_due", "gauge",
                   "IPs due for the source when its last pass started.", ("source",)),
        MetricSpec("ipintel_enrich_last_pass_ips_fetched", "gauge",
                   "IPs the source answered for in its last pass.", ("source",)),
        MetricSpec("ipintel_enrich_last_pass_ips_merged", "gauge",
                   "IPs whose answer the last pass merged.", ("source",)),
        MetricSpec("ipintel_enrich_last_pass_ips_failed", "gauge",
                   "IPs the last pass recorded as failed.", ("source",)),
        MetricSpec("ipintel_enrich_last_pass_duration_seconds", "gauge",
                   "How long the source's last pass took.", ("source",)),
        MetricSpec("ipintel_enrich_last_pass_end_timestamp_seconds", "gauge",
                   "When the source's last pass ended (Unix time).", ("source",)),
        MetricSpec("ipintel_enrich_last_pass_status", "gauge",
                   "1 for the status of the source's last pass (ipintel.enrichment_runs.status).",
                   ("source", "status")),
        MetricSpec("ipintel_enrich_runs_total", "counter",
                   "Passes that ended, by source and status (ipintel.enrichment_runs).", ("source", "status")),
        MetricSpec("ipintel_enrich_ips_due_total", "counter", "IPs due, summed over every pass.", ("source",)),
        MetricSpec("ipintel_enrich_ips_fetched_total", "counter", "IPs fetched, summed over every pass.",
                   ("source",)),
        MetricSpec("ipintel_enrich_ips_merged_total", "counter", "IPs merged, summed over every pass.",
                   ("source",)),
        MetricSpec("ipintel_enrich_ips_failed_total", "counter", "IPs recorded as failed, summed over every pass.",
                   ("source",)),
        MetricSpec("ipintel_enrichment_ips", "gauge",
                   "IPs by freshness of the source's answer (ipintel.enrichment_coverage; bogons excluded): "
                   "fresh, stale or never_fetched.", ("source", "freshness")),
        MetricSpec("ipintel_enrichment_open_failures", "gauge",
                   "IPs with an open failure for the source (ipintel.enrichment_failures).", ("source",)),
        MetricSpec("ipintel_enrichment_oldest_fresh_age_seconds", "gauge",
                   "Age of the oldest answer of the source that is still fresh (ipintel.enrichment_state); "
                   "absent when the source has none.", ("source",)),
        MetricSpec("ipintel_snapshots_incomplete", "gauge",
                   "Sessions whose snapshot is still incomplete (ipintel.snapshot_backlog)."),
        MetricSpec("ipintel_snapshots_waiting", "gauge",
                   "Incomplete sessions that still wait for the source (snapshot_backlog.waiting_for).",
                   ("source",)),
    ),
}


def check_path(path: Path) -> None:
    """Raise MetricsFileError unless `path` is a `.prom` file in an existing folder we may write
    to: said before the run starts, not found out after an hour of enrichment."""
    if not path.name.endswith(SUFFIX):
        raise MetricsFileError(f"--metrics-file {path}: the name must end in {SUFFIX} "
                               "(node_exporter's textfile collector reads only those)")
    folder = path.parent
    if not folder.is_dir():
        raise MetricsFileError(f"--metrics-file {path}: no such folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MetricsFileError(f"--metrics-file {path}: the folder {folder} is not writable "
                               "(the file is written beside it, then renamed)")
    if path.is_dir():
        raise MetricsFileError(f"--metrics-file {path} is a folder")


class _Families:
    """A prometheus_client collector that yields metric families built beforehand."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class _Builder:
    """Metric families of one command's catalogue, looked up by name (a typo fails at once)."""

    def __init__(self, command: Command) -> None:
        self.specs = CATALOGUE[command]
        self.families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}

    def family(self, name: str) -> GaugeMetricFamily | CounterMetricFamily:
        if name not in self.families:
            spec = self.specs[name]
            if spec.kind == "counter":
                self.families[name] = CounterMetricFamily(name.removesuffix("_total"), spec.help, labels=spec.labels)
            else:
                self.families[name] = GaugeMetricFamily(name, spec.help, labels=spec.labels)
        return self.families[name]

    def add(self, name: str, value: float | int | None, *labels: str) -> None:
        if value is None:  # unknown: the sample is left out, never written as 0
            return
        family = self.family(name)
        assert len(labels) == len(self.specs[name].labels), name
        family.add_metric(list(labels), float(value))

    def ordered(self) -> list[Metric]:
        """The families in catalogue order; a family without samples is still declared."""
        return [self.family(name) for name in self.specs]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How an invocation ended, as the status file says it."""

    state: str  # finished, failed or interrupted
    exit_code: int
    started_at: datetime
    ended_at: datetime


def _outcome(b: _Builder, command: Command, outcome: RunOutcome) -> None:
    prefix = f"ipintel_{command}_last_run"
    b.add(f"{prefix}_start_timestamp_seconds", outcome.started_at.timestamp())
    b.add(f"{prefix}_end_timestamp_seconds", outcome.ended_at.timestamp())
    b.add(f"{prefix}_exit_code", outcome.exit_code)
    for state in RUN_STATES:
        b.add(f"{prefix}_state", 1 if state == outcome.state else 0, state)


def _rows(conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return db.query_all(conn, db.query(name), params)


def _ingest_from_database(b: _Builder, conn: psycopg.Connection[Any], run_id: int) -> None:
    for row in _rows(conn, "metrics_ingest_run", {"run_id": run_id}):
        for column in ("lines", "events", "rejects", "sessions_new", "ips_new", "files_read"):
            b.add(f"ipintel_ingest_last_run_{column}", row[column])
    for row in _rows(conn, "metrics_ingest_runs"):
        if row["every_status"]:
            b.add("ipintel_ingest_lines_total", row["lines"])
            b.add("ipintel_ingest_events_total", row["events"])
            b.add("ipintel_ingest_rejects_total", row["rejects"])
        else:
            b.add("ipintel_ingest_runs_total", row["runs"], row["status"])


def _enrich_from_database(b: _Builder, conn: psycopg.Connection[Any]) -> None:
    for row in _rows(conn, "metrics_last_passes"):
        source = row["source"]
        for column in ("due", "fetched", "merged", "failed"):
            b.add(f"ipintel_enrich_last_pass_ips_{column}", row[column], source)
        b.add("ipintel_enrich_last_pass_duration_seconds", row["seconds"], source)
        b.add("ipintel_enrich_last_pass_end_timestamp_seconds", row["finished_at"], source)
        b.add("ipintel_enrich_last_pass_status", 1, source, row["status"])
    for row in _rows(conn, "metrics_enrichment_runs"):
        if row["every_status"]:
            for column in ("due", "fetched", "merged", "failed"):
                b.add(f"ipintel_enrich_ips_{column}_total", row[column], row["source"])
        else:
            b.add("ipintel_enrich_runs_total", row["runs"], row["source"], row["status"])
    for row in _rows(conn, "metrics_enrichment_freshness"):
        source = row["source"]
        for freshness in ("fresh", "stale", "never_fetched"):
            b.add("ipintel_enrichment_ips", row[freshness], source, freshness)
        b.add("ipintel_enrichment_open_failures", row["failed"], source)
        b.add("ipintel_enrichment_oldest_fresh_age_seconds", row["oldest_fresh_age_seconds"], source)
    for row in _rows(conn, "metrics_snapshot_backlog"):
        if row["source"] is None:
            b.add("ipintel_snapshots_incomplete", row["sessions"])
        else:
            b.add("ipintel_snapshots_waiting", row["sessions"], row["source"])


def write_ingest(path: Path, dsn: str, outcome: RunOutcome, *, run_id: int, reporter: Reporter) -> None:
    """Write the ingest metrics file for run `run_id`; never raises for the database or the file
    (a line on the reporter says what is missing)."""
    b = _Builder("ingest")
    _outcome(b, "ingest", outcome)
    _from_database(dsn, reporter, lambda conn: _ingest_from_database(b, conn, run_id))
    _write(path, b.ordered(), reporter)


def write_enrich(path: Path, dsn: str, outcome: RunOutcome, *, snapshots_taken: int | None,
                 reporter: Reporter) -> None:
    """Write the enrich metrics file; never raises for the database or the file."""
    b = _Builder("enrich")
    _outcome(b, "enrich", outcome)
    b.add("ipintel_enrich_last_run_snapshots_taken", snapshots_taken)
    _from_database(dsn, reporter, lambda conn: _enrich_from_database(b, conn))
    _write(path, b.ordered(), reporter)


def _from_database(dsn: str, reporter: Reporter, read: Callable[[psycopg.Connection[Any]], None]) -> None:
    """Run `read(conn)` on a connection of its own (the run's may be the one that broke); when
    the database does not answer, the file holds the run's outcome only, and a line says so."""
    try:
        with db.connection(dsn, autocommit=True) as conn:
            conn.execute(db.query("metrics_statement_timeout"), {"ms": STATEMENT_TIMEOUT_MS})
            read(conn)
    except psycopg.Error as exc:
        reporter.note(f"metrics: only the run's outcome is written, the database did not answer: "
                      f"{redact_dsn(db.describe_error(exc), dsn)}")


def _write(path: Path, families: Iterable[Metric], reporter: Reporter) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families)))
    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        reporter.note(f"metrics: cannot write {path}: {exc.strerror or exc}")
