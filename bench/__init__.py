"""Benchmarks of ipintel against a real PostgreSQL: `make bench` (or `python -m bench`).

They need a server URI in IPINTEL_BENCH_DSN (`make bench` starts a throwaway cluster and sets
it); each benchmark creates, migrates and drops its own databases there. Figures are printed
and written to bench/out/results.json (git-ignored).
"""
