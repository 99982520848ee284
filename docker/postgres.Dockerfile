# PostgreSQL 15 with pgTAP and ip4r (routing history lookups), for running ipintel and its pgTAP
# suite in containers.
FROM postgres:15-bookworm
# Not pinned: the image follows the PGDG repository, and pgTAP must match the server build it
# ships with; a pinned version would break at the next minor release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15-pgtap postgresql-15-ip4r libtap-parser-sourcehandler-pgtap-perl \
 && rm -rf /var/lib/apt/lists/*
