#!/usr/bin/env bash
# The wheel works without the repository: build it (through the sdist, as `python -m build`
# does), check that it carries every file of sql/ and migrations/ byte for byte, install it in a
# fresh virtualenv in a temporary folder outside the repository, and from there migrate, ingest a
# small Cowrie sample and enrich it with MaxMind (the bundled demo City database) on a throwaway
# cluster, then `ipintel status`. Run by .ci/run after `make test`.
#
# usage: tests/smoke_wheel.sh   (PYTHON: a Python with `build`, default .venv/bin/python; without
#        one, as in a fresh clone, `build` is installed in a virtualenv of its own first)
set -euo pipefail
started=$SECONDS
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/ipintel-smoke.XXXXXX")"
case "$tmp/" in "$root"/*) echo "smoke_wheel: $tmp is inside the repository" >&2; exit 1 ;; esac

# The throwaway cluster is the repository's development helper (devtools/localdb.py, not in the
# wheel): the installed ipintel only ever sees DATABASE_URL. usage: localdb PYTHON ACTION [ARG...]
localdb() { PYTHONPATH="$root" "$1" -m devtools.localdb "${@:2}"; }
# Whatever happens: the cluster is stopped and removed (destroy needs only the standard library,
# so this works even when the install failed), then the folder.
cleanup() {
    local status=$?
    localdb python3 destroy --dir "$tmp/pg" >/dev/null 2>&1 || true
    rm -rf "$tmp"
    echo "smoke_wheel: $([ "$status" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s"
    exit "$status"
}
trap cleanup EXIT
step() { echo "== $* ($((SECONDS - started)) s)"; }

step "build the sdist and the wheel from it"
if ! "$py" -c 'import build' 2>/dev/null; then
    python3 -m venv "$tmp/build-venv"
    "$tmp/build-venv/bin/pip" install -q --disable-pip-version-check build >"$tmp/build.log" 2>&1 \
        || { cat "$tmp/build.log" >&2; exit 1; }
    py="$tmp/build-venv/bin/python"
fi
"$py" -m build --outdir "$tmp/dist" "$root" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
wheel=("$tmp"/dist/ipintel-*.whl)

step "the wheel carries sql/, migrations/ and the named queries, and no development helper"
"$py" - "$root" "${wheel[0]}" <<'EOF'
import sys
import zipfile
from pathlib import Path

root, wheel = Path(sys.argv[1]), zipfile.ZipFile(sys.argv[2])
shipped = set(wheel.namelist())
expected = {f"ipintel/sql/schema/{p.name}": p for p in (root / "sql").glob("*.sql")}
expected |= {f"ipintel/migrations/{p.relative_to(root / 'migrations')}": p
             for pattern in ("env.py", "script.py.mako", "versions/*.py", "versions/*.sql")
             for p in (root / "migrations").glob(pattern)}
expected["ipintel/sql/queries.sql"] = root / "loader/ipintel/sql/queries.sql"
expected |= {f"ipintel/demo_routing/{p.name}": p for p in (root / "loader/ipintel/demo_routing").iterdir()}
revisions = sorted((root / "migrations/versions").glob("*.py"))
assert len(revisions) > 1 and len(expected) > 2 * len(revisions), "found no sql/ or migrations/ to check"
for revision in revisions:  # every revision runs the two SQL files beside it
    for direction in ("upgrade", "downgrade"):
        sql = revision.with_name(f"{revision.stem}.{direction}.sql")
        assert sql.is_file(), f"{sql} is missing from the repository"
missing = sorted(name for name in expected if name not in shipped)
assert not missing, f"missing from the wheel: {missing}"
differ = sorted(name for name, path in expected.items() if wheel.read(name) != path.read_bytes())
assert not differ, f"differ from the repository: {differ}"
packages = {name.split("/")[0] for name in shipped if not name.split("/")[0].endswith(".dist-info")}
assert packages == {"ipintel"}, f"the wheel installs more than ipintel: {sorted(packages)}"
assert "ipintel/localdb.py" not in shipped, "the development cluster (devtools/localdb.py) is in the wheel"
print(f"{len(expected)} files of sql/, migrations/, queries.sql and demo_routing/ shipped ({len(revisions)} revisions)")
EOF

step "install the wheel in a fresh virtualenv in $tmp"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check "${wheel[0]}" >"$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log" >&2; exit 1; }

# From here on: only the installed ipintel, in a folder that is not the repository, with no
# setting of the caller's shell.
mkdir "$tmp/work"
cd "$tmp/work"
unset PYTHONPATH DATABASE_URL PGPASSFILE IPINTEL_CONFIG
for name in $(compgen -e | grep '^IPINTEL_' || true); do unset "$name"; done
export PATH="$tmp/venv/bin:$PATH"
location="$(python -c 'import ipintel; print(ipintel.__file__)')"
case "$location" in "$tmp/venv/"*) ;; *) echo "smoke_wheel: ipintel imported from $location" >&2; exit 1 ;; esac
ipintel --version

step "a throwaway cluster (the repository's devtools.localdb)"
DATABASE_URL="$(localdb python start --dir "$tmp/pg" --fast --dbname ipintel_smoke)"
export DATABASE_URL

step "ipintel migrate"
ipintel migrate 2>/dev/null
ipintel migrate --status

step "ipintel ingest: a small seeded Cowrie sample (the installed demo generator)"
python -c 'import sys; from pathlib import Path; from ipintel import demo_logs
demo_logs.generate(Path(sys.argv[1]), sessions=200, days=2, sensors=1)' "$tmp/logs"
ipintel ingest "$tmp/logs" >/dev/null

step "ipintel enrich --source maxmind (the bundled GeoLite2-City demo database)"
ipintel enrich --source maxmind 2>/dev/null | tail -n 4

step "ipintel status"
ipintel status >"$tmp/status.txt"
grep -q '^│ maxmind ' "$tmp/status.txt" || { cat "$tmp/status.txt" >&2; exit 1; }
enriched="$(psql -X -At --dbname "$DATABASE_URL" -c \
    "SELECT count(*) FROM ipintel.ip_inventory i JOIN ipintel.enrichment_state s USING (ip) WHERE s.source = 'maxmind'")"
echo "IPs enriched by MaxMind: $enriched"
[ "$enriched" -gt 0 ]
