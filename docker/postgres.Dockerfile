# PostgreSQL 15 with ip4r (routing history lookups), hll (attribution_daily's distinct IPs), pgTAP
# and plpgsql_check (the pgTAP suite's check of every PL/pgSQL function), for running ipintel and its tests in containers: the compose
# file's db service, and the tests' server where a Docker engine answers (devtools/backend.py).
FROM postgres:15-bookworm
# Not pinned: the image follows the PGDG repository, and pgTAP must match the server build it
# ships with; a pinned version would break at the next minor release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15-pgtap postgresql-15-plpgsql-check postgresql-15-ip4r postgresql-15-hll libtap-parser-sourcehandler-pgtap-perl \
 && rm -rf /var/lib/apt/lists/*
