#!/bin/sh
# Run once by the postgres image when it creates the database (docker-entrypoint-initdb.d):
# the role Grafana reads with. It may read what ipintel's role creates later (the migrations),
# nothing else, and write nothing. Its password comes from a file secret.
set -eu
password=$(cat /run/secrets/grafana_db_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v password="$password" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'password';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER DEFAULT PRIVILEGES FOR ROLE ipintel GRANT USAGE ON SCHEMAS TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE ipintel GRANT SELECT ON TABLES TO grafana_reader;
SQL
