#!/bin/sh
# Runs once, when the db container initialises its data folder (docker-entrypoint-initdb.d).
# Creates ipintel's three roles NOLOGIN (revision 0021 then only hands them the objects and the
# grants) and the loader's login role, whose password comes from a secret file, never the
# environment. `ipintel migrate` runs as POSTGRES_USER (the owner's member); the loader service
# logs in as ipintel_cron, a member of ipintel_loader only.
set -eu
loader_password=$(cat /run/secrets/loader_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pw="$loader_password" <<'SQL'
CREATE ROLE ipintel_owner NOLOGIN;
CREATE ROLE ipintel_loader NOLOGIN;
CREATE ROLE ipintel_reader NOLOGIN;
CREATE ROLE ipintel_cron LOGIN PASSWORD :'pw' IN ROLE ipintel_loader;
SQL
