"""docker/compose.yaml and the images it builds, read without a Docker engine.

Every name the file uses resolves (services, secrets, volumes, build contexts, Dockerfiles,
bind-mounted folders), every secret a service's environment or init script reads is mounted in
that service, secret files stay out of git and of build contexts, and the PostgreSQL image
installs every extension the schema and the pgTAP suite create. `docker compose config` checks
the file too where the compose plugin is installed (it needs no engine). That the file comes up
healthy is tests/test_container_backend.py's, where an engine answers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
# PostgreSQL 15's contrib modules: in the postgres image's server package already.
CONTRIB = frozenset({
    "adminpack", "amcheck", "autoinc", "bloom", "btree_gin", "btree_gist", "citext", "cube", "dblink",
    "dict_int", "dict_xsyn", "earthdistance", "file_fdw", "fuzzystrmatch", "hstore", "insert_username",
    "intagg", "intarray", "isn", "lo", "ltree", "moddatetime", "old_snapshot", "pageinspect",
    "pg_buffercache", "pg_freespacemap", "pg_prewarm", "pg_stat_statements", "pg_surgery", "pg_trgm",
    "pg_visibility", "pgcrypto", "pgrowlocks", "pgstattuple", "plpgsql", "postgres_fdw", "refint", "seg",
    "sslinfo", "tablefunc", "tcn", "tsm_system_rows", "tsm_system_time", "unaccent", "uuid-ossp", "xml2",
})


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    return dict(_compose()["services"])


def _short_names(entries: list[Any]) -> list[str]:
    """Names in a service's secrets list, short (`- name`) or long (`- source: name`) syntax."""
    return [entry if isinstance(entry, str) else entry["source"] for entry in entries]


def _volume_sources(service: dict[str, Any]) -> list[str]:
    return [entry.split(":", 1)[0] if isinstance(entry, str) else entry["source"]
            for entry in service.get("volumes", [])]


def test_top_level_keys_are_compose_keys() -> None:
    assert set(_compose()) <= {"name", "services", "secrets", "volumes", "networks", "configs"}


@pytest.mark.parametrize("name", sorted(name for name, service in _services().items() if "build" in service))
def test_each_build_names_a_context_and_dockerfile_that_exist(name: str) -> None:
    build = _services()[name]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context.is_dir(), f"{name}: build context {build['context']} is not a folder"
    assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_secrets_resolve_both_ways() -> None:
    declared = set(_compose()["secrets"])
    used = {secret for service in _services().values() for secret in _short_names(service.get("secrets", []))}
    assert used <= declared, f"used, never declared: {sorted(used - declared)}"
    assert declared <= used, f"declared, used by no service: {sorted(declared - used)}"


def test_named_volumes_resolve_both_ways_and_bind_mounts_exist() -> None:
    declared = set(_compose().get("volumes") or {})
    named: set[str] = set()
    for name, service in _services().items():
        for source in _volume_sources(service):
            if source.startswith(("./", "../")):
                assert (DOCKER / source).exists(), f"{name}: {source} does not exist beside compose.yaml"
            elif not source.startswith(("/", "$")):  # host paths and ${VARIABLES} are the operator's
                named.add(source)
    assert named == declared


def test_every_secret_a_service_reads_is_mounted_in_it() -> None:
    for name, service in _services().items():
        mounted = set(_short_names(service.get("secrets", [])))
        texts = [str(value) for value in (service.get("environment") or {}).values()]
        for source in _volume_sources(service):  # init scripts mounted into the container
            folder = DOCKER / source
            if source.startswith("./") and folder.is_dir():
                texts += [script.read_text() for script in sorted(folder.iterdir()) if script.is_file()]
        read = {m for text in texts for m in re.findall(r"/run/secrets/([\w.-]+)", text)}
        assert read <= mounted, f"{name} reads /run/secrets/{sorted(read - mounted)} without mounting it"


def test_depends_on_names_services_that_can_meet_the_condition() -> None:
    services = _services()
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        # The short form (a list of names) means: started.
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, rule in depends.items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            condition = rule["condition"]
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: it has no healthcheck"


def test_the_database_healthcheck_asks_for_its_own_user_and_database() -> None:
    db = _services()["db"]
    command = " ".join(db["healthcheck"]["test"])
    assert f"-U {db['environment']['POSTGRES_USER']}" in command
    assert f"-d {db['environment']['POSTGRES_DB']}" in command


def test_secret_files_stay_out_of_git_and_of_build_contexts() -> None:
    files = [DOCKER / entry["file"] for entry in _compose()["secrets"].values()]
    assert {path.parent for path in files} == {DOCKER / "secrets"}
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in files:
        proc = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
        assert proc.returncode == 0, f"git would commit {path.relative_to(ROOT)}"
    # The build contexts: the repository (loader) and docker/ itself (the db image).
    assert "docker/secrets" in (ROOT / ".dockerignore").read_text().split()
    assert "secrets" in (DOCKER / ".dockerignore").read_text().split()


def _extensions_created() -> set[str]:
    pattern = re.compile(r"CREATE EXTENSION (?:IF NOT EXISTS )?\"?([\w-]+)", re.IGNORECASE)
    # pgTAP itself is created by tests/run_pgtap.sh
    files = [*(ROOT / "sql").glob("*.sql"), *(ROOT / "tests" / "sql").rglob("*.sql"), ROOT / "tests" / "run_pgtap.sh"]
    return {name for path in files for name in pattern.findall(path.read_text())}


def test_the_postgres_image_installs_every_extension_the_schema_and_tests_create() -> None:
    created = _extensions_created()
    assert {"btree_gist", "ip4r", "pgtap", "plpgsql_check"} <= created  # the search finds them
    dockerfile = (DOCKER / "postgres.Dockerfile").read_text()
    packages = set(re.findall(r"postgresql-15-[\w-]+", dockerfile))
    missing = {name for name in created - CONTRIB if f"postgresql-15-{name.replace('_', '-')}" not in packages}
    assert not missing, f"docker/postgres.Dockerfile does not install: {sorted(missing)}"


def compose_plugin() -> bool:
    """Whether `docker compose` (the v2 plugin) runs here; it needs no engine."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30,
                          check=False).returncode == 0


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    if not compose_plugin():
        pytest.skip("the docker compose plugin is not installed")
    copy = tmp_path / "docker"
    shutil.copytree(DOCKER, copy, ignore=shutil.ignore_patterns("secrets"))
    (copy / "secrets").mkdir()
    for entry in _compose()["secrets"].values():
        (copy / entry["file"]).write_text("placeholder\n")
    proc = subprocess.run(["docker", "compose", "-f", str(copy / "compose.yaml"), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
