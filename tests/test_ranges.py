"""Range lists: every published format read with its real field names (generated in
tests/rangefiles.py), recognised from its content or published name, dated by its own date;
malformed files refused in one line with nothing of them loaded; `ipintel ranges load` and
`ipintel ranges fetch` (from a local HTTP server) end to end into the dated run-length tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from pytest_httpserver import HTTPServer

from ipintel import cli, config, ranges
from tests import rangefiles
from tests.test_cli_errors import one_line
from tests.test_roles import login_as  # noqa: F401

DAY = date(2026, 11, 30)
R = ranges.Range


def query(dsn: str, statement: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(statement, params).fetchall()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


# --------------------------------------------------------------------------------------------
# Reading the files (no database)
# --------------------------------------------------------------------------------------------

EXPECTED: dict[str, tuple[date | None, set[Any]]] = {
    # AMAZON (every AWS range, listed again under its own service) is "no service"
    "aws": (DAY, {R("3.5.140.0/22", "", "ap-northeast-2"), R("3.5.140.0/22", "EC2", "ap-northeast-2"),
                  R("52.94.76.0/22", "S3", "us-west-2"), R("15.230.39.0/24", "ROUTE53_HEALTHCHECKS", "us-east-2"),
                  R("2600:1f14::/35", "EC2", "us-west-2"), R("2600:1f14::/35", "", "us-west-2")}),
    "gcp": (DAY, {R("34.1.208.0/20", "Google Cloud", "africa-south1"), R("35.235.0.0/20", "Google Cloud", "us-west2"),
                  R("2600:1900:8000::/44", "Google Cloud", "africa-south1")}),
    "azure": (DAY, {R("20.42.0.0/17", "", "eastus"), R("2603:1030:210::/47", "", "eastus"),
                    R("20.42.4.0/24", "AzureAppService", "eastus"), R("20.38.96.0/19", "AzureStorage", "")}),
    "oracle": (DAY, {R("129.146.0.0/21", "OCI", "us-phoenix-1"), R("134.70.8.0/21", "OBJECT_STORAGE,OSN", "us-phoenix-1"),
                     R("130.61.0.0/16", "OCI", "eu-frankfurt-1")}),
    "digitalocean": (None, {R("5.101.96.0/21", "", "NL-NH"), R("2a03:b0c0:2::/48", "", "NL-NH"),
                            R("104.248.0.0/20", "", "US")}),
    "cloudflare_ipv4": (None, {R("173.245.48.0/20", "", ""), R("104.16.0.0/13", "", ""), R("172.64.0.0/13", "", "")}),
    "cloudflare_ipv6": (None, {R("2400:cb00::/32", "", ""), R("2606:4700::/32", "", "")}),
    "tor_bulk_exit_list": (None, {R("185.220.101.1/32", "", ""), R("185.220.101.34/32", "", ""),
                                  R("2a0b:f4c2::1/128", "", "")}),
    # dated by its latest time
    "tor_exit_addresses": (DAY, {R("162.247.74.201/32", "", ""), R("185.220.101.34/32", "", ""),
                                 R("185.220.101.35/32", "", "")}),
    "hosting_asns": (DAY, {ranges.ListedAsn(16276, "OVHcloud", "https://www.peeringdb.com/asn/16276"),
                           ranges.ListedAsn(24940, "Hetzner Online", "https://www.peeringdb.com/asn/24940")}),
}


def test_every_list_is_recognised_read_and_dated(tmp_path: Path) -> None:
    files = rangefiles.every_list(tmp_path)
    assert set(files) == set(ranges.KINDS) == set(EXPECTED)
    for kind, path in files.items():
        own_date, entries = EXPECTED[kind]
        listed = ranges.describe(path, default_day=date(2000, 1, 1))
        assert listed.kind == kind, path.name
        assert set(listed.entries) == entries, kind
        assert len(listed.entries) == len(entries), f"{kind}: entries are distinct"
        assert listed.taken_on == (own_date or date(2000, 1, 1)), kind


def test_the_date_comes_from_date_then_the_file_then_its_name(tmp_path: Path) -> None:
    files = rangefiles.every_list(tmp_path)
    assert ranges.describe(files["aws"], taken_on=date(2026, 1, 2)).taken_on == date(2026, 1, 2)
    assert ranges.describe(files["azure"]).taken_on == DAY  # ServiceTags_Public_20261130.json
    renamed = files["cloudflare_ipv4"].rename(tmp_path / "ips-v4-2026-11-28")
    assert ranges.describe(renamed).taken_on == date(2026, 11, 28)
    with pytest.raises(ranges.RangesInputError, match=r"ips-v6: a cloudflare_ipv6 list without a date in it or in "
                                                      r"its name \(YYYYMMDD\); give it with --date YYYY-MM-DD"):
        ranges.describe(files["cloudflare_ipv6"])


def test_plain_lists_are_known_by_their_published_name_or_by_kind(tmp_path: Path) -> None:
    """A list of bare ranges does not say whose it is: only its name (ips-v4) or --kind does."""
    anonymous = tmp_path / "ranges-20261130.txt"
    anonymous.write_text(rangefiles.plain(["173.245.48.0/20"]))
    with pytest.raises(ranges.RangesInputError, match="cannot tell which list it is from its content or its name; "
                                                      "give it with --kind"):
        ranges.describe(anonymous)
    assert ranges.describe(anonymous, kind="cloudflare_ipv4").entries == (R("173.245.48.0/20", "", ""),)


def malformed_cases() -> list[tuple[str, str, str, str]]:
    aws_ok = rangefiles.aws([("3.5.140.0/22", "EC2", "ap-northeast-2")], [], created=rangefiles.WHEN)
    return [
        ("ip-ranges.json", aws_ok[: len(aws_ok) // 2], "aws",
         r"ip-ranges.json: not a valid aws list: not valid JSON \(line \d+ column \d+: "),
        ("ip-ranges.json", aws_ok.replace("3.5.140.0/22", "3.5.140.1/22"), "aws",
         r"prefixes\[0\].ip_prefix: host bits set: '3.5.140.1/22'"),
        ("ip-ranges.json", aws_ok.replace('"ip_prefix"', '"ipPrefix"'), "aws",
         r"prefixes\[0\].ip_prefix: not a network: 'null'"),
        ("cloud.json", rangefiles.goog(["8.8.4.0/24"]), "gcp", "Google's goog.json \\(all of Google\\), not Google "
                                                              "Cloud's cloud.json"),
        ("ServiceTags_Public_20261130.json", rangefiles.azure([("AzureCloud", "", "", ["20.42.0.0/17"])])
         .replace('"addressPrefixes": [', '"addressPrefixes": {"x": [').replace("]\n      }", "]}\n      }", 1),
         "azure", r"values\[0\].properties.addressPrefixes: missing or not a list"),
        ("ips-v4", rangefiles.plain(["173.245.48.0/20", "2400:cb00::/32"]), "cloudflare_ipv4",
         "line 2: an IPv6 range in a list of IPv4 ranges: '2400:cb00::/32'"),
        ("ips-v4", rangefiles.plain(["0.0.0.0/0"]), "cloudflare_ipv4", "line 1: a range of the whole address space"),
        ("ips-v4", "", "cloudflare_ipv4", "holds no entry: an empty list would close every range of the list"),
        ("torbulkexitlist", rangefiles.plain(["185.220.101.1", "<html>"]), "tor_bulk_exit_list",
         "line 2: not an IP address: '<html>'"),
        ("exit-addresses", "ExitNode ABC\nPublished 2026-11-30 05:00:00\nExitAddress 1.2.3.4\n", "tor_exit_addresses",
         "line 3: ExitAddress without a time"),
        ("hosting_asns.csv", "asn,name\n16276,OVH\n", "hosting_asns", "line 1: the header must be asn,name,source"),
        ("hosting_asns.csv", rangefiles.hosting_asns([(16276, "OVH", "peeringdb")], as_of="2026-11-30"),
         "hosting_asns", "line 4: the source must be an http\\(s\\) URL: 'peeringdb'"),
        ("google.csv", rangefiles.geofeed([("5.101.96.0/21", "NL", "NL-NH", "Amsterdam", "1098 XH", "x")]),
         "digitalocean", "line 1: not a geofeed row"),
    ]


@pytest.mark.parametrize(("name", "text", "kind", "message"), malformed_cases(),
                         ids=[f"{c[2]}-{i}" for i, c in enumerate(malformed_cases())])
def test_a_malformed_file_is_refused_in_one_line(tmp_path: Path, name: str, text: str, kind: str,
                                                  message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ranges.RangesFileError) as caught:
        ranges.describe(path, kind=kind, taken_on=DAY)
    assert str(caught.value).startswith(f"{path}: not a valid {kind} list: ")
    assert "\n" not in str(caught.value)
    assert __import__("re").search(message, str(caught.value)), str(caught.value)


# --------------------------------------------------------------------------------------------
# ipintel ranges load / fetch, end to end
# --------------------------------------------------------------------------------------------


def snapshot_counts(dsn: str) -> dict[str, tuple[date, int]]:
    return {r["list"]: (r["taken_on"], r["entries"])
            for r in query(dsn, "SELECT list, taken_on, entries FROM ipintel.range_snapshots")}


def runs(dsn: str) -> list[tuple[str, str, str, str, str]]:
    return [tuple(r.values()) for r in query(
        dsn, "SELECT list, prefix::text, service, region, valid::text FROM ipintel.listed_ranges ORDER BY 1, 2, 3, 4, 5")]


def test_every_list_loads_through_the_cli(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    files = rangefiles.every_list(tmp_path)
    dated = [str(p) for k, p in files.items() if EXPECTED[k][0] is not None]
    code, out, err = run(["ranges", "load", *dated], capsys)
    assert (code, err) == (0, "")
    undated = [str(p) for k, p in files.items() if EXPECTED[k][0] is None]
    code, out2, err = run(["ranges", "load", "--date", "2026-11-30", *undated], capsys)
    assert (code, err) == (0, "")
    assert f"{files['aws']}: aws 2026-11-30: 6 entries, 6 opened, 0 closed" in out
    assert snapshot_counts(db) == {k: (DAY, len(e)) for k, (_, e) in EXPECTED.items()}
    assert query(db, "SELECT count(*) AS n FROM ipintel.listed_ranges WHERE family(prefix) = 6")[0]["n"] == 8
    assert query(db, "SELECT asn, name, valid::text FROM ipintel.listed_asns ORDER BY asn") == [
        {"asn": 16276, "name": "OVHcloud", "valid": "[2026-11-30,)"},
        {"asn": 24940, "name": "Hetzner Online", "valid": "[2026-11-30,)"}]

    code, out, _ = run(["ranges", "load", str(files["aws"])], capsys)
    assert code == 0 and "aws 2026-11-30: already loaded (snapshot " in out


def test_a_list_that_shrinks_closes_the_missing_range(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "ips-v4", tmp_path / "b" / "ips-v4"
    first.write_text(rangefiles.plain(["173.245.48.0/20", "104.16.0.0/13"]))
    second.write_text(rangefiles.plain(["173.245.48.0/20"]))
    assert run(["ranges", "load", "--date", "2026-11-01", str(first)], capsys)[0] == 0
    code, out, _ = run(["ranges", "load", "--date", "2026-11-02", str(second)], capsys)
    assert code == 0 and "1 entries, 0 opened, 1 closed" in out
    assert runs(db) == [("cloudflare_ipv4", "104.16.0.0/13", "", "", "[2026-11-01,2026-11-02)"),
                        ("cloudflare_ipv4", "173.245.48.0/20", "", "", "[2026-11-01,)")]


def test_a_malformed_file_is_left_out_and_what_was_loaded_stays(db: str, cli_database: Callable[[str], None],
                                                                 tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    files = rangefiles.every_list(tmp_path)
    assert run(["ranges", "load", str(files["aws"])], capsys)[0] == 0
    before = runs(db)
    broken = tmp_path / "later" / "ip-ranges.json"
    broken.parent.mkdir()
    broken.write_text(files["aws"].read_text().replace("52.94.76.0/22", "52.94.76.0/33"))
    code, out, err = run(["ranges", "load", "--date", "2026-12-01", str(broken), str(files["gcp"])], capsys)
    assert code == 1
    assert one_line(err) == (f"ipintel ranges load: {broken}: not a valid aws list: prefixes[2].ip_prefix: not a "
                             "network: '52.94.76.0/33'; nothing loaded from it")
    assert "gcp 2026-12-01: 3 entries" in out
    assert [r for r in runs(db) if r[0] == "aws"] == before, "the aws runs are as the first load left them"
    assert set(snapshot_counts(db)) == {"aws", "gcp"}


@pytest.mark.parametrize(("argv", "message"), [
    (["ranges", "load", "/nonexistent/ip-ranges.json"], "ipintel ranges load: /nonexistent/ip-ranges.json: no such file"),
    (["ranges", "load", "--kind", "nope", "x"], "argument --kind: invalid choice: 'nope'"),
])
def test_usage_errors_are_one_line_and_exit_2(db: str, cli_database: Callable[[str], None], argv: list[str],
                                              message: str, capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 2
    assert message in one_line(capsys.readouterr().err)
    assert snapshot_counts(db) == {}


def test_an_undated_file_stops_every_file_before_loading(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    files = rangefiles.every_list(tmp_path)
    code, _, err = run(["ranges", "load", str(files["aws"]), str(files["cloudflare_ipv4"])], capsys)
    assert code == 2 and "give it with --date YYYY-MM-DD" in err
    assert snapshot_counts(db) == {}


def serve_every_list(httpserver: HTTPServer, folder: Path) -> dict[str, str]:
    """Each generated file at the path its publisher uses; the env settings pointing there."""
    files = rangefiles.every_list(folder)
    env = {}
    for kind, path in files.items():
        if kind == "hosting_asns":
            continue
        url_path = f"/{kind}/{path.name}"
        httpserver.expect_request(url_path).respond_with_data(path.read_bytes())
        env[f"IPINTEL_RANGES_{kind.upper()}_URL"] = httpserver.url_for(url_path)
    return env


def test_fetch_downloads_and_loads_every_list(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                              httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    for name, value in serve_every_list(httpserver, tmp_path / "published").items():
        monkeypatch.setenv(name, value)
    kept = tmp_path / "kept"
    kept.mkdir()
    code, out, err = run(["ranges", "fetch", "--dir", str(kept)], capsys)
    assert (code, err) == (0, "")
    counts = snapshot_counts(db)
    assert set(counts) == set(ranges.KINDS)
    today = ranges.today()
    # The lists without a date of their own are as of the day they were fetched.
    assert {k for k, (day, _) in counts.items() if day == today} >= {"cloudflare_ipv4", "cloudflare_ipv6",
                                                                       "tor_bulk_exit_list", "digitalocean"}
    assert counts["aws"] == (DAY, 6)
    assert counts["hosting_asns"][1] >= 30, "the curated list ipintel ships"
    assert (kept / f"aws-{today:%Y%m%d}.json").is_file()


def test_fetch_goes_on_when_one_list_fails(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                           httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    env = serve_every_list(httpserver, tmp_path / "published")
    httpserver.expect_request("/gone").respond_with_data("not here", status=404)
    env["IPINTEL_RANGES_GCP_URL"] = httpserver.url_for("/gone")
    env["IPINTEL_RANGES_ORACLE_URL"] = "off"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run(["ranges", "fetch", "--kind", "aws", "--kind", "gcp"], capsys)
    assert code == 1
    assert one_line(err) == f"ipintel ranges fetch: gcp ({env['IPINTEL_RANGES_GCP_URL']}): HTTP 404 NOT FOUND"
    assert set(snapshot_counts(db)) == {"aws"}
    code, _, err = run(["ranges", "fetch", "--kind", "oracle"], capsys)
    assert code == 2 and "no URL for oracle: set IPINTEL_RANGES_ORACLE_URL" in err


def test_a_range_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql:///x")
    monkeypatch.setenv("IPINTEL_RANGES_AWS_URL", "ftp://example.org/ip-ranges.json")
    with pytest.raises(config.ConfigError, match=r"IPINTEL_RANGES_AWS_URL is not an http\(s\) URL \(scheme 'ftp'\)"):
        config.load()
    monkeypatch.delenv("IPINTEL_RANGES_AWS_URL")
    assert config.load().range_urls["aws"] == "https://ip-ranges.amazonaws.com/ip-ranges.json"
    assert "azure" not in config.load().range_urls, "Azure's URL changes weekly: set by the operator"


def test_the_loader_role_loads_range_lists(db: str, login_as: Callable[[str], str],  # noqa: F811
                                           cli_database: Callable[[str], None], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(login_as("ipintel_loader"))
    files = rangefiles.every_list(tmp_path)
    code, _, err = run(["ranges", "load", str(files["aws"]), str(files["hosting_asns"])], capsys)
    assert (code, err) == (0, "")
    assert set(snapshot_counts(db)) == {"aws", "hosting_asns"}


def test_the_curated_hosting_list_reads_and_names_a_source_for_every_entry() -> None:
    listed = ranges.describe(ranges.curated_hosting_asns())
    assert listed.kind == "hosting_asns" and len(listed.entries) >= 30
    assert all(isinstance(e, ranges.ListedAsn) and e.source.startswith("https://") for e in listed.entries)
    assert len({e.asn for e in listed.entries}) == len(listed.entries), "each AS once"


def test_loading_lists_classifies_the_inventory(db: str, cli_database: Callable[[str], None], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """After the loads, ip_inventory.ip_type / ip_provider / ip_class_basis are as of today; a list
    of today that no longer has a range takes the class away."""
    cli_database(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO ipintel.ip_inventory (ip) VALUES ('104.16.0.1'), ('185.220.101.34'), ('8.8.8.8')")
    today = ranges.today()
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "ips-v4").write_text(rangefiles.plain(["104.16.0.0/13"]))
    (tmp_path / "a" / "torbulkexitlist").write_text(rangefiles.plain(["185.220.101.34"]))
    (tmp_path / "b" / "torbulkexitlist").write_text(rangefiles.plain(["185.220.101.35"]))
    yesterday = date.fromordinal(today.toordinal() - 1)
    code, out, err = run(["ranges", "load", "--date", yesterday.isoformat(), str(tmp_path / "a" / "ips-v4"),
                          str(tmp_path / "a" / "torbulkexitlist")], capsys)
    assert (code, err) == (0, "")
    assert f"ip_inventory classified as of {today:%Y-%m-%d}: 3 IPs, 3 changed" in out
    classes = {r["ip"]: (r["ip_type"], r["ip_provider"], r["basis"]) for r in query(
        db, "SELECT host(ip) AS ip, ip_type, ip_provider, ip_class_basis ->> 'list' AS basis FROM ipintel.ip_inventory")}
    assert classes == {"104.16.0.1": ("cdn", "cloudflare", "cloudflare_ipv4"),
                       "185.220.101.34": ("tor", "tor", "tor_bulk_exit_list"), "8.8.8.8": ("unknown", None, None)}

    code, out, _ = run(["ranges", "load", "--date", today.isoformat(), str(tmp_path / "b" / "torbulkexitlist")], capsys)
    assert code == 0 and "3 IPs, 1 changed" in out
    assert query(db, "SELECT ip_type FROM ipintel.ip_inventory WHERE ip = '185.220.101.34'") == [{"ip_type": "unknown"}]
