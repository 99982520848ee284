"""Benchmarks of ipintel against a real PostgreSQL: `make bench` (or `python -m bench`).

They need a server URI in IPINTEL_BENCH_DSN (`make bench` starts a throwaway cluster and sets
it); each benchmark creates, migrates and drops its own databases there. `python -m bench` prints
one table of ratios to floors measured in the same run (bench/table.py) and writes its figures to
bench/results/latest.json (the run before kept as previous.json; both git-ignored). The
standalone studies (`python -m bench.sizing`, `bench.migrations`, `bench.partitioning`) write
theirs to bench/out/ (git-ignored).
"""
