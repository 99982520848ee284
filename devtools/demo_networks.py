"""`python -m devtools.demo_networks --out DIR` (DATABASE_URL set, migrated): the demo with networks.

`ipintel demo` alone has no ASNs: the bundled GeoLite2 build is a City database, and Team
Cymru is off without a network. This runs the same flow with a local Team Cymru (the tests'
fake server, over real TCP) answering from a table of the demo's address ranges, then moves one
network to another ASN and refreshes it on demand (`ipintel enrich --source cymru --asn 14061`),
so the tiers hold ASNs, AS names, ASN history and a move. It ends with the HTML report in
DIR/report.html. docs/queries.md and docs/report.png were made from it.

The table is illustrative: well-known networks under their public AS numbers, the others under
private-use ASNs (64512 and up) with made-up names.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

from ipintel import cli

# (network, asn, registration country, registry, AS name) for the demo generator's ranges.
NETWORKS: tuple[tuple[str, int, str, str, str], ...] = (
    ("218.92.0.0/16", 4134, "CN", "apnic", "CHINANET-BACKBONE No.31,Jin-rong Street, CN"),
    ("61.177.172.0/22", 4134, "CN", "apnic", "CHINANET-BACKBONE No.31,Jin-rong Street, CN"),
    ("222.186.0.0/16", 4134, "CN", "apnic", "CHINANET-BACKBONE No.31,Jin-rong Street, CN"),
    ("36.134.0.0/16", 9808, "CN", "apnic", "CHINAMOBILE-CN China Mobile Communications Group Co., Ltd., CN"),
    ("14.103.0.0/16", 64512, "CN", "apnic", "DEMO-CN-CLOUD, CN"),
    ("118.25.0.0/16", 45090, "CN", "apnic", "TENCENT-NET-AP Shenzhen Tencent Computer Systems Company Limited, CN"),
    ("43.153.0.0/16", 132203, "CN", "apnic", "TENCENT-NET-AP-CN Tencent Building, Kejizhongyi Avenue, CN"),
    ("159.89.0.0/16", 14061, "US", "arin", "DIGITALOCEAN-ASN, US"),
    ("167.99.0.0/16", 14061, "US", "arin", "DIGITALOCEAN-ASN, US"),
    ("134.209.0.0/16", 14061, "US", "arin", "DIGITALOCEAN-ASN, US"),
    ("170.64.128.0/17", 14061, "US", "arin", "DIGITALOCEAN-ASN, US"),
    ("45.148.10.0/24", 64513, "NL", "ripencc", "DEMO-HOSTING-A, NL"),
    ("141.98.10.0/23", 64514, "LT", "ripencc", "DEMO-HOSTING-B, LT"),
    ("80.94.95.0/24", 64515, "RO", "ripencc", "DEMO-HOSTING-C, RO"),
    ("193.32.162.0/24", 64515, "RO", "ripencc", "DEMO-HOSTING-C, RO"),
    ("92.118.39.0/24", 64516, "NL", "ripencc", "DEMO-HOSTING-D, NL"),
    ("2.57.122.0/24", 64516, "NL", "ripencc", "DEMO-HOSTING-D, NL"),
    ("176.111.174.0/24", 64517, "RU", "ripencc", "DEMO-HOSTING-E, RU"),
    ("177.12.0.0/16", 64518, "BR", "lacnic", "DEMO-BR-ISP, BR"),
    ("181.115.0.0/16", 64519, "HN", "lacnic", "DEMO-LATAM-ISP, HN"),
    ("117.50.0.0/16", 135377, "CN", "apnic", "UCLOUD-HK-AS-AP UCLOUD INFORMATION TECHNOLOGY HK LIMITED, HK"),
    ("162.142.125.0/24", 398324, "US", "arin", "CENSYS-ARIN-01, US"),
    ("167.94.138.0/24", 398324, "US", "arin", "CENSYS-ARIN-01, US"),
    ("198.235.24.0/24", 396982, "US", "arin", "GOOGLE-CLOUD-PLATFORM, US"),
    ("71.6.199.0/24", 10439, "US", "arin", "CARINET, US"),
    ("89.248.165.0/24", 202425, "SC", "ripencc", "INT-NETWORK, SC"),
    ("2a01:4f8::/32", 24940, "DE", "ripencc", "HETZNER-AS, DE"),
    ("2604:a880::/32", 14061, "US", "arin", "DIGITALOCEAN-ASN, US"),
    ("2001:41d0::/32", 16276, "FR", "ripencc", "OVH, FR"),
    ("240e::/20", 4134, "CN", "apnic", "CHINANET-BACKBONE No.31,Jin-rong Street, CN"),
    ("2602:80d:1000::/44", 398324, "US", "arin", "CENSYS-ARIN-01, US"),
)
# The move: this network leaves DigitalOcean for another AS after the first enrichment.
MOVED = ("134.209.0.0/16", 64520, "DE", "ripencc", "DEMO-NEWHOST, DE")


class PrefixTable(dict[str, Any]):
    """The fake server's table, answering every address of a network with that network's row."""

    def __init__(self, networks: tuple[tuple[str, int, str, str, str], ...]) -> None:
        super().__init__()
        self.networks = {ipaddress.ip_network(n): (asn, n, cc, rir, "2010-01-01", name)
                         for n, asn, cc, rir, name in networks}

    def get(self, key: str, default: Any = None) -> Any:
        address = ipaddress.ip_address(key)
        for network, row in self.networks.items():
            if address.version == network.version and address in network:
                return [row]
        return default


def main(argv: list[str] | None = None) -> int:
    from tests.fakes.cymru_server import running_cymru_server  # development helpers only

    parser = argparse.ArgumentParser(prog="python -m devtools.demo_networks", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo-data"))
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL to a migrated database")
    with running_cymru_server() as server:
        server.table = PrefixTable(NETWORKS)
        os.environ["IPINTEL_CYMRU_ADDR"] = server.addr
        code = cli.main(["demo", "--out", str(args.out)])
        if code != 0:
            return code
        server.table = PrefixTable(tuple(n for n in NETWORKS if n[0] != MOVED[0]) + (MOVED,))
        code = cli.main(["enrich", "--source", "cymru", "--asn", "14061"])
        if code != 0:
            return code
    return cli.main(["report", "--format", "html", "--output", str(args.out / "report.html")])


if __name__ == "__main__":
    sys.exit(main())
