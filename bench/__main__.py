"""`python -m bench [--ips N] [--baseline-ips N] [--only CASE]... [--reference FILE]`: run the benchmarks, print one table of ratios and save the figures.

The table is every case's "table_rows" (bench/table.py: the convention, the printer and the
regression gate). Results go to bench/results/latest.json (the previous one is kept as
previous.json); with --reference, a ratio more than 2x worse than that file's fails (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench import (
    analyst_queries,
    classify,
    cymru_pass,
    ingest_pass,
    maxmind_pass,
    remerge,
    routing_history,
    snapshot_step,
    table,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--ips", type=int, default=1_000_000,
                        help="IPs in the inventory for the set-based MaxMind pass (default: %(default)s)")
    parser.add_argument("--baseline-ips", type=int, default=20_000,
                        help="IPs enriched the old row-by-row way (default: %(default)s)")
    parser.add_argument("--networks", type=int, default=4_000,
                        help="address clusters, each a network in the generated mmdb files (default: %(default)s)")
    parser.add_argument("--seed", type=float, default=0.42, help="random seed, -1..1 (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=table.RESULTS_DIR / "latest.json",
                        help="JSON results file; an existing one is moved to previous.json first (default: %(default)s)")
    parser.add_argument("--reference", type=Path,
                        help="fail (exit 1) when a ratio is more than 2x worse than in this results file")
    parser.add_argument("--remerge-documents", type=int, default=200_000,
                        help="unchanged documents re-merged (TTL refresh) against a bare COPY (default: %(default)s)")
    parser.add_argument("--cymru-ips", type=int, default=cymru_pass.IPS, help="IPs sent to the fake Team Cymru (default: %(default)s)")
    parser.add_argument("--cymru-latency", type=float, default=cymru_pass.LATENCY_SECONDS,
                        help="seconds the fake takes per bulk query (default: %(default)s)")
    parser.add_argument("--snapshot-sessions", type=int, default=2_000_000,
                        help="sessions for the snapshot step (default: %(default)s)")
    parser.add_argument("--snapshot-ips", type=int, default=300_000,
                        help="IPs those sessions come from; half are still due for GreyNoise (default: %(default)s)")
    parser.add_argument("--max-snapshot-ratio", type=float,
                        help="fail (exit 1) when take_snapshots takes more than this many times the floor UPDATE")
    parser.add_argument("--routing-v4", type=int, default=1_000_000,
                        help="IPv4 prefix slots of the generated routing table (default: %(default)s)")
    parser.add_argument("--routing-v6", type=int, default=200_000, help="IPv6 prefixes (default: %(default)s)")
    parser.add_argument("--routing-days", type=int, default=30, help="daily snapshots loaded (default: %(default)s)")
    parser.add_argument("--routing-sessions", type=int, default=1_000_000,
                        help="sessions attributed from routing history (default: %(default)s)")
    parser.add_argument("--analyst-sessions", type=int, default=2_000_000,
                        help="sessions for the analyst's queries (default: %(default)s)")
    parser.add_argument("--analyst-ips", type=int, default=300_000, help="their IPs (default: %(default)s)")
    parser.add_argument("--analyst-asns", type=int, default=20_000, help="their ASNs (default: %(default)s)")
    parser.add_argument("--ingest-events", type=int, default=800_000,
                        help="Cowrie events generated for the ingest case (default: %(default)s)")
    parser.add_argument("--show-plans", action="store_true", help="print the EXPLAIN ANALYZE plans of the analyst's queries")
    parser.add_argument("--classify-ips", type=int, default=1_000_000,
                        help="IPs in the inventory classified against the range lists (default: %(default)s)")
    parser.add_argument("--classify-ranges", type=int, default=15_000,
                        help="published ranges generated for them (default: %(default)s)")
    parser.add_argument("--only", choices=CASES, action="append",
                        help="run only this benchmark (repeatable; default: all)")
    args = parser.parse_args(argv)

    server = os.environ.get("IPINTEL_BENCH_DSN")
    if not server:
        print("python -m bench: set IPINTEL_BENCH_DSN to a PostgreSQL server URI (`make bench` starts a "
              "throwaway cluster and sets it); the benchmark creates and drops its own databases there",
              file=sys.stderr)
        return 2
    if args.ips < args.baseline_ips or args.baseline_ips < 1:
        parser.error("--ips must be at least --baseline-ips, which must be positive")

    only = set(args.only or CASES)
    started = time.perf_counter()
    run_info: dict[str, object] = {"argv": sys.argv[1:] if argv is None else argv, "started": time.time()}
    results: dict[str, object] = {"run": run_info}
    if "maxmind" in only:
        results["maxmind_pass"] = maxmind_pass.run(server, ips=args.ips, baseline_ips=args.baseline_ips,
                                                   networks=args.networks, seed=args.seed)
    if "remerge" in only:
        results["remerge"] = remerge.run(server, documents_n=args.remerge_documents)
    if "cymru" in only:
        # Client against the fake with 5 s per 500-IP batch: defaults vs the old serial shape.
        cymru = cymru_pass.run(None, ips=args.cymru_ips, latency=args.cymru_latency)
        cymru_pass.print_table(cymru)
        results["cymru_pass"] = cymru
    failed = False
    if "snapshots" in only:
        snap = results["snapshot_step"] = snapshot_step.run(server, sessions=args.snapshot_sessions,
                                                             ips=args.snapshot_ips)
        ratio = snap["ratio_to_floor"]
        if args.max_snapshot_ratio is not None and ratio is not None and ratio > args.max_snapshot_ratio:
            print(f"python -m bench: take_snapshots took {ratio}x the floor UPDATE, more than the "
                  f"{args.max_snapshot_ratio}x allowed", file=sys.stderr)
            failed = True
    if "routing" in only:
        results["routing_history"] = routing_history.run(server, v4=args.routing_v4, v6=args.routing_v6,
                                                         days=args.routing_days, sessions=args.routing_sessions)
    if "analyst" in only:
        results["analyst_queries"] = analyst_queries.run(server, sessions=args.analyst_sessions, ips=args.analyst_ips,
                                                         asns=args.analyst_asns, show_plans=args.show_plans)
    if "classify" in only:
        results["classify"] = classify.run(server, ips=args.classify_ips, ranges=args.classify_ranges)
    if "ingest" in only:
        results["ingest_pass"] = ingest_pass.run(server, events=args.ingest_events)
    run_info |= {"seconds": round(time.perf_counter() - started, 1),
                 "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    rows = table.collect_rows(results)
    table.print_table(rows)
    rotated = table.write_results(args.out, results)
    print(f"results written to {args.out}" + (f" (the run before: {rotated})" if rotated else ""))
    if args.reference is not None:
        failed = report_regressions(args.reference, results, args.out, argv) or failed
    return 1 if failed else 0


# The --only choice that runs each results key: a case that fails the gate runs once more.
ONLY = {"maxmind_pass": "maxmind", "remerge": "remerge", "cymru_pass": "cymru", "snapshot_step": "snapshots",
        "routing_history": "routing", "analyst_queries": "analyst",
        "ingest_pass": "ingest", "classify": "classify"}
# Every case: the --only choices, and what runs without --only.
CASES = list(ONLY.values())


def rerun_argv(argv: list[str], keys: set[str], out: Path) -> list[str]:
    """`argv` without its --only / --out / --reference, running only the cases of `keys` into `out`."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--only", "--out", "--reference"):
            skip = True
        elif not arg.startswith(("--only=", "--out=", "--reference=")):
            kept.append(arg)
    return kept + [a for key in sorted(keys) for a in ("--only", ONLY[key])] + ["--out", str(out)]


def report_regressions(reference: Path, results: dict[str, object], out: Path, argv: list[str] | None) -> bool:
    """Gate this run's ratios against the reference file's; True when one fails. A load spike on
    a shared machine can slow one side of a ratio only, so a regression must show twice: the
    cases that fail run once more and each ratio's better figure of the two runs is gated."""
    ref_rows = table.load_rows(reference)
    rows = table.collect_rows(results)
    verdicts = table.gate(ref_rows, rows)
    bad = {v.case for v in verdicts if v.failed}
    keys = {key for key, value in results.items() if key in ONLY and isinstance(value, dict)
            and bad & {str(r.get("case")) for r in value.get("table_rows", ())}}
    if keys:
        print(f"bench: {', '.join(sorted(bad))} beyond {table.REGRESSION_FACTOR:g}x of the reference: "
              f"running {', '.join(ONLY[k] for k in sorted(keys))} once more", flush=True)
        retry = out.with_name(f"retry-{out.name}")
        main(rerun_argv(sys.argv[1:] if argv is None else argv, keys, retry))
        rows = table.best_of(rows, table.load_rows(retry))
        verdicts = table.gate(ref_rows, rows)
    for v in verdicts:
        if v.failed:
            print(v.message, file=sys.stderr)
    failed, ok = sum(v.failed for v in verdicts), sum(v.status == "ok" for v in verdicts)
    print(f"against {reference}: {ok} ratios within {table.REGRESSION_FACTOR:g}x of the reference, {failed} failed, "
          f"{len(verdicts) - ok - failed} not gated (new, or no ratio)", flush=True)
    return failed > 0


if __name__ == "__main__":
    sys.exit(main())
