"""`--metrics-file` (issue 16): Prometheus text format for node_exporter's textfile collector.

A demo-sized run (the seeded Cowrie sample, ingested, then all three passes: MaxMind from the
bundled demo database, Team Cymru and GreyNoise from their fakes over real sockets) against a real
PostgreSQL; both files are read back with prometheus_client's own parser and compared with what
the database and the status file say. Then the edges: a run interrupted, a run locked out, a
file name node_exporter would ignore, a database that does not answer when the file is written.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row

from ipintel import cli, metrics
from ipintel.config import Settings
from ipintel.enrich import Batches, EnrichOptions, Stopped, enrich
from ipintel.locks import Lock
from ipintel.progress import Reporter
from ipintel.sources import greynoise
from tests import cowrie_oracle
from tests.fakes.cymru_server import cymru_server  # noqa: F401
from tests.fakes.greynoise_server import GreyNoiseFake, Reply, greynoise_fake  # noqa: F401

Samples = dict[str, list[tuple[dict[str, str], float]]]  # metric name -> (labels, value) per sample


def scrape(path: Path) -> tuple[dict[str, str], Samples]:
    """Each family's type, and every sample, by the name Prometheus stores it under."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            types[sample.name] = family.type
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    [found] = [v for sample_labels, v in samples[name] if sample_labels == labels]
    return found


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {sample_labels[label]: v for sample_labels, v in samples[name]}


def rows(dsn: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def demo_env(db: str, cli_database: Callable[[str], None], greynoise_fake: GreyNoiseFake,
             cymru_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`ipintel` pointed at this test's database, every source configured (and fast)."""
    cli_database(db)
    monkeypatch.setenv("IPINTEL_CYMRU_ADDR", cymru_server().addr)  # every IP answered NA (allocated, unrouted)
    monkeypatch.setenv("IPINTEL_GREYNOISE_URL", greynoise_fake.url)
    monkeypatch.setenv("IPINTEL_GREYNOISE_KEY", greynoise_fake.api_key)
    monkeypatch.setenv("IPINTEL_GREYNOISE_RATE", "100")
    monkeypatch.setenv("IPINTEL_GREYNOISE_DAILY_BUDGET", "100000")
    real = greynoise.GreyNoiseSettings
    monkeypatch.setattr(greynoise, "GreyNoiseSettings",
                        lambda **values: real(**(values | {"backoff_base": 0.01, "backoff_max": 0.05})))
    yield db


def test_demo_run_writes_both_files_and_the_parser_reads_what_the_database_says(
        demo_env: str, greynoise_fake: GreyNoiseFake, tmp_path: Path) -> None:
    db = demo_env
    logs = cowrie_oracle.generate(tmp_path / "logs")
    out = tmp_path / "textfile"
    out.mkdir()
    ingest_file, enrich_file, status_file = out / "ipintel_ingest.prom", out / "ipintel_enrich.prom", tmp_path / "s.json"
    # Three IPv4 attackers GreyNoise cannot answer for (HTTP 500 on every retry): failed, not fetched.
    unanswered = sorted({f["src_ip"] for f in logs.expected.values()
                         if ipaddress.ip_address(f["src_ip"]).version == 4 and ipaddress.ip_address(f["src_ip"]).is_global})[:3]
    for ip in unanswered:
        greynoise_fake.script(ip, Reply(500))

    assert cli.main(["ingest", str(logs.out_dir), "--metrics-file", str(ingest_file)]) == 0
    types, ingest = scrape(ingest_file)
    # Every metric of the catalogue, with its type; counters stored with the _total suffix.
    assert set(types) == set(metrics.CATALOGUE["ingest"])
    assert {n: t for n, t in types.items() if t == "counter"} == {
        n: "counter" for n, s in metrics.CATALOGUE["ingest"].items() if s.kind == "counter"}
    [run] = rows(db, "SELECT * FROM ipintel.ingest_runs")
    assert value(ingest, "ipintel_ingest_last_run_exit_code") == 0
    assert by_label(ingest, "ipintel_ingest_last_run_state", "state") == {"finished": 1, "failed": 0, "interrupted": 0}
    assert value(ingest, "ipintel_ingest_last_run_sessions_new") == logs.sessions == run["sessions_new"]
    assert value(ingest, "ipintel_ingest_last_run_events") == run["events_loaded"] > 0
    assert value(ingest, "ipintel_ingest_last_run_lines") == run["lines_read"] >= logs.events
    assert value(ingest, "ipintel_ingest_last_run_ips_new") == run["ips_new"] == logs.distinct_ips
    assert value(ingest, "ipintel_ingest_last_run_rejects") == value(ingest, "ipintel_ingest_rejects_total") == 0
    assert value(ingest, "ipintel_ingest_events_total") == run["events_loaded"]
    assert ingest["ipintel_ingest_runs_total"] == [({"status": "succeeded"}, 1)]
    start = value(ingest, "ipintel_ingest_last_run_start_timestamp_seconds")
    end = value(ingest, "ipintel_ingest_last_run_end_timestamp_seconds")
    assert run["started_at"].timestamp() - 5 < start <= end <= datetime.now(UTC).timestamp()

    code = cli.main(["enrich", "--metrics-file", str(enrich_file), "--status-file", str(status_file)])
    status = json.loads(status_file.read_text(encoding="utf-8"))
    assert code == status["exit_code"] == 1  # recorded failures
    text = enrich_file.read_text(encoding="utf-8")
    assert greynoise_fake.api_key not in text  # labels are names and statuses only
    types, enrich_samples = scrape(enrich_file)
    assert set(types) == set(metrics.CATALOGUE["enrich"])
    sources = {r["source"] for r in rows(db, "SELECT source FROM ipintel.enrichment_policy")}
    assert sources == {"maxmind", "ipinfo", "dbip", "cymru", "greynoise", "dshield"}

    # The outcome is the status file's.
    assert value(enrich_samples, "ipintel_enrich_last_run_exit_code") == status["exit_code"]
    assert value(enrich_samples, "ipintel_enrich_last_run_state", state="finished") == 1
    assert value(enrich_samples, "ipintel_enrich_last_run_snapshots_taken") == status["snapshots_taken"] > 0
    # Per source: due, fetched, merged, failed and status as the passes counted them.
    for p in status["passes"]:
        source = p["source"]
        # IPinfo Lite and DB-IP Lite are not installed here, DShield has no contact: their passes are
        # skipped (and counted).
        skipped = source in ("ipinfo", "dbip", "dshield")
        assert p["status"] == "skipped" if skipped else p["status"] not in ("skipped", "failed"), p
        for count in ("due", "fetched", "merged", "failed"):
            assert value(enrich_samples, f"ipintel_enrich_last_pass_ips_{count}", source=source) == p[count], (source, count)
            assert value(enrich_samples, f"ipintel_enrich_ips_{count}_total", source=source) == p[count]
        assert value(enrich_samples, "ipintel_enrich_last_pass_status", source=source, status=p["status"]) == 1
        duration = value(enrich_samples, "ipintel_enrich_last_pass_duration_seconds", source=source)
        # A skipped pass does no work: its duration may be 0.
        assert (0 <= duration if p["status"] == "skipped" else 0 < duration) and duration <= p["seconds"] + 1
        assert value(enrich_samples, "ipintel_enrich_runs_total", source=source, status=p["status"]) == 1
    assert {p["source"] for p in status["passes"]} == sources
    passes = {p["source"]: p for p in status["passes"]}
    assert passes["maxmind"]["merged"] == passes["maxmind"]["due"] > 0
    assert passes["greynoise"]["failed"] == len(unanswered)
    assert passes["greynoise"]["fetched"] == passes["greynoise"]["due"] - len(unanswered) > 0

    # Freshness and the backlog, as the views say.
    coverage = {r["source"]: r for r in rows(db, "SELECT * FROM ipintel.enrichment_coverage")}
    for source in sources:
        for freshness in ("fresh", "stale", "never_fetched"):
            assert value(enrich_samples, "ipintel_enrichment_ips", source=source,
                         freshness=freshness) == coverage[source][freshness]
        assert value(enrich_samples, "ipintel_enrichment_open_failures", source=source) == coverage[source]["failed"]
    run_seconds = (value(enrich_samples, "ipintel_enrich_last_run_end_timestamp_seconds")
                   - value(enrich_samples, "ipintel_enrich_last_run_start_timestamp_seconds"))
    ages = by_label(enrich_samples, "ipintel_enrichment_oldest_fresh_age_seconds", "source")
    assert set(ages) == {s for s in sources if coverage[s]["fresh"] > 0} >= {"maxmind", "greynoise"}
    assert all(0 < age <= run_seconds + 5 for age in ages.values()), (ages, run_seconds)  # all fetched by this run
    [backlog] = rows(db, "SELECT count(*) AS n FROM ipintel.snapshot_backlog")
    assert value(enrich_samples, "ipintel_snapshots_incomplete") == backlog["n"]
    waiting = rows(db, "SELECT w.source, count(*) AS n FROM ipintel.snapshot_backlog b, unnest(b.waiting_for) w(source) "
                       "GROUP BY 1")
    assert by_label(enrich_samples, "ipintel_snapshots_waiting", "source") == (
        dict.fromkeys(sources, 0) | {r["source"]: r["n"] for r in waiting})

    # A second run: the counters go on from the table, the gauges say the new run.
    assert cli.main(["enrich", "--source", "maxmind", "--force", "--metrics-file", str(enrich_file)]) == 0
    _, again = scrape(enrich_file)
    assert value(again, "ipintel_enrich_runs_total", source="maxmind", status="succeeded") == 2
    assert value(again, "ipintel_enrich_ips_fetched_total", source="maxmind") == 2 * passes["maxmind"]["fetched"]
    assert value(again, "ipintel_enrich_last_pass_ips_fetched", source="maxmind") == passes["maxmind"]["fetched"]
    assert value(again, "ipintel_enrich_last_run_exit_code") == 0
    # node_exporter reads only *.prom: nothing else is left in its folder.
    assert sorted(p.name for p in out.iterdir()) == ["ipintel_enrich.prom", "ipintel_ingest.prom"]


def test_a_rewrite_is_atomic_a_reader_of_the_old_file_sees_it_whole(
        db: str, cli_database: Callable[[str], None], tmp_path: Path) -> None:
    cli_database(db)
    path = tmp_path / "ipintel_enrich.prom"
    assert cli.main(["enrich", "--source", "maxmind", "--metrics-file", str(path)]) == 0
    before = path.read_text(encoding="utf-8")
    with path.open(encoding="utf-8") as old:  # a scrape in progress
        assert cli.main(["enrich", "--source", "maxmind", "--force", "--metrics-file", str(path)]) == 0
        assert old.read() == before  # the old file, whole: the new one was renamed over it
    _, samples = scrape(path)
    assert value(samples, "ipintel_enrich_runs_total", source="maxmind", status="succeeded") == 2


class InterruptedPass:
    """A pass that is stopped (Ctrl-C, systemd's SIGTERM) while it fetches."""

    source = "maxmind"

    def prepare(self) -> dict[str, Any]:
        return {}

    def current_build(self) -> int | None:
        return None

    def fetch(self, ips: list[str], batches: Batches) -> Stopped | None:
        raise KeyboardInterrupt("SIGTERM")

    def close(self) -> None:
        pass


def test_an_interrupted_run_writes_its_outcome(db: str, tmp_path: Path) -> None:
    path = tmp_path / "ipintel_enrich.prom"
    settings = Settings(database_url=db, geoip_dir="", cymru_addr="", greynoise_url="", greynoise_key=None)
    with pytest.raises(KeyboardInterrupt):
        enrich(settings, EnrichOptions(metrics_file=path), passes=[InterruptedPass()], reporter=Reporter())
    _, samples = scrape(path)
    assert value(samples, "ipintel_enrich_last_run_exit_code") == 130
    assert by_label(samples, "ipintel_enrich_last_run_state", "state") == {"finished": 0, "failed": 0, "interrupted": 1}
    assert value(samples, "ipintel_enrich_last_pass_status", source="maxmind", status="interrupted") == 1
    assert "ipintel_enrich_last_run_snapshots_taken" not in samples  # not taken: absent, not 0


def test_a_run_locked_out_leaves_the_file_alone(db: str, cli_database: Callable[[str], None], tmp_path: Path) -> None:
    cli_database(db)
    path = tmp_path / "ipintel_enrich.prom"
    assert cli.main(["enrich", "--source", "maxmind", "--metrics-file", str(path)]) == 0
    before = path.read_text(encoding="utf-8")
    holder = Lock(db, "ipintel.enrich").__enter__()
    try:
        assert cli.main(["enrich", "--metrics-file", str(path)]) == 3
    finally:
        holder.__exit__(None, None, None)
    assert path.read_text(encoding="utf-8") == before


@pytest.mark.parametrize(("name", "message"), [
    ("enrich.txt", "the name must end in .prom"),
    ("missing/ipintel_enrich.prom", "no such folder"),
])
def test_a_file_node_exporter_cannot_read_is_refused_before_the_run(
        db: str, cli_database: Callable[[str], None], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        name: str, message: str) -> None:
    cli_database(db)
    for command in (["enrich"], ["ingest", str(tmp_path)]):
        assert cli.main([*command, "--metrics-file", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"ipintel {command[0]}: --metrics-file ") and message in err, err
        assert len(err.splitlines()) == 1
    # Refused before anything ran: no run row.
    assert rows(db, "SELECT (SELECT count(*) FROM ipintel.enrichment_runs) + "
                    "(SELECT count(*) FROM ipintel.ingest_runs) AS n") == [{"n": 0}]


def test_a_database_that_does_not_answer_leaves_the_outcome_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ipintel_ingest.prom"
    now = datetime.now(UTC)
    secret = "s3cret-pw-in-dsn"
    dead = f"postgresql://ipintel:{secret}@127.0.0.1:1/ipintel?connect_timeout=2"
    metrics.write_ingest(path, dead, metrics.RunOutcome("failed", 1, now, now), run_id=1,
                         reporter=Reporter(interactive=False))
    types, samples = scrape(path)
    assert value(samples, "ipintel_ingest_last_run_exit_code") == 1
    assert value(samples, "ipintel_ingest_last_run_state", state="failed") == 1
    assert "ipintel_ingest_events_total" not in samples  # unknown: absent, never a made-up 0
    assert set(types) <= set(metrics.CATALOGUE["ingest"])
    err = capsys.readouterr().err
    assert "metrics: only the run's outcome is written" in err and secret not in err
    assert secret not in path.read_text(encoding="utf-8")
    assert not [p for p in os.listdir(tmp_path) if p != path.name]
