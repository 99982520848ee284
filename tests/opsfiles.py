"""Static checks of the operations files (issue 16): systemd units, the cron file, the Grafana
dashboard and its provisioning, the compose file and the Dockerfiles.

Each `check_*` returns the problems it found, one line each (an empty list: the file is fine),
so a test can run it on the real file and on a deliberately broken copy and see both answers.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ipintel import cli, metrics

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD_DIR = ROOT / "docs" / "systemd"
CRON_FILE = ROOT / "docs" / "cron" / "ipintel"
DOCKER_DIR = ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
DASHBOARD = DOCKER_DIR / "grafana" / "dashboards" / "ipintel.json"
GRAFANA_DATASOURCES = DOCKER_DIR / "grafana" / "provisioning" / "datasources" / "ipintel.yaml"
GRAFANA_DASHBOARDS = DOCKER_DIR / "grafana" / "provisioning" / "dashboards" / "ipintel.yaml"
PROMETHEUS_CONFIG = DOCKER_DIR / "prometheus" / "prometheus.yml"
INSTALLED_IPINTEL = "/opt/ipintel/bin/ipintel"  # where the units and the cron file expect it

# ------------------------------------------------------------------------------------------
# systemd units
# ------------------------------------------------------------------------------------------
# The keys the units may use, by section (systemd.unit(5), systemd.service(5), systemd.exec(5),
# systemd.kill(5), systemd.timer(5)): an unknown key is what systemd only warns about and ignores.
UNIT_KEYS: dict[str, set[str]] = {
    "Unit": {"Description", "Documentation", "Wants", "Requires", "After", "Before", "ConditionPathExists"},
    "Service": {"Type", "User", "Group", "SupplementaryGroups", "EnvironmentFile", "Environment", "StateDirectory",
                "LogsDirectory", "WorkingDirectory", "ExecStart", "ExecStartPre", "TimeoutStartSec", "TimeoutStopSec",
                "SuccessExitStatus", "Nice", "NoNewPrivileges", "PrivateTmp", "ProtectSystem", "ProtectHome",
                "ReadWritePaths", "ReadOnlyPaths", "KillSignal", "IOSchedulingClass"},
    "Timer": {"OnCalendar", "OnBootSec", "OnUnitActiveSec", "RandomizedDelaySec", "Persistent", "AccuracySec", "Unit"},
    "Install": {"WantedBy", "RequiredBy", "Alias"},
}
REQUIRED_KEYS: dict[str, dict[str, set[str]]] = {
    ".service": {"Unit": {"Description"}, "Service": {"Type", "User", "ExecStart", "TimeoutStartSec"}},
    ".timer": {"Unit": {"Description"}, "Timer": {"OnCalendar", "Persistent"}, "Install": {"WantedBy"}},
}


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values]}} (systemd.syntax(7): `[Section]`, `Key=value`,
    `#` / `;` comments, a trailing backslash continues the line). Raises ValueError."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    lines = iter(enumerate(text.splitlines(), 1))
    for number, raw in lines:
        line = raw.strip()
        while line.endswith("\\"):  # continuation
            nxt = next(lines, None)
            if nxt is None:
                raise ValueError(f"line {number}: a continuation at the end of the file")
            line = line[:-1] + " " + nxt[1].strip()
        if not line or line[0] in "#;":
            continue
        section = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if section:
            current = sections.setdefault(section.group(1), {})
            continue
        if current is None:
            raise ValueError(f"line {number}: {line!r} before any [Section]")
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()):
            raise ValueError(f"line {number}: not Key=value: {line!r}")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def ipintel_arguments(command_line: str) -> list[str] | None:
    """The arguments after the installed `ipintel` in a command line (None: it runs no ipintel)."""
    words = shlex.split(command_line)
    for i, word in enumerate(words):
        if word == INSTALLED_IPINTEL:
            rest = words[i + 1:]
            # A shell command line (cron) ends ipintel's arguments at its first redirection or operator.
            end = next((j for j, w in enumerate(rest) if w.startswith((">", "2>", "|", "&", ";")) or w in ("||", "&&")),
                       len(rest))
            return rest[:end]
    return None


def check_ipintel_arguments(args: list[str]) -> list[str]:
    """Problems with an `ipintel ...` invocation: parsed by ipintel's own parser (a subcommand or
    option that does not exist fails here), and its --metrics-file named as node_exporter reads."""
    try:
        parsed = cli.build_parser().parse_args(args)
    except SystemExit:
        return [f"ipintel {' '.join(args)}: ipintel's parser refuses it"]
    problems = []
    metrics_file = getattr(parsed, "metrics_file", None)
    if metrics_file is None:
        problems.append(f"ipintel {parsed.command}: no --metrics-file")
    elif not metrics_file.name.endswith(metrics.SUFFIX):
        problems.append(f"--metrics-file {metrics_file}: node_exporter reads only *{metrics.SUFFIX}")
    if parsed.command == "enrich" and not (parsed.wait and parsed.status_file):
        problems.append("ipintel enrich: scheduled without --wait or --status-file")
    return problems


def check_unit(path: Path) -> list[str]:
    """The parser's checks of one unit: sections, known and required keys, what ExecStart runs,
    and that a timer's service is beside it."""
    try:
        unit = parse_unit(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [f"{path.name}: {exc}"]
    problems = []
    for section, keys in unit.items():
        if section not in UNIT_KEYS:
            problems.append(f"{path.name}: unknown section [{section}]")
            continue
        problems += [f"{path.name}: unknown key {key}= in [{section}]" for key in sorted(set(keys) - UNIT_KEYS[section])]
    for section, keys in REQUIRED_KEYS.get(path.suffix, {}).items():
        problems += [f"{path.name}: [{section}] has no {key}=" for key in sorted(keys - set(unit.get(section, {})))]
    if path.suffix == ".service":
        service = unit.get("Service", {})
        if service.get("Type") != ["oneshot"]:
            problems.append(f"{path.name}: Type= must be oneshot (a timer's run ends)")
        for command in service.get("ExecStart", []):
            args = ipintel_arguments(command)
            if args is None:
                problems.append(f"{path.name}: ExecStart does not run {INSTALLED_IPINTEL}")
            else:
                problems += [f"{path.name}: {p}" for p in check_ipintel_arguments(args)]
    elif path.suffix == ".timer":
        service = path.with_suffix(".service")
        if not service.exists():
            problems.append(f"{path.name}: no {service.name} beside it")
    else:
        problems.append(f"{path.name}: neither a .service nor a .timer")
    return problems


def systemd_analyze() -> str | None:
    return shutil.which("systemd-analyze")


def verify_units(paths: Iterable[Path]) -> list[str]:
    """`systemd-analyze verify` of the units, in a copy whose ExecStart names an executable that
    exists here (systemd checks that the command can run). Any line it prints is a problem: it
    only warns about an unknown key or a value it cannot parse, and still exits 0."""
    analyze = systemd_analyze()
    assert analyze is not None
    stand_in = shutil.which("ipintel") or str(Path(sys.executable).with_name("ipintel"))
    with tempfile.TemporaryDirectory(prefix="ipintel-units-") as tmp:
        copies = []
        for path in paths:
            copy = Path(tmp) / path.name
            copy.write_text(path.read_text(encoding="utf-8").replace(INSTALLED_IPINTEL, stand_in), encoding="utf-8")
            copies.append(str(copy))
        done = subprocess.run([analyze, "verify", "--man=no", *copies], capture_output=True, text=True, timeout=120,
                              cwd=tmp)
    output = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode != 0 and not output:
        output = [f"systemd-analyze verify exited {done.returncode}"]
    return output


# ------------------------------------------------------------------------------------------
# cron
# ------------------------------------------------------------------------------------------
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def check_cron(path: Path) -> list[str]:
    """An /etc/cron.d file: variables, then `m h dom mon dow user command` lines whose ipintel
    invocation ipintel's parser accepts; no `%` (cron turns it into a newline)."""
    problems = []
    jobs = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#") or re.match(r"^[A-Z_]+=\S+$", line):
            continue
        fields = line.split(None, 6)
        if len(fields) < 7:
            problems.append(f"{path.name}:{number}: not `m h dom mon dow user command`")
            continue
        for field, (low, high) in zip(fields[:5], CRON_RANGES, strict=True):
            numbers = [int(n) for n in re.findall(r"\d+", field.split("/")[0])]
            if not CRON_FIELD.match(field) or any(not low <= n <= high for n in numbers):
                problems.append(f"{path.name}:{number}: bad time field {field!r}")
        if "%" in fields[6]:
            problems.append(f"{path.name}:{number}: `%` ends a cron command line")
        args = ipintel_arguments(fields[6])
        if args is None:
            problems.append(f"{path.name}:{number}: runs no {INSTALLED_IPINTEL}")
        else:
            jobs += 1
            problems += [f"{path.name}:{number}: {p}" for p in check_ipintel_arguments(args)]
    if not jobs:
        problems.append(f"{path.name}: no job")
    return problems


# ------------------------------------------------------------------------------------------
# Grafana
# ------------------------------------------------------------------------------------------
METRIC_NAME = re.compile(r"\bipintel_[a-z0-9_]+\b")
SCHEMA_OBJECT = re.compile(r"\b(ipintel(?:_staging)?)\.([a-z_][a-z0-9_]*)\b")
EVERY_METRIC = {name for specs in metrics.CATALOGUE.values() for name in specs}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, the ones inside collapsed rows included."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found += panel.get("panels", [])
    return found


def datasource_types(dashboard: dict[str, Any]) -> dict[str, str]:
    """`${variable}` -> data source type, from the dashboard's data source variables."""
    return {f"${{{v['name']}}}": v["query"] for v in dashboard.get("templating", {}).get("list", [])
            if v.get("type") == "datasource"}


def sql_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, SQL) of every PostgreSQL query."""
    return [(p["title"], t["rawSql"]) for p in panels(dashboard) for t in p.get("targets", []) if "rawSql" in t]


def check_dashboard(text: str) -> list[str]:
    """The dashboard parses, every panel has a query on a data source the dashboard declares,
    every PromQL query names only metrics ipintel writes (ipintel.metrics.CATALOGUE), and the SQL
    reads only the ipintel schema (never staging)."""
    try:
        dashboard = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"not JSON: {exc}"]
    problems = []
    types = datasource_types(dashboard)
    if not dashboard.get("uid") or not dashboard.get("title"):
        problems.append("the dashboard needs a uid and a title")
    ids = [p.get("id") for p in panels(dashboard)]
    if len(ids) != len(set(ids)):
        problems.append("panel ids repeat")
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        targets = panel.get("targets") or []
        panel_uid = (panel.get("datasource") or {}).get("uid")
        if panel_uid is not None and panel_uid not in types:
            problems.append(f"{title}: data source {panel_uid!r} is not one of the dashboard's variables {sorted(types)}")
        if not targets:
            problems.append(f"{title}: no query")
        for target in targets:
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            kind = types.get(uid or "")
            if kind == "prometheus":
                names = set(METRIC_NAME.findall(target.get("expr", "")))
                if not names:
                    problems.append(f"{title}: PromQL {target.get('expr')!r} names no ipintel metric")
                problems += [f"{title}: no metric {n} in ipintel's metrics files" for n in sorted(names - EVERY_METRIC)]
            elif kind == "grafana-postgresql-datasource":
                objects = SCHEMA_OBJECT.findall(target.get("rawSql", ""))
                if not objects:
                    problems.append(f"{title}: the SQL reads nothing of the ipintel schema")
                problems += [f"{title}: reads staging ({s}.{o})" for s, o in objects if s != "ipintel"]
            else:
                problems.append(f"{title}: data source {uid!r} is not one of the dashboard's variables {sorted(types)}")
    return problems


# Grafana's PostgreSQL macros, as it expands them for a fixed time range (ISO timestamps, epoch
# buckets), so the test can run each panel's SQL as Grafana would send it.
GRAFANA_FROM, GRAFANA_TO = "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"


def expand_grafana_macros(sql: str) -> str:
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{GRAFANA_FROM}' AND '{GRAFANA_TO}'", sql)
    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),\s*'(\d+)h'\)",
                 lambda m: f"floor(extract(epoch FROM {m.group(1)}) / {int(m.group(2)) * 3600}) * "
                           f"{int(m.group(2)) * 3600} AS \"time\"", sql)
    sql = sql.replace("$__timeFrom()", f"'{GRAFANA_FROM}'").replace("$__timeTo()", f"'{GRAFANA_TO}'")
    if "$__" in sql:
        raise ValueError(f"a Grafana macro this check does not expand: {sql}")
    return sql


def check_grafana_provisioning(compose: dict[str, Any], dashboard_text: str) -> list[str]:
    """The provisioning files parse, each data source variable of the dashboard has a provisioned
    data source of its type, and the dashboard provider reads the folder compose mounts the
    dashboard into."""
    problems = []
    datasources = yaml.safe_load(GRAFANA_DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    provider = yaml.safe_load(GRAFANA_DASHBOARDS.read_text(encoding="utf-8"))["providers"][0]
    provisioned = {d["type"] for d in datasources}
    for variable, kind in datasource_types(json.loads(dashboard_text)).items():
        if kind not in provisioned:
            problems.append(f"dashboard variable {variable}: no provisioned data source of type {kind}")
    for d in datasources:
        password = d.get("secureJsonData", {}).get("password")
        if password is not None and not str(password).startswith("$__file{/run/secrets/"):
            problems.append(f"data source {d['name']}: the password must come from a secret file")
    grafana = compose["services"].get("grafana", {})
    mounts = dict(_bind_mounts(grafana))
    dashboards_dir = mounts.get("./grafana/dashboards")
    if dashboards_dir != provider["options"]["path"]:
        problems.append(f"the dashboard provider reads {provider['options']['path']}, compose mounts the "
                        f"dashboards at {dashboards_dir}")
    if mounts.get("./grafana/provisioning") != "/etc/grafana/provisioning":
        problems.append("compose does not mount ./grafana/provisioning at /etc/grafana/provisioning")
    return problems


# ------------------------------------------------------------------------------------------
# docker: compose and Dockerfiles
# ------------------------------------------------------------------------------------------
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of a service's short-syntax volumes whose source is a path."""
    found = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/", "$")):
            found.append((source, target))
    return found


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def check_compose(text: str, folder: Path = DOCKER_DIR) -> list[str]:
    """What `docker compose config` and a first `up` would stumble on: unknown services, volumes
    or secrets, build files and mounted files that do not exist, images without a pinned tag,
    a healthy-condition on a service without a healthcheck, a password in the environment."""
    try:
        compose = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"not YAML: {exc}"]
    problems = []
    services = compose.get("services") or {}
    volumes, secrets = set(compose.get("volumes") or {}), compose.get("secrets") or {}
    for name, secret in secrets.items():
        if not str(secret.get("file", "")).startswith("./secrets/"):
            problems.append(f"secret {name}: its file must be under docker/secrets/ (git-ignored)")
    for name, service in services.items():
        build, image = service.get("build"), service.get("image")
        if build:
            context = (folder / build.get("context", ".")).resolve()
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: no Dockerfile {dockerfile}")
            else:
                problems += [f"{name}: {p}" for p in check_dockerfile(dockerfile.read_text(encoding="utf-8"), context)]
        elif not image or ":" not in image or image.endswith(":latest"):
            problems.append(f"{name}: image {image!r} needs a pinned tag")
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                if not (folder / source).exists():
                    problems.append(f"{name}: mounts {source}, which does not exist")
            elif not source.startswith(("/", "$")) and source not in volumes:
                problems.append(f"{name}: volume {source} is not declared")
        problems += [f"{name}: secret {s} is not declared" for s in service.get("secrets", []) if s not in secrets]
        for other, condition in _depends_on(service).items():
            if other not in services:
                problems.append(f"{name}: depends on {other}, which is not a service")
            elif condition not in DEPENDS_CONDITIONS:
                problems.append(f"{name}: unknown condition {condition} on {other}")
            elif condition == "service_healthy" and "healthcheck" not in services[other]:
                problems.append(f"{name}: waits for {other} to be healthy, which has no healthcheck")
            elif "profiles" in services[other] and "profiles" not in service:
                problems.append(f"{name}: depends on {other}, which runs only with profiles {services[other]['profiles']}")
        environment = service.get("environment") or {}
        for key, value in (environment.items() if isinstance(environment, dict) else []):
            if re.search(r"PASSWORD|SECRET", key) and not key.endswith("_FILE"):
                problems.append(f"{name}: {key} in the environment (use a secret file)")
            if re.search(r"://[^@/\s]*:[^@/\s]+@", str(value)):
                problems.append(f"{name}: {key} holds a URL with a password")
    return problems


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    instructions = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    if pending:
        instructions.append(("UNTERMINATED", pending))
    return instructions


DOCKERFILE_INSTRUCTIONS = {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "ENTRYPOINT", "CMD",
                           "EXPOSE", "LABEL", "VOLUME", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "ONBUILD"}


def check_dockerfile(text: str, context: Path) -> list[str]:
    """Instructions Docker knows, FROM first with a pinned tag, COPY sources that exist in the
    build context (stage copies aside), a final stage that does not run as root when it says
    USER, and exec-form ENTRYPOINT/CMD that parse as JSON."""
    instructions = dockerfile_instructions(text)
    problems = [f"unknown instruction {word}" for word, _ in instructions if word not in DOCKERFILE_INSTRUCTIONS]
    if not instructions or instructions[0][0] not in ("FROM", "ARG"):
        problems.append("the first instruction is not FROM")
    for word, args in instructions:
        if word == "FROM":
            image = args.split()[0]
            if ":" not in image or image.endswith(":latest"):
                problems.append(f"FROM {image}: needs a pinned tag")
        elif word == "COPY" and "--from=" not in args:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            problems += [f"COPY {s}: not in the build context {context}" for s in sources
                         if not list(context.glob(s))]
        elif word in ("ENTRYPOINT", "CMD") and args.startswith("["):
            try:
                json.loads(args)
            except json.JSONDecodeError:
                problems.append(f"{word} {args}: not a JSON array")
    users = [args for word, args in instructions if word == "USER"]
    if users and users[-1] in ("root", "0"):
        problems.append("the image ends running as root")
    return problems


def check_metrics_pipeline(compose: dict[str, Any]) -> list[str]:
    """From ipintel's --metrics-file to Grafana: the loader writes into the volume node_exporter's
    textfile collector reads, and Prometheus scrapes a node_exporter that is a compose service."""
    services = compose["services"]
    problems = []
    loader = dict(str(v).split(":")[:2] for v in services["loader"].get("volumes", []) if not str(v).startswith(("/", ".", "$")))
    exporter = services.get("node-exporter", {})
    exporter_volumes = dict(str(v).split(":")[:2] for v in exporter.get("volumes", []))
    textfile_dirs = [a.split("=", 1)[1] for a in exporter.get("command", []) if a.startswith("--collector.textfile.directory=")]
    if len(textfile_dirs) != 1:
        return ["node-exporter: no --collector.textfile.directory"]
    volume = next((name for name, target in exporter_volumes.items() if target == textfile_dirs[0]), None)
    if volume is None or volume not in loader:
        problems.append(f"node-exporter reads {textfile_dirs[0]}, which is no volume the loader writes to")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    for target in targets:
        if target.split(":")[0] not in services:
            problems.append(f"prometheus scrapes {target}, which is not a compose service")
    prometheus_mounts = dict(_bind_mounts(services.get("prometheus", {})))
    if prometheus_mounts.get("./prometheus/prometheus.yml") != "/etc/prometheus/prometheus.yml":
        problems.append("compose does not mount ./prometheus/prometheus.yml as Prometheus's configuration")
    return problems
