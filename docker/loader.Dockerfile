# The ipintel loader (CLI `ipintel`) and the alembic migrations.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY loader ./loader
COPY migrations ./migrations
COPY sql ./sql
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin ipintel
# Numeric, so runtimes that check "runAsNonRoot" can verify it without reading /etc/passwd.
USER 10001
# MaxMind files are mounted here (geoipupdate output); never baked into the image.
ENV IPINTEL_GEOIP_DIR=/usr/share/GeoIP
ENTRYPOINT ["ipintel"]
CMD ["--help"]
