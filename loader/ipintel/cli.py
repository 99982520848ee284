"""The `ipintel` command line. Exit codes: 0 all done; 1 finished with recorded failures;
2 bad usage or configuration; 3 another run holds the lock."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import psycopg
from rich.console import Console
from rich.table import Table

from ipintel import __version__, config, db

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

# Events merge_cowrie_events() turns into session facts; others are counted only.
KNOWN_EVENTIDS = frozenset({
    "cowrie.session.connect", "cowrie.session.closed", "cowrie.login.success", "cowrie.login.failed",
    "cowrie.command.input", "cowrie.command.failed", "cowrie.session.file_download",
    "cowrie.client.version", "cowrie.client.kex",
})

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_tier_counts(conn: psycopg.Connection) -> None:
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
    from ipintel import cowrie, ingest

    try:
        summary = ingest.ingest(settings.database_url, args.paths, chunk_lines=args.chunk_lines)
    except cowrie.CowrieInputError as exc:
        err_console.print(f"ipintel ingest: {exc}")
        return EXIT_USAGE
    except ingest.LockHeld as exc:
        err_console.print(f"ipintel ingest: another ingest is running ({exc}); try again when it ends")
        return EXIT_LOCKED
    except KeyboardInterrupt:
        err_console.print("ipintel ingest: interrupted; the chunk in flight was rolled back, "
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
        "seconds": round(summary.seconds, 1)})
    unknown = {k: v for k, v in summary.event_counts.items() if k not in KNOWN_EVENTIDS}
    if unknown:
        console.print("eventids not summarised (counted only): "
                      + ", ".join(f"{k}={v:,}" for k, v in sorted(unknown.items())))
    return EXIT_FAILURES if summary.rejects else EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: config.Settings) -> int:
    with db.connection(settings.database_url) as conn:
        print_tier_counts(conn)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipintel", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"ipintel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest", help="load Cowrie JSON logs (files, folders, globs, .gz); idempotent")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--chunk-lines", type=int, default=50_000,
                        help="lines per transaction (default: %(default)s)")
    ingest.set_defaults(func=cmd_ingest)
    demo = sub.add_parser("demo", help="run the demo on the embedded sample and print the tiers")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = config.load()
    except config.ConfigError as exc:
        err_console.print(f"ipintel: configuration: {exc}")
        return EXIT_USAGE
    try:
        return int(args.func(args, settings))
    except psycopg.OperationalError as exc:
        err_console.print(f"ipintel: cannot reach the database: {exc}")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
