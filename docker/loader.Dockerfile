# The ipintel loader (CLI `ipintel`): the wheel, which carries the SQL and the migrations, built
# in one stage and installed in the next; the source tree never reaches the final image.
# Build context: the repository root (compose.yaml: context ..).

FROM python:3.11-slim-bookworm AS wheel
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# loader/ipintel/sql/schema and loader/ipintel/migrations are links to sql/ and migrations/:
# COPY keeps links as links, so the three folders keep their places and the build follows them.
COPY pyproject.toml README.md ./
COPY loader ./loader
COPY sql ./sql
COPY migrations ./migrations
RUN pip install "build==1.*" \
 && python -m build --wheel --outdir /dist .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Numeric, so runtimes that check "runAsNonRoot" can verify it without reading /etc/passwd; its
# home is the working directory (`ipintel demo` writes its sample there).
RUN useradd --system --uid 10001 --create-home --home-dir /app --shell /usr/sbin/nologin ipintel
RUN --mount=type=bind,from=wheel,source=/dist,target=/dist \
    pip install /dist/*.whl
WORKDIR /app
USER 10001
# MaxMind files are mounted here (geoipupdate output); never baked into the image.
ENV IPINTEL_GEOIP_DIR=/usr/share/GeoIP
ENTRYPOINT ["ipintel"]
CMD ["--help"]
