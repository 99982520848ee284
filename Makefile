# ipintel — common paths. `make demo` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
IPINTEL     := $(VENV)/bin/ipintel
PG_DIR      ?= .ipintel-pg
TEST_PG_DIR ?= .ipintel-pg-test
BENCH_PG_DIR ?= .ipintel-pg-bench
FAULTS_PG_DIR ?= .ipintel-pg-faults
# pytest's worker processes in `make test` (pytest-xdist): each clones databases from a template
# of its own on the one server. Two on this 2-core machine: pytest 4 min 18 s to 5 min 38 s in
# three runs, against 8 min 52 s in one process.
# TEST_WORKERS=0 runs in one process (what `make test-faults` does: it restarts its server).
TEST_WORKERS ?= auto
# The development cluster (devtools/localdb.py, not installed with ipintel). Stopping, removing
# it and its URL need only the standard library: they work before `make setup` too (a fresh
# clone's `make clean`); starting it needs psycopg, from the venv. See devtools/localdb.py for
# where the data lives (as root, a private folder of postgres under /var/tmp when postgres
# cannot enter here).
LOCALDB       = $(PYTHON) -m devtools.localdb
LOCALDB_START = $(PY) -m devtools.localdb start
TEST_DEB_PACKAGES := chromium
DEB_PACKAGES := postgresql-15 postgresql-contrib postgresql-15-pgtap postgresql-15-plpgsql-check postgresql-15-ip4r postgresql-15-hll libtap-parser-sourcehandler-pgtap-perl
# An installed ipintel has no default database: every target passes DATABASE_URL, the
# environment's when set, otherwise the project-local cluster's (make db; without one, localdb
# says "run `make db` first" and the target stops there).
DB_URL = $${DATABASE_URL:-$$($(LOCALDB) url --dir $(PG_DIR))}
WITH_DB = url="$(DB_URL)" && DATABASE_URL="$$url"

.PHONY: help setup system-packages test-packages db db-stop migrate ingest enrich status report demo test test-faults lint-migrations bench bench-quick bench-compare clean

help:
	@echo "make demo    set everything up, start a local PostgreSQL, migrate, ingest and enrich a sample"
	@echo "make test    the whole test suite (starts and stops its own PostgreSQL)"
	@echo "make test-faults  kills, restarts, concurrent runs and remote faults (a few minutes, its own PostgreSQL)"
	@echo "make setup | db | db-stop | migrate | ingest LOGS=... | enrich | status | report"
	@echo "make bench   one table of ratios to floors measured in the same run (bench-quick: small, gated; bench-compare)"

setup: system-packages $(VENV)/.installed

# Debian packages: installed when missing and we are root, otherwise named exactly.
define install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "installing Debian packages:$$missing"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    else \
	        echo "missing Debian packages; run as root: apt-get install$$missing" >&2; exit 2; \
	    fi; \
	fi
endef

system-packages:
	$(call install_missing,$(DEB_PACKAGES))

# What only the tests need: headless Chromium opens the HTML report (tests/test_report_html.py).
test-packages:
	$(call install_missing,$(TEST_DEB_PACKAGES))

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# The local cluster's URL names its passfile, never a password; one from the environment is
# shown with its password masked.
db: setup
	@if [ -n "$$DATABASE_URL" ]; then echo "DATABASE_URL is set; no local cluster needed: $$($(PY) -c \
	    'import os; from ipintel.config import redact_dsn; u = os.environ["DATABASE_URL"]; print(redact_dsn(u, u))')"; \
	else url=$$($(LOCALDB_START) --dir $(PG_DIR)) && echo "export DATABASE_URL=$$url"; fi

db-stop:
	@$(LOCALDB) stop --dir $(PG_DIR)

# The only target that changes the schema (ipintel migrate = alembic upgrade head).
migrate: db
	$(WITH_DB) $(IPINTEL) migrate

# Everyday targets (cron, systemd) run ipintel only: no apt, no pip, no migration. A database
# behind this ipintel's schema makes them exit 2 with "run `ipintel migrate` (or `make migrate`)".
$(IPINTEL):
	@echo "$(IPINTEL) is missing: run make setup (or make demo) first" >&2; exit 2

ingest: | $(IPINTEL)
	@test -n "$(LOGS)" || { echo "usage: make ingest LOGS='path/to/cowrie/logs ...'" >&2; exit 2; }
	$(WITH_DB) $(IPINTEL) ingest $(LOGS)

enrich: | $(IPINTEL)
	$(WITH_DB) $(IPINTEL) enrich $(ENRICH_ARGS)

status: | $(IPINTEL)
	$(WITH_DB) $(IPINTEL) status

report: | $(IPINTEL)
	$(WITH_DB) $(IPINTEL) report

# Ends with the HTML report (demo-data/report.html) and its path.
demo: migrate
	$(WITH_DB) $(IPINTEL) demo

lint-migrations: setup
	$(VENV)/bin/squawk --assume-in-transaction --reporter gcc migrations/versions/*.sql
	@echo "squawk: no findings in migrations/versions"
	$(VENV)/bin/ruff check loader tests bench migrations devtools
	$(VENV)/bin/mypy  # [tool.mypy] in pyproject.toml: --strict over loader/ipintel and devtools

# One server serves pg_prove and pytest, chosen by devtools/backend.py: IPINTEL_TEST_DSN when set,
# else a container of docker/postgres.Dockerfile when a Docker engine answers, else the throwaway
# local cluster in $(TEST_PG_DIR) (fsync off); IPINTEL_TEST_BACKEND=local|container forces one.
# It says which in one line, and stops what it started whatever happens.
test: setup test-packages lint-migrations
	@$(PY) -m devtools.backend run --local-dir $(TEST_PG_DIR) -- bash -ec '\
	    echo "== pgTAP (pg_prove) against a migrated database"; \
	    PYTHON=$(PY) tests/run_pgtap.sh "$$IPINTEL_TEST_DSN"; \
	    echo "== pytest"; \
	    $(VENV)/bin/pytest -n $(TEST_WORKERS) --maxprocesses 4 $(PYTEST_ARGS)'

# The fault suite (tests/faults: SIGKILLs, PostgreSQL restarts, concurrent runs, every fault of the
# fake services, timeouts) on a throwaway cluster of its own: it restarts that server. Its counts
# are printed at the end. IPINTEL_FAULT_SEED / IPINTEL_FAULT_KILLS change the kill points.
test-faults: setup
	@set -e; \
	trap '$(LOCALDB) stop --dir $(FAULTS_PG_DIR)' EXIT; \
	url=$$($(LOCALDB_START) --dir $(FAULTS_PG_DIR) --fast --dbname postgres); \
	echo "== fault suite (tests/faults)"; \
	IPINTEL_TEST_DSN="$$url" $(VENV)/bin/pytest tests/faults $(PYTEST_ARGS)

# Its own cluster (fsync on, like production), so a benchmark never stops a test run's cluster.
bench: setup
	@set -e; \
	trap '$(LOCALDB) stop --dir $(BENCH_PG_DIR)' EXIT; \
	url=$$($(LOCALDB_START) --dir $(BENCH_PG_DIR) --dbname postgres); \
	IPINTEL_BENCH_DSN="$$url" $(PY) -m bench $(BENCH_ARGS)

# Every case on small sizes (about two minutes here), gated: CI runs it after make test, and it
# fails (exit 1, one line naming the case and both ratios) when a ratio to its floor, measured in
# the same run, is more than 2x worse than in bench/results/quick-reference.json (committed;
# README "Benchmarks" says how to refresh it), or take_snapshots takes 12x its floor UPDATE. The
# floor is a HOT update since revision 0038 (3.75 s instead of 18.4 s at 400K sessions), so the
# ratio of a healthy take_snapshots rose from 2-3x to 4.6x (400K) and 5.2x (these 50K sessions, quiet
# machine); when take_snapshots grew quadratically (issue 19) it took 3x its linear time.
BENCH_QUICK_ARGS = --only maxmind --ips 50000 --baseline-ips 1000 --networks 1000 \
	--only remerge --remerge-documents 20000 \
	--only cymru --cymru-ips 10000 --cymru-latency 0.5 \
	--only snapshots --snapshot-sessions 50000 --snapshot-ips 5000 --max-snapshot-ratio 12 \
	--only routing --routing-v4 20000 --routing-v6 4000 --routing-days 4 --routing-sessions 10000 \
	--only analyst --analyst-sessions 50000 --analyst-ips 10000 --analyst-asns 500 \
	--only ingest --ingest-events 100000
bench-quick:
	@$(MAKE) --no-print-directory bench BENCH_ARGS="$(BENCH_QUICK_ARGS) \
	    --out bench/results/quick-latest.json --reference bench/results/quick-reference.json"

# The change of every ratio between two results files (default: the last two `make bench` runs).
BENCH_PREVIOUS ?= bench/results/previous.json
BENCH_LATEST   ?= bench/results/latest.json
bench-compare:
	@$(PY) -m bench.table compare $(BENCH_PREVIOUS) $(BENCH_LATEST)

# destroy stops a cluster and removes its folder and its data, wherever they live.
clean:
	@for d in $(PG_DIR) $(TEST_PG_DIR) $(BENCH_PG_DIR) $(FAULTS_PG_DIR); do $(LOCALDB) destroy --dir $$d || exit; done
	rm -rf demo-data
