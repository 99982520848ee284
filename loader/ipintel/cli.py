"""The `ipintel` command line: IP enrichment of Cowrie honeypot logs in PostgreSQL.

Exit codes: 0 all done (a pass stopped by its daily quota included); 1 finished with recorded
failures, or stopped by a database error mid-run (the next run resumes); 2 bad usage or
configuration; 3 another run holds the lock; 130 interrupted (Ctrl-C or SIGTERM). Every error
is one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

import psycopg
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.table import Table

from ipintel import __version__, config, db

if TYPE_CHECKING:  # annotations only: each command imports what it runs when it runs
    from ipintel import dated_files, enrich, geo, ranges, routing


class _DatedFile(Protocol):
    @property
    def path(self) -> Path: ...


_File = TypeVar("_File", bound=_DatedFile)
_Result = TypeVar("_Result", bound="dated_files.DatedLoad")

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C as shells report SIGINT; SIGTERM (systemd, timeout) too
# Commands that read or write the ipintel schema: they refuse a database not at this ipintel's head.
NEEDS_SCHEMA = frozenset({"ingest", "enrich", "status", "report", "verify", "demo", "snapshots", "routing", "geo",
                          "ranges"})

# Events merge_cowrie_events() turns into session facts; others are counted only.
KNOWN_EVENTIDS = frozenset({
    "cowrie.session.connect", "cowrie.session.closed", "cowrie.login.success", "cowrie.login.failed",
    "cowrie.command.input", "cowrie.command.failed", "cowrie.session.file_download",
    "cowrie.client.version", "cowrie.client.kex",
})

# soft_wrap: a message line in a cron log stays one line (a path is never split).
# markup=False, emoji=False: everything printed is data, some of it chosen by attackers (AS names,
# rejected log lines, paths); "[/]" or ":smile:" in it must print as written, never be parsed.
# Nothing here uses rich markup on purpose; use Text styles if some day something should.
console = Console(stderr=False, highlight=False, soft_wrap=True, markup=False, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


def print_tier_counts(conn: psycopg.Connection[Any]) -> None:
    table = Table(title="ipintel tiers")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in db.tier_counts(conn).items():
        table.add_row(name, f"{count:,}")
    console.print(table)


def print_summary(title: str, values: dict[str, object]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


def cmd_ingest(args: argparse.Namespace, settings: config.Settings) -> int:
    if not _metrics_file_ok("ingest", args.metrics_file):
        return EXIT_USAGE
    return run_ingest(settings, args.paths, chunk_lines=args.chunk_lines, metrics_file=args.metrics_file)


def _metrics_file_ok(command: str, path: Path | None) -> bool:
    """--metrics-file checked before the run (a folder missing is said now, not after it)."""
    from ipintel import metrics

    try:
        if path is not None:
            metrics.check_path(path)
    except metrics.MetricsFileError as exc:
        err_console.print(f"ipintel {command}: {exc}")
        return False
    return True


def run_ingest(settings: config.Settings, paths: Sequence[str], *, chunk_lines: int,
               metrics_file: Path | None = None) -> int:
    """ingest.ingest(), then its summary printed; its errors as one line and an exit code."""
    from ipintel import cowrie, ingest

    try:
        summary = ingest.ingest(settings.database_url, paths, chunk_lines=chunk_lines, metrics_file=metrics_file)
    except cowrie.CowrieInputError as exc:
        err_console.print(f"ipintel ingest: {exc}")
        return EXIT_USAGE
    except ingest.LockHeld as exc:
        err_console.print(f"ipintel ingest: another ingest is running ({exc}); try again when it ends")
        return EXIT_LOCKED
    except ingest.ParserFailed as exc:
        err_console.print(f"ipintel ingest: {exc}")
        return EXIT_FAILURES
    except KeyboardInterrupt as exc:
        err_console.print(f"ipintel ingest: interrupted ({exc or 'Ctrl-C'}); the chunk in flight was rolled back, "
                          "the next run resumes where this one stopped")
        return EXIT_INTERRUPTED
    for line in summary.first_rejects:
        err_console.print(f"rejected: {line}")
    if summary.rejects > len(summary.first_rejects):
        err_console.print(f"... {summary.rejects - len(summary.first_rejects):,} more in ipintel.ingest_rejects "
                          f"(run_id = {summary.run_id})")
    print_summary(f"ingest run {summary.run_id}", {
        "files read": summary.files_read, "files skipped (already ingested)": summary.files_skipped,
        "lines": summary.lines, "events": summary.events, "sessions new": summary.sessions_new,
        "sessions updated": summary.sessions_updated, "new IPs": summary.ips_new,
        "rejects": summary.rejects, "events/s": round(summary.events_per_second),
        "seconds": round(summary.seconds, 1),
        **({"seconds waiting for snapshot passes": round(summary.seconds_waiting, 1)}
           if summary.seconds_waiting else {})})
    unknown = {k: v for k, v in summary.event_counts.items() if k not in KNOWN_EVENTIDS}
    if unknown:
        console.print("eventids not summarised (counted only): "
                      + ", ".join(f"{k}={v:,}" for k, v in sorted(unknown.items())))
    return EXIT_FAILURES if summary.rejects else EXIT_OK


def cmd_enrich(args: argparse.Namespace, settings: config.Settings) -> int:
    from ipintel import enrich

    if getattr(args, "greynoise_tier", None):
        settings = dataclasses.replace(settings, greynoise_tier=args.greynoise_tier)
    if not _metrics_file_ok("enrich", args.metrics_file):
        return EXIT_USAGE
    return run_enrich(settings, enrich.EnrichOptions(
        sources=args.source or (), limit=args.limit, ips=args.ip or (), asns=args.asn or (),
        countries=args.country or (), force=args.force, wait=args.wait, status_file=args.status_file,
        metrics_file=args.metrics_file))


def run_enrich(settings: config.Settings, options: enrich.EnrichOptions) -> int:
    """enrich.enrich(), then its summary printed; its errors as one line and an exit code."""
    from ipintel import enrich, passes

    try:
        summary = enrich.enrich(settings, options, passes=passes.make_passes(settings, options.sources))
    except enrich.LockHeld as exc:
        err_console.print(f"ipintel enrich: another enrichment is running: {exc}. "
                          "Use --wait to wait for it.")
        return EXIT_LOCKED
    except enrich.EnrichError as exc:
        err_console.print(f"ipintel enrich: {settings.redact(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        err_console.print(f"ipintel enrich: interrupted ({exc or 'Ctrl-C'}); merged batches are kept, "
                          "the rest stays due")
        return EXIT_INTERRUPTED
    for notice in summary.notices:
        err_console.print(notice)
    table = Table(title="ipintel enrich")
    for column in ("source", "status", "due", "fetched", "merged", "failed", "seconds"):
        table.add_column(column, justify="left" if column in ("source", "status") else "right")
    for p in summary.passes:
        table.add_row(p.source, p.status, f"{p.due:,}", f"{p.fetched:,}", f"{p.merged:,}", f"{p.failed:,}",
                      f"{p.seconds:.1f}")
    console.print(table)
    for p in summary.passes:
        if p.message and p.status != "skipped":
            console.print(f"{p.source}: {p.message}")
    console.print(f"session snapshots taken: {summary.snapshots:,}")
    return summary.exit_code


def cmd_status(args: argparse.Namespace, settings: config.Settings) -> int:
    with db.connection(settings.database_url) as conn:
        coverage = db.query_all(conn, db.query("status_coverage"))
        runs = db.query_all(conn, db.query("status_last_runs"), {"n": args.runs})
        waiting = db.query_all(conn, db.query("status_open_failures"))
        print_tier_counts(conn)
    table = Table(title="coverage per source (bogons are never sent)")
    for column in ("source", "enabled", "ttl", "IPs", "fresh", "stale", "never fetched", "failed (open)", "bogons"):
        table.add_column(column, justify="left" if column in ("source", "ttl") else "right")
    for c in coverage:
        table.add_row(c["source"], "yes" if c["enabled"] else "no", c["ttl"], f"{c['ips']:,}", f"{c['fresh']:,}",
                      f"{c['stale']:,}", f"{c['never_fetched']:,}", f"{c['failed']:,}", f"{c['bogons_never_sent']:,}")
    console.print(table)
    if waiting:
        table = Table(title="failures waiting for retry (open)")
        for column in ("source", "retried", "IPs", "max attempts", "not before", "latest error"):
            table.add_column(column)
        for w in waiting:
            table.add_row(w["source"], "yes" if w["retryable"] else "no (never asked again)", f"{w['ips']:,}",
                          str(w["max_attempts"]), f"{w['next_retry']:%m-%d %H:%M}" if w["next_retry"] else "next run",
                          w["latest_error"])
        console.print(table)
    else:
        console.print("failures waiting for retry: none")
    table = Table(title="last enrichment runs")
    for column in ("run", "source", "status", "started", "due", "fetched", "merged", "failed", "message"):
        table.add_column(column)
    for r in runs:
        table.add_row(str(r["run_id"]), r["source"], r["status"], f"{r['started_at']:%m-%d %H:%M}",
                      f"{r['requested']:,}", f"{r['fetched']:,}", f"{r['merged']:,}", f"{r['failed']:,}",
                      r["message"] or "")
    console.print(table)
    return EXIT_OK


# `ipintel report`: one table per function of sql/097_reports.sql (an analyst can call them too),
# each table's title and the name of its query in sql/queries.sql.
REPORT_ALL_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # the window starts here unless --since says otherwise
REPORT_QUERIES: dict[str, str] = {
    "top ASNs": "report_top_asns",
    "top countries": "report_top_countries",
    "by IP type": "report_ip_types",
    "ASN moves": "report_asn_moves",
}


def cmd_report(args: argparse.Namespace, settings: config.Settings) -> int:
    until = datetime.now(UTC) if args.until is None else args.until
    since = REPORT_ALL_TIME if args.since is None else args.since
    if since >= until:
        err_console.print(f"ipintel report: --since {since:%Y-%m-%d} is not before --until {until:%Y-%m-%d}")
        return EXIT_USAGE
    if args.format == "table":
        if args.output is not None:
            err_console.print("ipintel report: --output is for --format json or html (the table is printed)")
            return EXIT_USAGE
        print_report(settings, since=since, until=until, top=args.top)
        return EXIT_OK
    return write_report(settings, args.format, args.output, since=since, until=until, top=args.top)


def write_report(settings: config.Settings, fmt: str, output: Path | None, *, since: datetime, until: datetime,
                 top: int) -> int:
    """The report as JSON or one self-contained HTML file, to `output` (stdout when None)."""
    from ipintel import report

    with db.connection(settings.database_url) as conn:
        data = report.collect(conn, since=since, until=until, top=top)
    text = report.to_json(data) if fmt == "json" else report.to_html(data)
    if output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        err_console.print(f"ipintel report: cannot write {output}: {exc.strerror or exc}")
        return EXIT_USAGE
    what = "no sessions in this window" if data["empty"] else f"{data['totals']['sessions']:,} sessions"
    err_console.print(f"ipintel report: {fmt} report written to {output} ({what})")
    return EXIT_OK


def print_report(settings: config.Settings, *, since: datetime, until: datetime, top: int) -> None:
    """The report tables for sessions from `since` (inclusive) to `until` (exclusive)."""
    params = {"since": since, "until": until, "top": top}
    with db.connection(settings.database_url) as conn:
        totals = db.query_one(conn, db.query("report_totals"), params)
        assert totals is not None
        if totals["sessions_in_database"] == 0:
            console.print("The database holds no sessions yet: nothing to report "
                          "(load Cowrie logs with `ipintel ingest`, then `ipintel enrich`).")
        for title, name in REPORT_QUERIES.items():
            rows = db.query_all(conn, db.query(name), params)
            table = Table(title=f"{title} ({since:%Y-%m-%d} .. {until:%Y-%m-%d})")
            if not rows:
                console.print(f"{title}: none in this window")
                continue
            for column in rows[0]:
                table.add_column(column)
            for row in rows:
                table.add_row(*(f"{v:,}" if isinstance(v, int) else f"{v:%Y-%m-%d %H:%M}" if isinstance(v, datetime)
                                else str(v) for v in row.values()))
            console.print(table)
        for row in db.query_all(conn, db.query("report_attributions")):
            console.print(f"{row['source']}: {row['attribution']}")


def cmd_verify(args: argparse.Namespace, settings: config.Settings) -> int:
    """`ipintel verify`: the maintained counts against a recount from scratch, the snapshot rules,
    the session rules, the integrity rules and the attribution rollup; exit 1 when anything drifted
    (ipintel.verify_counts, ipintel.verify_snapshots, ipintel.verify_sessions, ipintel.verify_integrity,
    ipintel.verify_attribution)."""
    started = datetime.now(UTC)
    with db.connection(settings.database_url) as conn:
        scope = db.query_one(conn, db.query("verify_scope"))
        counts = db.query_all(conn, db.query("verify_counts_summary"))
        rules = db.query_all(conn, db.query("verify_snapshots"))
        integrity = db.query_all(conn, db.query("verify_integrity"))
        session_rules = db.query_all(conn, db.query("verify_sessions"))
        attribution = db.query_all(conn, db.query("verify_attribution"))
    assert scope is not None
    seconds = (datetime.now(UTC) - started).total_seconds()
    if counts:
        table = Table(title="counts that drifted (stored value against a recount from scratch)")
        for column in ("table", "column", "rows", "first rows"):
            table.add_column(column, justify="right" if column == "rows" else "left")
        for c in counts:
            table.add_row(c["table_name"], c["column_name"], f"{c['rows']:,}", "; ".join(c["examples"]))
        console.print(table)
    else:
        console.print("counts: asn_inventory ip_count, session_count, first_seen, last_seen and ip_inventory "
                      "session_count, first_seen, last_seen all match a recount from scratch")
    for title, checked_rules in (("snapshot rules", rules), ("session rules", session_rules),
                                 ("integrity rules (ASN history, sources)", integrity),
                                 ("attribution rollups (attribution_daily, attribution_asn_daily)", attribution)):
        table = Table(title=title)
        for column in ("rule", "violations", "examples"):
            table.add_column(column, justify="right" if column == "violations" else "left")
        for r in checked_rules:
            table.add_row(r["rule"], f"{r['violations']:,}", ", ".join(r["examples"]))
        console.print(table)
    broken = sum(1 for r in rules if r["violations"])
    sessions_broken = sum(1 for r in session_rules if r["violations"])
    integrity_broken = sum(1 for r in integrity if r["violations"])
    attribution_broken = sum(1 for r in attribution if r["violations"])
    checked = (f"{scope['asns']:,} ASNs, {scope['ips']:,} IPs, {scope['sessions']:,} sessions checked "
               f"in {seconds:.1f} s")
    if counts or broken or sessions_broken or integrity_broken or attribution_broken:
        console.print(f"verify: DRIFT: {sum(c['rows'] for c in counts):,} count(s) differ, {broken} snapshot "
                      f"rule(s) broken, {sessions_broken} session rule(s) broken, {integrity_broken} integrity "
                      f"rule(s) broken, {attribution_broken} attribution rule(s) broken ({checked})")
        return EXIT_FAILURES
    console.print(f"verify: no drift ({checked})")
    return EXIT_OK


def cmd_snapshots_redo(args: argparse.Namespace, settings: config.Settings) -> int:
    """`ipintel snapshots redo`: the audited re-take of the snapshots of a window (snapshot_redos)."""
    if args.since >= args.until:
        err_console.print(f"ipintel snapshots redo: --since {args.since:%Y-%m-%d} is not before --until {args.until:%Y-%m-%d}")
        return EXIT_USAGE
    if not args.reason.strip():
        err_console.print("ipintel snapshots redo: --reason must say why (it is recorded in ipintel.snapshot_redos)")
        return EXIT_USAGE
    with db.connection(settings.database_url) as conn, conn.transaction():
        redo = db.query_one(conn, db.query("redo_snapshots"),
                            {"since": args.since, "until": args.until, "reason": args.reason})
    assert redo is not None
    console.print(f"snapshots redo {redo['redo_id']}: sessions from {args.since:%Y-%m-%d} to {args.until:%Y-%m-%d} "
                  f"(exclusive): {redo['sessions_reset']:,} reset, {redo['sessions_taken']:,} taken again "
                  "(recorded in ipintel.snapshot_redos)")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: config.Settings) -> int:
    """Generate the seeded sample, ingest it, enrich it and report: the whole main path."""
    from ipintel import demo_logs, enrich, routing

    generated = demo_logs.generate(args.out, seed=args.seed)
    console.print(f"demo: {generated.sessions:,} sessions, {generated.events:,} events from "
                  f"{generated.distinct_ips:,} IPs in {len(generated.files)} files under {args.out} (seed {args.seed})")
    code = run_ingest(settings, [str(args.out)], chunk_lines=50_000)
    if code not in (EXIT_OK, EXIT_FAILURES):
        return code
    # Before the snapshots are taken: they attribute each session from the routing table of its day.
    console.print(f"demo: routing history from the SYNTHETIC tables shipped for the demo "
                  f"(dataset {routing.DEMO_DATASET}; not real routing data)")
    code = max(code, run_routing_load(settings, routing.demo_snapshots()))
    # The demo needs no network and no key: the offline databases (those not installed are
    # skipped), and the remote passes only when configured. Those it does not run are recorded as
    # skipped, as `ipintel enrich` records a source it cannot run (no key, no contact): snapshots
    # do not wait 30 days for them, and the demo's sessions are complete with what the offline
    # sources and routing history say.
    sources: list[str] = []
    not_run: dict[str, str] = {}
    if settings.greynoise_key:
        sources.append("greynoise")
    else:
        not_run["greynoise"] = "IPINTEL_GREYNOISE_KEY is not set"
    if settings.dshield_contact:
        sources.append("dshield")
    else:
        not_run["dshield"] = "IPINTEL_DSHIELD_CONTACT is not set"
    if os.environ.get("IPINTEL_CYMRU_ADDR"):
        sources.append("cymru")
    else:
        not_run["cymru"] = "set IPINTEL_CYMRU_ADDR=whois.cymru.com:43 to include it"
    names = {"cymru": "Team Cymru", "greynoise": "GreyNoise", "dshield": "DShield"}
    with db.connection(settings.database_url, autocommit=True) as conn:
        sources = [r["source"] for r in db.query_all(conn, db.query("offline_sources"))] + sources
        for source, why in not_run.items():
            console.print(f"demo: {names[source]} is skipped ({why})")
            db.query_one(conn, db.query("start_run"), {"source": source, "status": "skipped",
                                                       "provenance": Jsonb({}), "message": f"not run by the demo: {why}"})
    code = max(code, run_enrich(settings, enrich.EnrichOptions(sources=sources, wait=True)))
    if code == EXIT_INTERRUPTED:
        return code
    with db.connection(settings.database_url) as conn:
        print_tier_counts(conn)
    until = datetime.now(UTC)
    print_report(settings, since=REPORT_ALL_TIME, until=until, top=5)
    html_path = args.out / "report.html"
    if write_report(settings, "html", html_path, since=REPORT_ALL_TIME, until=until, top=10) != EXIT_OK:
        return EXIT_USAGE
    console.print(f"demo: HTML report: {html_path.resolve()}")
    return code


def cmd_routing_load(args: argparse.Namespace, settings: config.Settings) -> int:
    """Every file is checked (exists, readable, format, date) before the first one loads."""
    from ipintel import routing

    try:
        snapshots = [routing.describe(Path(p), fmt=args.format, taken_on=args.date, dataset=args.dataset)
                     for p in args.paths]
    except routing.RoutingInputError as exc:
        err_console.print(f"ipintel routing load: {exc}")
        return EXIT_USAGE
    return run_routing_load(settings, snapshots)


def run_routing_load(settings: config.Settings, snapshots: Sequence[routing.SnapshotFile]) -> int:
    """routing.load() per file (run_dated_loads); a file with rejected lines exits 1."""
    from ipintel import routing

    def report(result: routing.LoadResult) -> int:
        console.print(f"{result.what}: {result.prefixes:,} prefix origins, {result.origins_opened:,} opened, "
                      f"{result.origins_closed:,} closed, {result.rejects:,} rejects ({result.seconds:.1f} s)")
        path = result.snapshot.path
        for reject in result.first_rejects:
            err_console.print(f"{path}:{reject.line_no}: {reject.reason}")
        if result.rejects > len(result.first_rejects):
            err_console.print(f"... {result.rejects - len(result.first_rejects):,} more rejects of "
                              f"{path} in ipintel.routing_rejects (snapshot {result.snapshot_id})")
        return EXIT_FAILURES if result.rejects else EXIT_OK

    return run_dated_loads(settings, "routing load", snapshots, routing.load, routing.RoutingFileError, report)


def run_dated_loads(settings: config.Settings, command: str, files: Sequence[_File],
                    load: Callable[[psycopg.Connection[Any], _File], _Result], failure: type[Exception],
                    report: Callable[[_Result], int]) -> int:
    """`load` per file (routing tables, geolocation builds), each in its own transaction, one line
    per file: `report`'s for a file loaded (its exit code), a skip for one loaded before (exit 1
    when it is not the same file). A file that fails is rolled back and said; the others still
    load (exit 1)."""
    code = EXIT_OK
    with db.connection(settings.database_url, autocommit=True) as conn:
        for item in files:
            try:
                result = load(conn, item)
            except failure as exc:
                err_console.print(f"ipintel {command}: {item.path}: {exc}")
                code = EXIT_FAILURES
                continue
            if result.loaded:
                code = max(code, report(result))
            elif result.already is not None and not result.already.same_file:
                err_console.print(f"ipintel {command}: {result.what}: {result.recorded} was loaded from another file "
                                  f"({result.already.file}; its sha256 differs): skipped, nothing replaced")
                code = EXIT_FAILURES
            else:
                console.print(f"{result.what}: skipped, already loaded ({result.recorded}) ({result.seconds:.1f} s)")
    return code


def cmd_geo_load(args: argparse.Namespace, settings: config.Settings) -> int:
    """Every file is opened and checked (an .mmdb of a kept edition, a real build time) before
    the first one loads."""
    from ipintel import geo

    try:
        builds, passed_over = geo.find([Path(p) for p in args.paths], settings.geoip_dir)
    except geo.GeoInputError as exc:
        err_console.print(f"ipintel geo load: {exc}")
        return EXIT_USAGE
    for path, why in passed_over:
        console.print(f"{path}: passed over: {why}")
    if not builds:
        err_console.print("ipintel geo load: no geolocation build found (name the .mmdb files or their folders, "
                          "or set IPINTEL_GEOIP_DIR)")
        return EXIT_USAGE
    return run_geo_load(settings, builds)


def run_geo_load(settings: config.Settings, builds: Sequence[geo.BuildFile]) -> int:
    """geo.load() per file (run_dated_loads)."""
    from ipintel import geo

    def report(result: geo.GeoLoadResult) -> int:
        console.print(f"{result.what}: {result.countries:,} country ranges, {result.asns:,} ASN ranges, "
                      f"{result.runs_opened:,} runs opened, {result.runs_closed:,} closed ({result.seconds:.1f} s)")
        return EXIT_OK

    return run_dated_loads(settings, "geo load", builds, geo.load, geo.GeoFileError, report)


def cmd_geo_builds(args: argparse.Namespace, settings: config.Settings) -> int:
    """One line per build, named as the snapshots name it (never cut: paths are long)."""
    with db.connection(settings.database_url) as conn:
        rows = db.query_all(conn, db.query("geo_builds"))
    if not rows:
        console.print("no geolocation build loaded (ipintel geo load)")
    for r in rows:
        console.print(f"{r['source']}:build:{r['built_on']:%Y-%m-%d} ({r['edition']}, max age {r['max_age'].days} days): "
                      f"{r['countries']:,} country ranges, {r['asns']:,} ASN ranges, from {r['file']}")
    return EXIT_OK


def cmd_geo_forget(args: argparse.Namespace, settings: config.Settings) -> int:
    """Old builds out of the database (GeoLite2's EULA asks for old copies to be deleted)."""
    try:
        with db.connection(settings.database_url) as conn, conn.transaction():
            row = db.query_one(conn, db.query("forget_geo_builds"), {"edition": args.edition, "before": args.before})
    except psycopg.errors.NoDataFound:
        err_console.print(f"ipintel geo forget: no geolocation edition {args.edition!r} is loaded "
                          "(ipintel geo builds lists them)")
        return EXIT_USAGE
    assert row is not None
    which = f"made before {args.before:%Y-%m-%d}" if args.before else "but the latest"
    console.print(f"{args.edition}: {row['builds']:,} builds {which} forgotten, {row['runs_deleted']:,} runs deleted, "
                  f"{row['runs_cut']:,} cut")
    return EXIT_OK


def cmd_ranges_load(args: argparse.Namespace, settings: config.Settings) -> int:
    """Every file is read and checked (exists, kind, date, content) before the first one loads: a
    missing file or an unknown kind or date stops everything (exit 2); a malformed file is said in
    one line and left out, the others load (exit 1)."""
    from ipintel import ranges

    files: list[ranges.ListFile] = []
    code = EXIT_OK
    try:
        for path in args.paths:
            try:
                files.append(ranges.describe(Path(path), kind=args.kind, taken_on=args.date))
            except ranges.RangesFileError as exc:
                err_console.print(f"ipintel ranges load: {exc}; nothing loaded from it")
                code = EXIT_FAILURES
    except ranges.RangesInputError as exc:
        err_console.print(f"ipintel ranges load: {exc}")
        return EXIT_USAGE
    return max(code, run_ranges_load(settings, files))


def cmd_ranges_fetch(args: argparse.Namespace, settings: config.Settings) -> int:
    """Download the configured lists (IPINTEL_RANGES_<KIND>_URL), then load them with the curated
    hosting-ASN list ipintel ships; a list that cannot be fetched or read is said in one line and
    the others load (exit 1)."""
    import tempfile

    from ipintel import ranges

    kinds = args.kind or [*settings.range_urls, "hosting_asns"]
    unknown = [k for k in kinds if k != "hosting_asns" and k not in settings.range_urls]
    if unknown:
        err_console.print(f"ipintel ranges fetch: no URL for {', '.join(unknown)}: set "
                          + ", ".join(f"IPINTEL_RANGES_{k.upper()}_URL" for k in unknown))
        return EXIT_USAGE
    if args.dir is not None and not args.dir.is_dir():
        err_console.print(f"ipintel ranges fetch: --dir {args.dir}: no such folder")
        return EXIT_USAGE
    code = EXIT_OK
    files: list[ranges.ListFile] = []
    with tempfile.TemporaryDirectory(prefix="ipintel-ranges-") as scratch:
        folder = args.dir or Path(scratch)
        urls = {k: settings.range_urls[k] for k in kinds if k != "hosting_asns"}
        for fetched in ranges.fetch(urls, folder, timeout=settings.ranges_timeout, day=ranges.today()):
            if fetched.file is None:
                err_console.print(f"ipintel ranges fetch: {fetched.kind} ({fetched.url}): {fetched.problem}")
                code = EXIT_FAILURES
            else:
                files.append(fetched.file)
        if "hosting_asns" in kinds:
            try:
                files.append(ranges.describe(ranges.curated_hosting_asns(), kind="hosting_asns"))
            except (ranges.RangesInputError, ranges.RangesFileError) as exc:
                err_console.print(f"ipintel ranges fetch: {exc}")
                code = EXIT_FAILURES
        return max(code, run_ranges_load(settings, files))


def run_ranges_load(settings: config.Settings, files: Sequence[ranges.ListFile]) -> int:
    """ranges.load() per file, each in its own transaction, one line printed per file."""
    from ipintel import ranges

    with db.connection(settings.database_url, autocommit=True) as conn:
        loaded = False
        for listed in files:
            result = ranges.load(conn, listed)
            what = f"{listed.path}: {listed.kind} {listed.taken_on:%Y-%m-%d}"
            if not result.loaded:
                console.print(f"{what}: already loaded (snapshot {result.snapshot_id}), nothing changed "
                              f"({result.seconds:.1f} s)")
            else:
                loaded = True
                console.print(f"{what}: {result.entries:,} entries, {result.opened:,} opened, "
                              f"{result.closed:,} closed ({result.seconds:.1f} s)")
        if loaded:
            # ip_inventory.ip_type as of today, with the lists just loaded.
            done = ranges.classify(conn)
            console.print(f"ip_inventory classified as of {ranges.today():%Y-%m-%d}: {done.ips:,} IPs, "
                          f"{done.changed:,} changed ({done.seconds:.1f} s)")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace, settings: config.Settings) -> int:
    """`alembic upgrade` with the migrations shipped in this ipintel, explicitly: no other command
    ever changes the schema. --sql prints the SQL instead of running it; --status only reports."""
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    from ipintel import schema

    if args.status:
        if args.to:
            err_console.print("ipintel migrate: --status shows where the database is; it takes no --to")
            return EXIT_USAGE
        return print_schema_state(settings)
    target = args.to or "head"
    try:
        if args.sql:  # offline: nothing connects; DATABASE_URL only names the dialect
            schema.upgrade(settings.database_url, target, sql=True)
            return EXIT_OK
        with db.connection(settings.database_url) as conn:
            state = schema.schema_state(conn)
        if state.state == "ahead":
            raise schema.SchemaVersionError(state.problem())
        if args.to:
            schema.check_upgrade_target(state, args.to)
        with _alembic_progress():
            schema.upgrade(settings.database_url, target)
    except DBAPIError as exc:  # SQLAlchemy wraps the psycopg error alembic met
        raise exc.orig if isinstance(exc.orig, psycopg.Error) else exc from None
    except CommandError as exc:  # e.g. a --to alembic cannot resolve in --sql mode
        err_console.print(f"ipintel migrate: {' '.join(str(exc).split())}")
        return EXIT_USAGE
    with db.connection(settings.database_url) as conn:
        revision = schema.current_revision(conn)
    where = "(head)" if revision == state.head else f"(this ipintel's head is {state.head})"
    console.print(f"database schema is at revision {revision} {where}")
    return EXIT_OK


def print_schema_state(settings: config.Settings) -> int:
    """`ipintel migrate --status`: the database's revision, this ipintel's head, and what to do;
    exit 0 when they match, else 2 (as every other command would refuse the database)."""
    from ipintel import schema

    with db.connection(settings.database_url) as conn:
        state = schema.schema_state(conn)
    console.print(f"database revision: {state.current or 'none (never migrated)'}")
    console.print(f"ipintel {__version__} head: {state.head}")
    plural = "" if state.behind_by == 1 else "s"
    console.print({
        "current": "up to date",
        "behind": f"behind: {state.behind_by} revision{plural} to apply: {schema.MIGRATE_HINT}",
        "unmigrated": f"not migrated: {state.behind_by} revision{plural} to apply: {schema.MIGRATE_HINT}",
        "ahead": "ahead: a newer ipintel migrated this database: upgrade ipintel",
    }[state.state])
    return EXIT_OK if state.state == "current" else EXIT_USAGE


class _AlembicProgress(logging.Handler):
    """alembic's "Running upgrade A -> B, what" lines, one per revision, on stderr (its other
    INFO lines, such as "Will assume transactional DDL.", say nothing to an operator)."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Running "):
            err_console.print(message)


@contextlib.contextmanager
def _alembic_progress() -> Iterator[None]:
    logger = logging.getLogger("alembic.runtime.migration")
    handler, level = _AlembicProgress(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _utc_date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _day(text: str) -> date:
    return _utc_date(text).date()


def _dataset_name(text: str) -> str:
    from ipintel import routing

    if not routing.DATASET_NAME.match(text):
        raise argparse.ArgumentTypeError(f"not a dataset name (a lower-case letter, then lower-case letters, "
                                         f"digits or '_'; at most 63): {text!r}")
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text!r}")
    return value


def _asn(text: str) -> int:
    digits = text.strip().upper().removeprefix("AS")
    if not digits.isdigit() or int(digits) > 4294967295:
        raise argparse.ArgumentTypeError(f"not an AS number (0 to 4294967295, AS prefix optional): {text!r}")
    return int(digits)


def _country(text: str) -> str:
    code = text.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise argparse.ArgumentTypeError(f"not a two-letter country code: {text!r}")
    return code


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


class _VersionAction(argparse.Action):
    """`ipintel --version`: the package version and the newest schema revision it ships (read from
    its migrations when asked, not when every command starts)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> NoReturn:
        from ipintel import schema

        try:
            head = schema.head_revision()
        except schema.SchemaVersionError as exc:
            parser.exit(EXIT_USAGE, f"{parser.prog}: {exc}\n")
        console.print(f"ipintel {__version__} (schema revision {head})")  # stdout, as argparse's own --version
        parser.exit(EXIT_OK)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): what is wrong, and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from ipintel.ranges import KINDS as RANGE_KINDS
    from ipintel.routing import FORMATS as ROUTING_FORMATS

    parser = _Parser(prog="ipintel", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="show the version of ipintel and of the schema it ships, and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest", help="load Cowrie JSON logs (files, folders, globs, .gz); idempotent")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--chunk-lines", type=_positive_int, default=50_000,
                        help="lines per transaction (default: %(default)s)")
    ingest.add_argument("--metrics-file", type=Path, metavar="F.prom",
                        help="Prometheus metrics of the run, written when it ends (node_exporter textfile collector)")
    ingest.set_defaults(func=cmd_ingest)
    enrich = sub.add_parser("enrich", help="run the enrichment passes of the registered sources on due IPs")
    enrich.add_argument("--source", action="append", metavar="SOURCE",
                        help="only this source's pass: a source registered in ipintel.enrichment_policy "
                             "(repeatable; default: every registered source, in its pass_order)")
    enrich.add_argument("--limit", type=_positive_int, help="at most N IPs per pass (most recently seen first)")
    enrich.add_argument("--ip", action="append", type=_ip_address, metavar="IP",
                        help="just this IP, fresh or not (repeatable)")
    enrich.add_argument("--asn", action="append", type=_asn, metavar="N",
                        help="just the IPs whose current ASN is N, fresh or not (repeatable)")
    enrich.add_argument("--country", action="append", type=_country, metavar="CC",
                        help="just the IPs geolocated in country CC (ISO 3166-1 alpha-2), fresh or not (repeatable)")
    enrich.add_argument("--force", action="store_true", help="refetch every IP, fresh or not")
    enrich.add_argument("--wait", action="store_true", help="wait for a running enrichment instead of exiting 3")
    enrich.add_argument("--status-file", type=Path, metavar="F", help="JSON status document, updated during the run")
    enrich.add_argument("--metrics-file", type=Path, metavar="F.prom",
                        help="Prometheus metrics of the run, written when it ends (node_exporter textfile collector)")
    enrich.add_argument("--greynoise-tier", choices=["community", "enterprise"],
                        help="GreyNoise API: community (GET per IPv4) or enterprise (POST /v3/ip); "
                             "default IPINTEL_GREYNOISE_TIER or community")
    enrich.set_defaults(func=cmd_enrich)
    status = sub.add_parser("status", help="coverage and staleness per source, last runs, failures")
    status.add_argument("--runs", type=_positive_int, default=10, help="how many recent runs to list")
    status.set_defaults(func=cmd_status)
    report = sub.add_parser("report", help="attribution summary: top ASNs, countries, IP types, ASN moves")
    report.add_argument("--since", type=_utc_date, help="window start, YYYY-MM-DD (UTC; default: all time)")
    report.add_argument("--until", type=_utc_date, help="window end, exclusive, YYYY-MM-DD (default: now)")
    report.add_argument("--top", type=_positive_int, default=10, help="rows per table (default: %(default)s)")
    report.add_argument("--format", choices=["table", "json", "html"], default="table",
                        help="table: terminal tables (default); json: for scripts; html: one self-contained file "
                             "with charts, working offline")
    report.add_argument("--output", type=Path, metavar="FILE", help="write the json or html report here "
                        "(default: standard output)")
    report.set_defaults(func=cmd_report)
    verify = sub.add_parser("verify", help="recount the maintained counts from scratch and check the snapshot "
                                           "rules; exit 1 on any drift")
    verify.set_defaults(func=cmd_verify)
    snapshots = sub.add_parser("snapshots", help="audited operations on the sessions' point-in-time snapshots")
    snapshot_ops = snapshots.add_subparsers(dest="snapshots_command", required=True)
    redo = snapshot_ops.add_parser("redo", help="take again the snapshots of the sessions that started in a window "
                                                "(e.g. after loading routing history), recorded with its reason")
    redo.add_argument("--since", type=_utc_date, required=True, help="window start, YYYY-MM-DD (UTC)")
    redo.add_argument("--until", type=_utc_date, required=True, help="window end, exclusive, YYYY-MM-DD (UTC)")
    redo.add_argument("--reason", required=True, help="why (recorded in ipintel.snapshot_redos)")
    redo.set_defaults(func=cmd_snapshots_redo)
    demo = sub.add_parser("demo", help="generate a seeded Cowrie sample, ingest, enrich (MaxMind) and report")
    demo.add_argument("--out", type=Path, default=Path("demo-data"), help="where the sample is written")
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(func=cmd_demo)
    routing = sub.add_parser("routing", help="dated routing tables (prefix → origin ASN): the ASN of a session "
                                             "at its own time")
    routing_sub = routing.add_subparsers(dest="routing_command", required=True, metavar="COMMAND")
    routing_load = routing_sub.add_parser(
        "load", help="load routing table files (CAIDA pfx2as, pyasn IPASN DAT, iptoasn TSV, MRT RIB dumps), "
                     "one dated snapshot per file; a snapshot already loaded changes nothing")
    routing_load.add_argument("paths", nargs="+", metavar="PATH", help="files: plain, .gz or .bz2")
    routing_load.add_argument("--date", type=_day, metavar="YYYY-MM-DD",
                              help="the day the tables were taken (default: the YYYYMMDD in each file name)")
    routing_load.add_argument("--format", choices=ROUTING_FORMATS,
                              help="the files' format (default: from each file's name, else its first line)")
    routing_load.add_argument("--dataset", type=_dataset_name, metavar="NAME",
                              help="the dataset the snapshots belong to (default: from the name and format, "
                                   "e.g. routeviews_rv2, routeviews_rv6, pyasn, iptoasn_v4, mrt)")
    routing_load.set_defaults(func=cmd_routing_load)
    geo = sub.add_parser("geo", help="dated geolocation builds (MaxMind, IPinfo Lite, DB-IP Lite .mmdb): the country "
                                     "and ASN of a session older than ipintel's own observations")
    geo_sub = geo.add_subparsers(dest="geo_command", required=True, metavar="COMMAND")
    geo_load = geo_sub.add_parser(
        "load", help="register builds and load their country and ASN ranges; a build already loaded changes nothing")
    geo_load.add_argument("paths", nargs="*", metavar="PATH",
                          help=".mmdb files, or folders (their *.mmdb and their subfolders'); default: the GeoIP "
                               "folders (IPINTEL_GEOIP_DIR, else geoipupdate's)")
    geo_load.set_defaults(func=cmd_geo_load)
    geo_builds = geo_sub.add_parser("builds", help="list the geolocation builds loaded")
    geo_builds.set_defaults(func=cmd_geo_builds)
    geo_forget = geo_sub.add_parser("forget", help="remove an edition's older builds as if never loaded (for "
                                                   "licences that ask for old copies to be deleted, e.g. GeoLite2)")
    geo_forget.add_argument("edition", help="the edition, as ipintel geo builds names it (e.g. geolite2_country)")
    geo_forget.add_argument("--before", type=_day, metavar="YYYY-MM-DD",
                            help="forget the builds made before this day (default: every build but the latest)")
    geo_forget.set_defaults(func=cmd_geo_forget)
    ranges = sub.add_parser("ranges", help="dated range lists (cloud, CDN, Tor exits, hosting ASNs): the class of "
                                           "an IP (ip_type, ip_provider) as of a day")
    ranges_sub = ranges.add_subparsers(dest="ranges_command", required=True, metavar="COMMAND")
    ranges_load = ranges_sub.add_parser(
        "load", help="load range-list files (AWS ip-ranges.json, Google cloud.json, Azure ServiceTags_Public_*.json, "
                     "Cloudflare ips-v4/ips-v6, Oracle public_ip_ranges.json, DigitalOcean google.csv, Tor "
                     "torbulkexitlist and exit-addresses, the hosting-ASN list), one dated snapshot per file; "
                     "a malformed file is refused whole (exit 1), a snapshot already loaded changes nothing")
    ranges_load.add_argument("paths", nargs="+", metavar="FILE")
    ranges_load.add_argument("--date", type=_day, metavar="YYYY-MM-DD",
                             help="the day the lists were published (default: the file's own date, else a "
                                  "YYYYMMDD in its name)")
    ranges_load.add_argument("--kind", choices=RANGE_KINDS,
                             help="which list the files are (default: from each file's content, else its name)")
    ranges_load.set_defaults(func=cmd_ranges_load)
    ranges_fetch = ranges_sub.add_parser(
        "fetch", help="download the range lists from their configured URLs (IPINTEL_RANGES_<KIND>_URL) and load "
                      "them, with the hosting-ASN list ipintel ships; dated by their own date, else today")
    ranges_fetch.add_argument("--kind", action="append", choices=RANGE_KINDS,
                              help="only this list (repeatable; default: every list with a URL, and hosting_asns)")
    ranges_fetch.add_argument("--dir", type=Path, metavar="DIR",
                              help="keep the downloaded files in this folder (default: a temporary one)")
    ranges_fetch.set_defaults(func=cmd_ranges_fetch)
    migrate = sub.add_parser("migrate", help="bring the database schema to this ipintel's revision "
                                             "(alembic upgrade head); the only command that changes it")
    migrate.add_argument("--to", metavar="REV", help="upgrade to this revision instead of the newest (head)")
    shown = migrate.add_mutually_exclusive_group()
    shown.add_argument("--sql", action="store_true",
                       help="print the SQL of the upgrade (from an empty database) instead of running it")
    shown.add_argument("--status", action="store_true",
                       help="only show the database's revision, this ipintel's head and whether they match")
    migrate.set_defaults(func=cmd_migrate)
    return parser


class _SigtermAsInterrupt:
    """While active, SIGTERM (systemd stop, `timeout`, kill) raises KeyboardInterrupt("SIGTERM") in
    the main thread, so it takes the Ctrl-C path: transaction rolled back, run rows and status
    file marked interrupted, exit 130. A second SIGTERM during that cleanup is ignored."""

    def __init__(self) -> None:
        self.previous: Any = None
        self.active = threading.current_thread() is threading.main_thread()
        self.raised = False

    def _handle(self, signum: int, frame: object) -> None:
        if not self.raised:
            self.raised = True
            raise KeyboardInterrupt("SIGTERM")

    def __enter__(self) -> _SigtermAsInterrupt:
        if self.active:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            signal.signal(signal.SIGTERM, self.previous)


def _check_schema(settings: config.Settings) -> None:
    from ipintel import schema

    with db.connection(settings.database_url) as conn:
        schema.check_version(conn)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    where = f"ipintel {args.command}"
    try:
        settings = config.load()
    except config.ConfigError as exc:
        err_console.print(f"ipintel: configuration: {exc}")
        return EXIT_USAGE
    from ipintel.schema import SchemaVersionError

    with _SigtermAsInterrupt():
        try:
            if args.command in NEEDS_SCHEMA:
                _check_schema(settings)
            return int(args.func(args, settings))
        except SchemaVersionError as exc:
            err_console.print(f"{where}: {exc}")
            return EXIT_USAGE
        except psycopg.Error as exc:
            err_console.print(f"{where}: {settings.redact(db.describe_error(exc))}")
            return EXIT_USAGE if db.is_configuration_error(exc) else EXIT_FAILURES
        except BrokenPipeError:  # the reader went away (`ipintel migrate --sql | head`): nothing to say to it
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return EXIT_FAILURES
        except KeyboardInterrupt as exc:
            err_console.print(f"{where}: interrupted ({exc or 'Ctrl-C'}); the transaction in flight was rolled "
                              "back, the next run resumes")
            return EXIT_INTERRUPTED
        except Exception as exc:  # a defect: still one line, never a traceback (IPINTEL_DEBUG=1 shows it)
            if os.environ.get("IPINTEL_DEBUG"):
                raise
            text = " ".join(str(exc).split())
            err_console.print(f"{where}: unexpected error: {type(exc).__name__}: "
                              f"{settings.redact(text)} (IPINTEL_DEBUG=1 shows the traceback)")
            return EXIT_FAILURES


if __name__ == "__main__":
    sys.exit(main())
