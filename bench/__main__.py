"""`python -m bench [--ips N] [--baseline-ips N] [--only maxmind|cymru|snapshots|routing|analyst|classify]`: run the benchmarks, print and save the figures."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench import analyst_queries, classify, cymru_pass, maxmind_pass, routing_history, snapshot_step

OUT_DIR = Path(__file__).resolve().parent / "out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--ips", type=int, default=1_000_000,
                        help="IPs in the inventory for the set-based MaxMind pass (default: %(default)s)")
    parser.add_argument("--baseline-ips", type=int, default=20_000,
                        help="IPs enriched the old row-by-row way (default: %(default)s)")
    parser.add_argument("--networks", type=int, default=4_000,
                        help="address clusters, each a network in the generated mmdb files (default: %(default)s)")
    parser.add_argument("--seed", type=float, default=0.42, help="random seed, -1..1 (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "results.json", help="JSON results file")
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
    parser.add_argument("--show-plans", action="store_true", help="print the EXPLAIN ANALYZE plans of the analyst's queries")
    parser.add_argument("--classify-ips", type=int, default=1_000_000,
                        help="IPs in the inventory classified against the range lists (default: %(default)s)")
    parser.add_argument("--classify-ranges", type=int, default=15_000,
                        help="published ranges generated for them (default: %(default)s)")
    parser.add_argument("--only", choices=["maxmind", "cymru", "snapshots", "routing", "analyst", "classify"],
                        action="append",
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

    only = set(args.only or ("maxmind", "cymru", "snapshots", "routing", "analyst", "classify"))
    results: dict[str, object] = {}
    if "maxmind" in only:
        results["maxmind_pass"] = maxmind_pass.run(server, ips=args.ips, baseline_ips=args.baseline_ips,
                                                   networks=args.networks, seed=args.seed)
    if "cymru" in only:
        # Client against the fake with 5 s per 500-IP batch: defaults vs the old serial shape.
        cymru = cymru_pass.run(None)
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
