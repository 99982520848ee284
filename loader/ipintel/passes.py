"""The enrichment passes: each turns one source's answers into batches for `Batches.write`."""

from __future__ import annotations

import ipaddress
from typing import Any

from ipintel.config import Settings
from ipintel.enrich import Batches, EnrichError, Failure, Pass
from ipintel.sources import maxmind

MAXMIND_BATCH = 10_000


def _address_order(ip: str) -> tuple[int, int]:
    address = ipaddress.ip_address(ip)
    return address.version, int(address)


class MaxMindPass:
    """Offline lookups in the local .mmdb files (or the bundled 2018 demo City database)."""

    source = "maxmind"

    def __init__(self, settings: Settings, *, system_dirs: tuple[str, ...] = maxmind.SYSTEM_GEOIP_DIRS) -> None:
        self.settings = settings
        self.system_dirs = system_dirs
        self.dbs: maxmind.MaxMindDatabases | None = None

    def prepare(self) -> dict[str, Any]:
        try:
            self.dbs = maxmind.find_databases(self.settings.geoip_dir, self.system_dirs)
        except maxmind.MaxMindError as exc:
            raise EnrichError(str(exc)) from exc
        provenance = self.dbs.provenance()
        if self.dbs.notice:
            provenance["notice"] = self.dbs.notice
        return provenance

    def current_build(self) -> int | None:
        """IPs looked up in an older build than the installed files are due again."""
        assert self.dbs is not None
        return max(db.build_epoch for db in (self.dbs.location, self.dbs.asn) if db is not None)

    def fetch(self, ips: list[str], batches: Batches) -> str | None:
        assert self.dbs is not None
        build = self.current_build()
        # Sorted, consecutive addresses often share a network: lookup_many then reuses a record.
        ordered = sorted(ips, key=_address_order)
        results: list[tuple[str, dict[str, Any]]] = []
        failures: list[Failure] = []
        try:
            with maxmind.MaxMindLookup(self.dbs) as lookup:
                for ip, document in lookup.lookup_many(ordered):
                    results.append((ip, {**document, "build_epoch": build}))
                    if len(results) >= MAXMIND_BATCH:
                        batches.write(results, failures)
                        results, failures = [], []
        except maxmind.MaxMindError as exc:
            # A database broken mid-pass (corrupt data section): what was merged stays, the
            # pass stops and names the file.
            raise EnrichError(str(exc)) from exc
        batches.write(results, failures)
        return None

    def close(self) -> None:
        self.dbs = None


PASS_TYPES: dict[str, type[Pass]] = {
    "maxmind": MaxMindPass,  # type: ignore[dict-item]
}
