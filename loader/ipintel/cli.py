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

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_tier_counts(conn: psycopg.Connection) -> None:
    table = Table(title="ipintel tiers")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in db.tier_counts(conn).items():
        table.add_row(name, f"{count:,}")
    console.print(table)


def cmd_demo(args: argparse.Namespace, settings: config.Settings) -> int:
    with db.connection(settings.database_url) as conn:
        print_tier_counts(conn)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipintel", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"ipintel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
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
