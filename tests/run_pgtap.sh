#!/usr/bin/env bash
# Run the pgTAP files under tests/sql/ with pg_prove against a database built by the
# migrations, and fail unless tests actually ran and all passed.
# The helpers the files share (tests/sql/helpers.sql: schema ipintel_tests) are installed first.
#
# pg_prove looks for *.pg files by default: pointed at .sql files without --ext .sql it runs
# nothing, prints "Result: NOTESTS" and exits 0. This script refuses that silent green.
#
# usage: tests/run_pgtap.sh [SERVER_DSN]   (a libpq URI or key=value string — any database name;
#        its other parameters, such as ?passfile=/path, are kept)
# Without SERVER_DSN, the server is the one pytest would use (devtools/backend.py: IPINTEL_TEST_DSN,
# else a container when a Docker engine answers, else a throwaway local cluster), started for
# this run and stopped after it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
py="${PYTHON:-$root/.venv/bin/python}"
if [ $# -eq 0 ]; then
    cd "$root"
    exec "$py" -m devtools.backend run -- bash -c 'exec "$0" "$IPINTEL_TEST_DSN"' "$here/run_pgtap.sh"
fi
server_uri="$1"
dbname="ipintel_pgtap_$$"
# The same server, another database: libpq parses the DSN (a query string may hold slashes).
conninfo() {
    "$py" -c 'import sys; from psycopg.conninfo import make_conninfo; print(make_conninfo(sys.argv[1], dbname=sys.argv[2]))' \
        "$server_uri" "$1"
}
admin_uri="$(conninfo postgres)"
db_uri="$(conninfo "$dbname")"

# Everything goes over TCP to the URI and the output file is ours: nothing here needs a path
# the server's user (postgres, when we are root) can reach.
out="$(mktemp)"
psql -q -X -v ON_ERROR_STOP=1 --dbname "$admin_uri" -c "CREATE DATABASE $dbname"
trap 'psql -q -X --dbname "$admin_uri" -c "DROP DATABASE IF EXISTS $dbname" >/dev/null 2>&1 || true; rm -f "$out"' EXIT
DATABASE_URL="$db_uri" "$py" -m alembic -c "$root/alembic.ini" upgrade head 2>/dev/null
psql -q -X -v ON_ERROR_STOP=1 --dbname "$db_uri" -c "CREATE EXTENSION IF NOT EXISTS pgtap"
psql -q -X -v ON_ERROR_STOP=1 --dbname "$db_uri" -f "$here/sql/helpers.sql"

mapfile -t files < <(find "$here/sql" -name '*.test.sql' | sort)
if [ "${#files[@]}" -eq 0 ]; then
    echo "run_pgtap: no *.test.sql files under tests/sql" >&2
    exit 1
fi
status=0
# pg_prove hands --dbname to prove as `--pgtap-option dbname=VALUE`, which takes a VALUE with an
# unescaped `=` for a hash: the key=value conninfo goes through with each `=` escaped as `\=`.
pg_prove --ext .sql --dbname "${db_uri//=/\\=}" "${files[@]}" 2>&1 | tee "$out" || status=$?
if [ "$status" -ne 0 ]; then
    exit "$status"
fi
if ! grep -q '^Result: PASS' "$out" || ! grep -Eq '^Files=[1-9][0-9]*, Tests=[1-9]' "$out"; then
    echo "run_pgtap: pg_prove did not report passing tests (NOTESTS?)" >&2
    exit 1
fi
