"""Range-list files as their publishers write them, generated for the tests: the same field names,
nesting, date formats and quirks (AWS's AMAZON service, Azure's byte-order mark and empty
systemService, Google's scope, Oracle's tags, the geofeed's short rows, Tor's ExitNode blocks).
Each writer takes the ranges to put in and returns the text (or writes it under a name the
publisher uses).

The documented shapes: AWS https://docs.aws.amazon.com/vpc/latest/userguide/aws-ip-syntax.html,
Google https://www.gstatic.com/ipranges/cloud.json, Azure's Service Tags download (JSON with
`values[].properties`), Oracle https://docs.oracle.com/en-us/iaas/Content/General/Concepts/
addressranges.htm, RFC 8805 geofeeds, Tor's https://check.torproject.org/exit-addresses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path


def aws(v4: Iterable[tuple[str, str, str]], v6: Iterable[tuple[str, str, str]], *, created: datetime) -> str:
    """ip-ranges.json: (prefix, service, region) rows; AWS lists every range under AMAZON too."""
    def rows(items: Iterable[tuple[str, str, str]], key: str) -> list[dict[str, str]]:
        return [{key: p, "region": r, "service": s, "network_border_group": r} for p, s, r in items]
    return json.dumps({
        "syncToken": str(int(created.timestamp())),
        "createDate": created.strftime("%Y-%m-%d-%H-%M-%S"),
        "prefixes": rows(v4, "ip_prefix"),
        "ipv6_prefixes": rows(v6, "ipv6_prefix"),
    }, indent=2)


def gcp(prefixes: Iterable[tuple[str, str]], *, created: datetime) -> str:
    """cloud.json: (prefix, scope) rows, service "Google Cloud"."""
    items = []
    for prefix, scope in prefixes:
        key = "ipv6Prefix" if ":" in prefix else "ipv4Prefix"
        items.append({key: prefix, "service": "Google Cloud", "scope": scope})
    return json.dumps({"syncToken": str(int(created.timestamp() * 1000)),
                       "creationTime": created.strftime("%Y-%m-%dT%H:%M:%S.%f"), "prefixes": items}, indent=2)


def goog(prefixes: Iterable[str]) -> str:
    """goog.json: all of Google's ranges, without service or scope (not a cloud list)."""
    return json.dumps({"syncToken": "1", "creationTime": "2026-11-30T05:00:00.000000",
                       "prefixes": [{"ipv6Prefix" if ":" in p else "ipv4Prefix": p} for p in prefixes]})


def azure(tags: Sequence[tuple[str, str, str, Sequence[str]]], *, change: int = 400) -> str:
    """ServiceTags_Public_YYYYMMDD.json: (name, systemService, region, prefixes) per tag; starts
    with a UTF-8 byte-order mark as Microsoft's download does."""
    values = [{"name": name, "id": name,
               "properties": {"changeNumber": 7, "region": region, "regionId": 0, "platform": "Azure",
                              "systemService": service, "addressPrefixes": list(prefixes),
                              "networkFeatures": ["API", "NSG", "UDR", "FW"]}}
              for name, service, region, prefixes in tags]
    return "\ufeff" + json.dumps({"changeNumber": change, "cloud": "Public", "values": values}, indent=2)


def oracle(regions: Sequence[tuple[str, Sequence[tuple[str, Sequence[str]]]]], *, updated: datetime) -> str:
    """public_ip_ranges.json: (region, [(cidr, tags)]) rows."""
    return json.dumps({
        "last_updated_timestamp": updated.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "regions": [{"region": region, "cidrs": [{"cidr": c, "tags": list(tags)} for c, tags in cidrs]}
                    for region, cidrs in regions]}, indent=2)


def geofeed(rows: Iterable[Sequence[str]]) -> str:
    """DigitalOcean's geo/google.csv (RFC 8805): prefix,country,region,city,postal (may be short)."""
    return "".join(",".join(r) + "\n" for r in rows)


def plain(lines: Iterable[str]) -> str:
    """Cloudflare's ips-v4 / ips-v6 and Tor's torbulkexitlist: one item a line."""
    return "".join(f"{line}\n" for line in lines)


def exit_addresses(relays: Iterable[tuple[str, str, Sequence[tuple[str, str]]]]) -> str:
    """Tor's exit-addresses: per relay (fingerprint, published time, [(address, time)])."""
    out = []
    for fingerprint, published, addresses in relays:
        out += [f"ExitNode {fingerprint}", f"Published {published}", f"LastStatus {published}"]
        out += [f"ExitAddress {address} {at}" for address, at in addresses]
    return "\n".join(out) + "\n"


def hosting_asns(rows: Iterable[tuple[int, str, str]], *, as_of: str | None) -> str:
    head = "# a curated hosting-ASN list\n" + (f"# as of {as_of}\n" if as_of else "") + "asn,name,source\n"
    return head + "".join(f"{asn},{name},{source}\n" for asn, name, source in rows)


# One realistic snapshot of every list, as of 2026-11-30, the names as published.
WHEN = datetime(2026, 11, 30, 5, 13, 9)


def every_list(folder: Path) -> dict[str, Path]:
    """Write one file of every kind into `folder`; kind -> path."""
    files = {
        "aws": ("ip-ranges.json", aws(
            [("3.5.140.0/22", "AMAZON", "ap-northeast-2"), ("3.5.140.0/22", "EC2", "ap-northeast-2"),
             ("52.94.76.0/22", "S3", "us-west-2"), ("15.230.39.0/24", "ROUTE53_HEALTHCHECKS", "us-east-2")],
            [("2600:1f14::/35", "EC2", "us-west-2"), ("2600:1f14::/35", "AMAZON", "us-west-2")], created=WHEN)),
        "gcp": ("cloud.json", gcp([("34.1.208.0/20", "africa-south1"), ("35.235.0.0/20", "us-west2"),
                                   ("2600:1900:8000::/44", "africa-south1")], created=WHEN)),
        "azure": ("ServiceTags_Public_20261130.json", azure([
            ("AzureCloud.eastus", "", "eastus", ["20.42.0.0/17", "2603:1030:210::/47"]),
            ("AppService.EastUS", "AzureAppService", "eastus", ["20.42.4.0/24"]),
            ("Storage", "AzureStorage", "", ["20.38.96.0/19"])])),
        "oracle": ("public_ip_ranges.json", oracle([
            ("us-phoenix-1", [("129.146.0.0/21", ["OCI"]), ("134.70.8.0/21", ["OBJECT_STORAGE", "OSN"])]),
            ("eu-frankfurt-1", [("130.61.0.0/16", ["OCI"])])], updated=WHEN)),
        "digitalocean": ("google.csv", geofeed([
            ("5.101.96.0/21", "NL", "NL-NH", "Amsterdam", "1098 XH"), ("2a03:b0c0:2::/48", "NL", "NL-NH", "Amsterdam", ""),
            ("104.248.0.0/20", "US", "", "", "")])),
        "cloudflare_ipv4": ("ips-v4", plain(["173.245.48.0/20", "104.16.0.0/13", "172.64.0.0/13"])),
        "cloudflare_ipv6": ("ips-v6", plain(["2400:cb00::/32", "2606:4700::/32"])),
        "tor_bulk_exit_list": ("torbulkexitlist", plain(["185.220.101.1", "185.220.101.34", "2a0b:f4c2::1"])),
        "tor_exit_addresses": ("exit-addresses", exit_addresses([
            ("0011BD2485AD45D984EC4159C88FC066E5E3300E", "2026-11-29 23:51:41",
             [("162.247.74.201", "2026-11-30 00:02:37")]),
            ("01A9258A46E97FF8B2CAC7910577862C14F2C524", "2026-11-30 04:40:11",
             [("185.220.101.34", "2026-11-30 05:01:12"), ("185.220.101.35", "2026-11-30 04:59:58")])])),
        "hosting_asns": ("hosting_asns.csv", hosting_asns(
            [(16276, "OVHcloud", "https://www.peeringdb.com/asn/16276"),
             (24940, "Hetzner Online", "https://www.peeringdb.com/asn/24940")], as_of="2026-11-30")),
    }
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, (name, text) in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        out[kind] = path
    return out
