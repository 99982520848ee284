"""The operations files `make test` checks (issue 16): the systemd units and the cron file in
docs/, the Grafana dashboard and its provisioning, the compose file and the Dockerfiles.

Each check runs on the file as shipped (no problem) and on deliberately broken copies (the
problem named), so a check that cannot fail would show here. The units also go through
`systemd-analyze verify` where it is installed (Debian's systemd package); the dashboard's SQL
runs on a migrated database.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml

from ipintel.enrich import EnrichSummary, PassSummary, StatusFile
from tests import opsfiles
from tests.opsfiles import (
    COMPOSE_FILE,
    CRON_FILE,
    DASHBOARD,
    DOCKER_DIR,
    SYSTEMD_DIR,
    check_compose,
    check_cron,
    check_dashboard,
    check_dockerfile,
    check_grafana_provisioning,
    check_metrics_pipeline,
    check_unit,
    verify_units,
)

UNITS = sorted(SYSTEMD_DIR.glob("ipintel-*"))
OPERATIONS_DOC = opsfiles.ROOT / "docs" / "operations.md"
needs_systemd = pytest.mark.skipif(opsfiles.systemd_analyze() is None,
                                   reason="systemd-analyze is not installed (Debian package systemd)")


def broken_copy(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    """A copy of `source` (same name, in tmp_path) with `old` replaced by `new`, and the other
    files of its folder beside it (a timer needs its service)."""
    text = source.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {source.name}: the broken case no longer applies"
    for sibling in source.parent.iterdir():
        if sibling.is_file():
            (tmp_path / sibling.name).write_text(sibling.read_text(encoding="utf-8"), encoding="utf-8")
    copy = tmp_path / source.name
    copy.write_text(text.replace(old, new), encoding="utf-8")
    return copy


# --------------------------------------------------------------------------------------------
# systemd units and the cron file
# --------------------------------------------------------------------------------------------
def test_the_units_are_a_service_and_timer_pair_per_command() -> None:
    assert [u.name for u in UNITS] == ["ipintel-enrich.service", "ipintel-enrich.timer",
                                       "ipintel-ingest.service", "ipintel-ingest.timer"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_passes_the_parser_checks(unit: Path) -> None:
    assert check_unit(unit) == []


@needs_systemd
def test_units_pass_systemd_analyze_verify() -> None:
    assert verify_units(UNITS) == []


# (file, text replaced, its replacement, what the parser says, whether systemd-analyze says something)
BROKEN_UNITS = [
    ("ipintel-enrich.service", "Type=oneshot", "Type=oneshoot", "Type= must be oneshot", True),
    ("ipintel-enrich.service", "Nice=10", "Nicety=10", "unknown key Nicety=", True),
    ("ipintel-enrich.service", "ipintel enrich --wait", "ipintel enrichh --wait", "ipintel's parser refuses it", False),
    ("ipintel-enrich.service", "--metrics-file", "--metric-file", "ipintel's parser refuses it", False),
    ("ipintel-enrich.service", "ipintel_enrich.prom", "ipintel_enrich.txt", "node_exporter reads only *.prom", False),
    ("ipintel-enrich.service", "[Service]", "[Servce]", "unknown section [Servce]", True),
    ("ipintel-ingest.service", "TimeoutStartSec=1h", "TimeoutStartSec=soon", "", True),
    ("ipintel-enrich.timer", "OnCalendar=hourly", "OnCalendar=every hour", "", True),
    ("ipintel-enrich.timer", "Persistent=true", "Persistant=true", "unknown key Persistant=", True),
]


@pytest.mark.parametrize(("name", "old", "new", "parser_says", "systemd_says"), BROKEN_UNITS,
                         ids=[f"{b[0]}:{b[2]}" for b in BROKEN_UNITS])
def test_a_broken_unit_is_caught(tmp_path: Path, name: str, old: str, new: str, parser_says: str,
                                 systemd_says: bool) -> None:
    copy = broken_copy(tmp_path, SYSTEMD_DIR / name, old, new)
    problems = check_unit(copy)
    if parser_says:
        assert any(parser_says in p for p in problems), problems
    if systemd_says and opsfiles.systemd_analyze() is not None:
        assert verify_units([copy]) != []
    assert problems or systemd_says, "a case nothing catches"


def test_a_timer_without_its_service_is_caught(tmp_path: Path) -> None:
    lonely = tmp_path / "ipintel-enrich.timer"
    lonely.write_text((SYSTEMD_DIR / lonely.name).read_text(encoding="utf-8"), encoding="utf-8")
    assert check_unit(lonely) == ["ipintel-enrich.timer: no ipintel-enrich.service beside it"]


def test_the_cron_file_passes_its_checks() -> None:
    assert check_cron(CRON_FILE) == []


@pytest.mark.parametrize(("old", "new", "says"), [
    ("17     * *", "17     24 *", "bad time field '24'"),
    ("enrich --wait", "enrich", "scheduled without --wait"),
    ("--metrics-file /var/lib/prometheus/node-exporter/ipintel_ingest.prom", "", "no --metrics-file"),
    ("exited $rc;", "exited $rc %;", "`%` ends a cron command line"),
])
def test_a_broken_cron_file_is_caught(tmp_path: Path, old: str, new: str, says: str) -> None:
    problems = check_cron(broken_copy(tmp_path, CRON_FILE, old, new))
    assert any(says in p for p in problems), problems


def test_operations_doc_shows_the_files_as_shipped() -> None:
    """docs/operations.md quotes the enrich pair and the cron file whole: the doc cannot drift."""
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(?:ini|sh|crontab)\n(.*?)^```", doc, re.MULTILINE | re.DOTALL)
    for path in (SYSTEMD_DIR / "ipintel-enrich.service", SYSTEMD_DIR / "ipintel-enrich.timer", CRON_FILE):
        assert path.read_text(encoding="utf-8") in blocks, f"docs/operations.md does not quote {path.name} as it is"


def test_operations_doc_explains_every_status_field_and_metric(tmp_path: Path) -> None:
    """Every key the status file holds and every metric of both metrics files has a row in
    docs/operations.md: a field added to the code without a word in the doc fails here."""
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    status = StatusFile(tmp_path / "status.json")
    status.write("finished", EnrichSummary(passes=[PassSummary("maxmind")]), 0)
    written = json.loads((tmp_path / "status.json").read_text(encoding="utf-8"))
    fields = [f"`{key}`" for key in written] + [f"`passes[].{key}`" for key in written["passes"][0]]
    assert [f for f in fields if f"| {f} |" not in doc and f"| {f} / " not in doc and f" / {f} |" not in doc] == []
    assert [name for name in opsfiles.EVERY_METRIC if f"| `{name}` |" not in doc] == []


# --------------------------------------------------------------------------------------------
# Grafana
# --------------------------------------------------------------------------------------------
def test_the_dashboard_reads_ipintel_metrics_and_views() -> None:
    text = DASHBOARD.read_text(encoding="utf-8")
    assert check_dashboard(text) == []
    dashboard = json.loads(text)
    kinds = {opsfiles.datasource_types(dashboard)[t["datasource"]["uid"]]
             for p in opsfiles.panels(dashboard) for t in p.get("targets", [])}
    assert kinds == {"prometheus", "grafana-postgresql-datasource"}
    # Every metric family of both files is on a panel (a metric nobody looks at is noise).
    used = set(opsfiles.METRIC_NAME.findall(text))
    assert opsfiles.EVERY_METRIC - used == set()


@pytest.mark.parametrize(("old", "new", "says"), [
    ('"expr": "ipintel_snapshots_incomplete"', '"expr": "ipintel_snapshot_incomplete"',
     "no metric ipintel_snapshot_incomplete"),
    ("FROM ipintel.snapshot_backlog", "FROM ipintel_staging.cowrie_events", "reads staging"),
    ('"uid": "${postgres}"', '"uid": "${postgresql}"', "is not one of the dashboard's variables"),
    ('"panels": [', '"panels": [[', "not JSON"),
])
def test_a_broken_dashboard_is_caught(old: str, new: str, says: str) -> None:
    text = DASHBOARD.read_text(encoding="utf-8")
    assert old in text
    problems = check_dashboard(text.replace(old, new, 1))
    assert any(says in p for p in problems), problems


def missing_schema_objects(conn: psycopg.Connection, sql: str) -> list[str]:
    """The ipintel.<name> references of `sql` that are neither a relation nor a function in the
    database's catalogue."""
    missing = []
    for schema, name in sorted(set(opsfiles.SCHEMA_OBJECT.findall(sql))):
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "               WHERE n.nspname = %(schema)s AND c.relname = %(name)s AND c.relkind IN ('r', 'v', 'm', 'p')) "
            "    OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
            "               WHERE n.nspname = %(schema)s AND p.proname = %(name)s)",
            {"schema": schema, "name": name}).fetchone()
        if not row or not row[0]:
            missing.append(f"{schema}.{name}")
    return missing


def test_every_dashboard_query_names_what_the_migrated_schema_has_and_runs(db: str) -> None:
    queries = opsfiles.sql_queries(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    assert len(queries) >= 8
    with psycopg.connect(db, autocommit=True) as conn:
        for title, sql in queries:
            assert missing_schema_objects(conn, sql) == [], title
            # As Grafana sends it, in a read-only transaction like its role's.
            with conn.transaction(force_rollback=True):
                conn.execute("SET TRANSACTION READ ONLY")
                conn.execute(opsfiles.expand_grafana_macros(sql)).fetchall()
        assert missing_schema_objects(conn, "SELECT * FROM ipintel.session_atribution, ipintel.report_top_asn()") == [
            "ipintel.report_top_asn", "ipintel.session_atribution"]


def test_grafana_is_provisioned_by_compose() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert check_grafana_provisioning(compose, DASHBOARD.read_text(encoding="utf-8")) == []
    compose["services"]["grafana"]["volumes"] = [v.replace("/var/lib/grafana/dashboards/ipintel", "/dashboards")
                                                 for v in compose["services"]["grafana"]["volumes"]]
    problems = check_grafana_provisioning(compose, DASHBOARD.read_text(encoding="utf-8"))
    assert problems == ["the dashboard provider reads /var/lib/grafana/dashboards/ipintel, compose mounts the "
                        "dashboards at /dashboards"]


# --------------------------------------------------------------------------------------------
# docker
# --------------------------------------------------------------------------------------------
def test_compose_and_its_dockerfiles_pass_their_checks() -> None:
    compose_text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert check_compose(compose_text) == []
    compose = yaml.safe_load(compose_text)
    assert {"db", "migrate", "loader", "node-exporter", "prometheus", "grafana"} <= set(compose["services"])
    assert check_metrics_pipeline(compose) == []


@pytest.mark.parametrize(("old", "new", "says"), [
    ("dockerfile: postgres.Dockerfile", "dockerfile: postgres.dockerfile", "no Dockerfile"),
    ("secrets: [db_password, loader_password, grafana_db_password]", "secrets: [db_password, loader_password, grafana_password]",
     "secret grafana_password is not declared"),
    ("image: prom/prometheus:v2.54.1", "image: prom/prometheus", "needs a pinned tag"),
    ("GF_SECURITY_ADMIN_PASSWORD__FILE: /run/secrets/grafana_admin_password", "GF_SECURITY_ADMIN_PASSWORD: hunter2",
     "GF_SECURITY_ADMIN_PASSWORD in the environment"),
    ("DATABASE_URL: postgresql://ipintel@db:5432/ipintel\n      PGPASSFILE",
     "DATABASE_URL: postgresql://ipintel:hunter2@db:5432/ipintel\n      PGPASSFILE", "holds a URL with a password"),
    ("      - ./grafana/provisioning:", "      - ./grafana/provisoning:", "mounts ./grafana/provisoning"),
    ("depends_on: [node-exporter]", "depends_on: [node_exporter]", "depends on node_exporter, which is not a service"),
    ("      - metrics:/metrics:ro", "      - textfiles:/metrics:ro", "volume textfiles is not declared"),
    ("  db:\n    build:", "  db:\n    profiles: [monitoring]\n    build:", "depends on db, which runs only with profiles"),
    ("    healthcheck:", "    x-healthcheck:", "which has no healthcheck"),
])
def test_a_broken_compose_file_is_caught(old: str, new: str, says: str) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert old in text
    problems = check_compose(text.replace(old, new, 1))
    assert any(says in p for p in problems), problems


@pytest.mark.parametrize(("old", "new", "says"), [
    ("COPY loader ./loader", "COPY loaders ./loader", "COPY loaders: not in the build context"),
    ("FROM python:3.11-slim-bookworm AS wheel", "FRM python:3.11-slim-bookworm AS wheel", "unknown instruction FRM"),
    ('ENTRYPOINT ["ipintel"]', 'ENTRYPOINT ["ipintel"', "not a JSON array"),
    ("USER 10001", "USER root", "ends running as root"),
])
def test_a_broken_dockerfile_is_caught(old: str, new: str, says: str) -> None:
    text = (DOCKER_DIR / "loader.Dockerfile").read_text(encoding="utf-8")
    assert old in text
    assert check_dockerfile(text, opsfiles.ROOT) == []
    problems = check_dockerfile(text.replace(old, new, 1), opsfiles.ROOT)
    assert any(says in p for p in problems), problems


def test_the_metrics_pipeline_breaks_when_node_exporter_reads_elsewhere() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    compose["services"]["node-exporter"]["command"] = ["--collector.textfile.directory=/textfile"]
    assert check_metrics_pipeline(compose) == ["node-exporter reads /textfile, which is no volume the loader writes to"]


def test_the_database_init_script_is_valid_shell(tmp_path: Path) -> None:
    script = DOCKER_DIR / "postgres" / "initdb" / "10_grafana_reader.sh"
    assert script.stat().st_mode & 0o111, "the postgres image runs only executable *.sh (others are sourced)"
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0
    broken = broken_copy(tmp_path, script, "password=$(cat /run/secrets/grafana_db_password)",
                         "password=$(cat /run/secrets/grafana_db_password")
    assert subprocess.run(["sh", "-n", str(broken)], capture_output=True).returncode != 0
