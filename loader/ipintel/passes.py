"""The enrichment passes: each turns one source's answers into batches for `Batches.write`."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from ipintel import db
from ipintel.config import Settings
from ipintel.enrich import (
    Batches,
    BrokenDataError,
    ConfigurationError,
    EnrichError,
    Failure,
    Pass,
    SkipPass,
    Stopped,
)
from ipintel.sources import cymru, dbip, dshield, greynoise, http_api, ipinfo, maxmind, mmdb

OFFLINE_BATCH = 10_000  # answers of an offline pass per batch (COPY + merge_batch)
COMMUNITY_DAILY_BUDGET = 50  # GreyNoise community lookups per UTC day unless configured
# How often a pass waiting on the network says it is alive (progress line, status file); each is
# throttled to its own interval (10 s), so this only has to be well under that.
HEARTBEAT_SECONDS = 1.0

T = TypeVar("T")


async def _with_heartbeat(work: Awaitable[T], beat: Callable[[], None]) -> T:
    """Await `work`, calling `beat()` every HEARTBEAT_SECONDS until it is done."""
    task = asyncio.ensure_future(work)
    try:
        while not (await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS))[0]:
            beat()
        return task.result()
    finally:
        task.cancel()  # no-op once done; stops the work if beat() raised


def _address_order(ip: str) -> tuple[int, int]:
    address = ipaddress.ip_address(ip)
    return address.version, int(address)


class OfflineLookup(Protocol):
    """Open readers over a source's files (MaxMindLookup, mmdb.RecordLookup)."""

    def lookup_many(self, ips: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def close(self) -> None: ...


class OfflinePass:
    """A pass over local .mmdb files: found in IPINTEL_GEOIP_DIR (else the system GeoIP folders)
    by `find`, which returns their provenance (None: none installed, the pass is skipped and said
    so), opened by `open_lookup`, looked up in address order and written OFFLINE_BATCH answers at
    a time. A broken file is bad configuration: found in `prepare` it stops the run (exit 2), found
    mid-pass it fails the pass (BrokenDataError)."""

    source: str
    product = ""  # how the not-installed message names the files: e.g. "IPinfo Lite"
    file_names = ""  # e.g. "ipinfo_lite.mmdb"

    def __init__(self, settings: Settings, *, system_dirs: tuple[str, ...] = mmdb.SYSTEM_GEOIP_DIRS) -> None:
        self.settings = settings
        self.system_dirs = system_dirs
        self.files: list[mmdb.DatabaseFile] = []  # the files `find` chose, newest builds

    def find(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def open_lookup(self) -> OfflineLookup:
        raise NotImplementedError

    def prepare(self) -> dict[str, Any]:
        try:
            provenance = self.find()
        except mmdb.OfflineDatabaseError as exc:
            raise EnrichError(str(exc)) from exc
        if provenance is None:
            where = self.settings.geoip_dir or ":".join(self.system_dirs)
            raise SkipPass(f"no {self.product} database ({self.file_names}) in {where}: {self.source} is not "
                           "installed, so its pass is skipped and snapshots do not wait for it")
        return provenance

    def current_build(self) -> int | None:
        """The newest build_epoch of the files read: staged with every answer (enrichment_state.build),
        so IPs looked up in an older build than the installed files are due again."""
        return max(f.build_epoch for f in self.files)

    def fetch(self, ips: list[str], batches: Batches) -> Stopped | None:
        # Sorted, consecutive addresses often share a network: lookup_many then reuses a record.
        ordered = sorted(ips, key=_address_order)
        # An offline lookup has no per-IP failure: a broken file fails the whole pass (below).
        results: list[tuple[str, dict[str, Any]]] = []
        try:
            with closing(self.open_lookup()) as lookup:
                for ip, document in lookup.lookup_many(ordered):
                    results.append((ip, document))
                    if len(results) >= OFFLINE_BATCH:
                        batches.write(results, [])
                        results = []
        except mmdb.OfflineDatabaseError as exc:
            # A database broken mid-pass (corrupt data section): what was merged stays, the
            # pass stops and names the file. A broken file is bad configuration (exit 2).
            raise BrokenDataError(str(exc)) from exc
        batches.write(results, [])
        return None

    def close(self) -> None:
        self.files = []


class MaxMindPass(OfflinePass):
    """Offline lookups in the local .mmdb files (or the bundled 2018 demo City database)."""

    source = "maxmind"
    dbs: maxmind.MaxMindDatabases | None = None

    def find(self) -> dict[str, Any]:
        # Never None: without a location database MaxMind falls back to its demo data, or (with
        # IPINTEL_GEOIP_DIR set) says which file is missing.
        self.dbs = maxmind.find_databases(self.settings.geoip_dir, self.system_dirs)
        self.files = [f for f in (self.dbs.location, self.dbs.asn) if f is not None]
        provenance = self.dbs.provenance()
        if self.dbs.notice:
            provenance["notice"] = self.dbs.notice
        return provenance

    def open_lookup(self) -> OfflineLookup:
        assert self.dbs is not None
        return maxmind.MaxMindLookup(self.dbs)


class IpinfoPass(OfflinePass):
    """IPinfo Lite: one local .mmdb, country and ASN. Skipped when no build is installed."""

    source = "ipinfo"
    product, file_names = ipinfo.SOURCE_NAME, ipinfo.FILE_NAME

    def find(self) -> dict[str, Any] | None:
        db = ipinfo.find_database(self.settings.geoip_dir, self.system_dirs)
        self.files = [db] if db else []
        return {"database": db.provenance(), "attribution": ipinfo.ATTRIBUTION} if db else None

    def open_lookup(self) -> OfflineLookup:
        return ipinfo.IpinfoLookup(self.files[0])


class DbipPass(OfflinePass):
    """DB-IP Lite: local City or Country, and ASN .mmdb files. Skipped when none is installed."""

    source = "dbip"
    product, file_names = dbip.SOURCE_NAME, dbip.FILE_NAMES
    dbs: dbip.DbipDatabases | None = None

    def find(self) -> dict[str, Any] | None:
        self.dbs = dbip.find_databases(self.settings.geoip_dir, self.system_dirs)
        self.files = self.dbs.files() if self.dbs else []
        return {**self.dbs.provenance(), "attribution": dbip.ATTRIBUTION} if self.dbs else None

    def open_lookup(self) -> OfflineLookup:
        assert self.dbs is not None
        return dbip.DbipLookup(self.dbs)


class CymruPass:
    """Team Cymru bulk whois: batches of IPs over TCP 43, a few connections at once."""

    source = "cymru"

    def __init__(self, settings: Settings) -> None:
        self.settings = cymru.CymruSettings(addr=settings.cymru_addr, batch_size=settings.cymru_batch_size,
                                            concurrency=settings.cymru_concurrency,
                                            batch_timeout=settings.cymru_batch_timeout,
                                            pass_timeout=settings.cymru_pass_timeout)

    def prepare(self) -> dict[str, Any]:
        s = self.settings
        return {"service": s.addr, "protocol": "bulk whois (begin/verbose/end)",
                "batch_size": s.batch_size, "concurrency": s.concurrency,
                "batch_timeout": s.batch_timeout, "pass_timeout": s.pass_timeout}

    def current_build(self) -> int | None:
        return None

    def fetch(self, ips: list[str], batches: Batches) -> Stopped | None:
        started = last_answer = time.monotonic()

        def on_batch(results: list[cymru.CymruResult], not_found: list[str]) -> None:
            nonlocal last_answer
            last_answer = time.monotonic()
            rows = [(r.ip, cymru_document(r)) for r in results]
            # "Error: no ASN or IP match": Cymru knows nothing of the address, a real answer.
            rows += [(ip, {"found": False, "asn": None, "origins": []}) for ip in not_found]
            batches.write(rows, [])

        def heartbeat() -> None:
            # A slow or silent server completes no batch for minutes: say so, and that we live.
            now = time.monotonic()
            left = max(0.0, self.settings.pass_timeout - (now - started))
            batches.alive(waiting=f"{now - last_answer:.0f}s", budget_left=f"{left:.0f}s")

        outcome = asyncio.run(_with_heartbeat(cymru.lookup(ips, self.settings, on_batch), heartbeat))
        batches.write([], [Failure(ip, f"{f.error} (after {f.attempts} attempts, batch of {len(f.ips)})")
                           for f in outcome.failures for ip in f.ips])
        if outcome.out_of_time:
            return Stopped(f"Team Cymru pass budget of {self.settings.pass_timeout:g}s spent "
                           f"(IPINTEL_CYMRU_PASS_TIMEOUT); {len(outcome.unfinished):,} IPs stay due for a later run")
        return None

    def close(self) -> None:
        pass


def cymru_document(result: cymru.CymruResult) -> dict[str, Any]:
    """enrichment->'cymru': the chosen origin's fields at the top, every origin in `origins`."""
    def origin(o: cymru.CymruOrigin) -> dict[str, Any]:
        return {"asn": o.asn, "prefix": o.prefix, "registered_country": o.registered_country,
                "registry": o.registry, "allocated": o.allocated.isoformat() if o.allocated else None,
                "as_name": o.as_name}

    return {"found": True, **origin(result.current), "origins": [origin(o) for o in result.origins]}


def waiting_sleep(batches: Batches) -> Callable[[float], None]:
    """time.sleep for a lookup API's client (its pacing, backoff, a 429's pause): while it waits,
    `batches.alive` every HEARTBEAT_SECONDS, so a pause of minutes still shows the run alive."""
    def sleep(seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, HEARTBEAT_SECONDS))
            batches.alive(waiting=f"{max(0.0, end - time.monotonic()):.0f}s")
    return sleep


def lookup_failures(failures: Iterable[http_api.LookupFailure], redact: Callable[[str], str] = str) -> list[Failure]:
    """A lookup API's failures as the engine records them (a Retry-After becomes a time)."""
    now = datetime.now(UTC)
    return [Failure(f.ip, redact(f.error), f.retryable, now + timedelta(seconds=f.retry_after) if f.retry_after else None)
            for f in failures]


def stay_due(outcome: http_api.Outcome) -> str:
    return f"{len(outcome.not_attempted):,} IPs stay due for a later run"


def budget_spent(outcome: http_api.Outcome, name: str, daily_budget: int | None, setting: str) -> Stopped | None:
    """How a pass stopped by its daily budget ends (normal daily operation: exit 0), or None."""
    if not outcome.budget_exhausted:
        return None
    return Stopped(f"daily budget of {daily_budget:,} {name} lookups spent ({setting}); {stay_due(outcome)}",
                   quota=True)


GREYNOISE_SKIPPED = ("IPINTEL_GREYNOISE_KEY is not set; GreyNoise pass skipped (snapshots wait for it within its "
                     "snapshot_window; disable it in ipintel.enrichment_policy to stop waiting)")


class GreyNoisePass:
    """GreyNoise: community (one GET per IPv4) or enterprise (POST /v3/ip in chunks)."""

    source = "greynoise"

    def __init__(self, settings: Settings) -> None:
        self.key = settings.greynoise_key
        # The community quota is small and daily; an enterprise plan is limited only when asked.
        self.daily_budget = settings.greynoise_daily_budget or (
            COMMUNITY_DAILY_BUDGET if settings.greynoise_tier == "community" else None)
        self.settings = (greynoise.GreyNoiseSettings(
            base_url=settings.greynoise_url, api_key=self.key, tier=settings.greynoise_tier,
            rate_per_second=settings.greynoise_rate, timeout=settings.greynoise_timeout) if self.key else None)

    def prepare(self) -> dict[str, Any]:
        if self.settings is None:
            raise SkipPass(GREYNOISE_SKIPPED)
        return {"api": self.settings.base_url, "tier": self.settings.tier,
                "endpoint": "/v3/community/{ip}" if self.settings.tier == "community" else "/v3/ip",
                "rate_per_second": self.settings.rate_per_second, "daily_budget": self.daily_budget}

    def current_build(self) -> int | None:
        return None

    def fetch(self, ips: list[str], batches: Batches) -> Stopped | None:
        assert self.settings is not None and self.key
        key = self.key

        def on_results(results: list[greynoise.GreyNoiseResult], failures: list[greynoise.GreyNoiseFailure]) -> None:
            batches.write([(r.ip, greynoise_document(r)) for r in results],
                          lookup_failures(failures, lambda text: greynoise.redact(text, key)))

        def budget(want: int) -> int:
            assert self.daily_budget is not None
            return batches.spend_budget(want, self.daily_budget)

        try:
            with greynoise.GreyNoiseClient(self.settings, sleep=waiting_sleep(batches)) as client:
                outcome = client.run(ips, on_results=on_results,
                                     budget=budget if self.daily_budget is not None else None)
        except greynoise.GreyNoiseAuthError as exc:
            raise ConfigurationError(greynoise.redact(str(exc), key)) from None
        if outcome.skipped_ipv6:
            # Recorded as an answer ("not supported"), not a failure: is_scanner stays NULL
            # (unknown) and the address is not asked again before the TTL.
            batches.write([(ip, {"supported": False, "reason": "IPv6 is not served by the GreyNoise Community API"})
                           for ip in outcome.skipped_ipv6], [])
            count = len(outcome.skipped_ipv6)
            batches.notice(f"greynoise: {count:,} IPv6 address{'es' if count != 1 else ''} skipped "
                           "(the Community API answers IPv4 only)")
        # Normal daily operation (exit 0): the rest stays due for the next run.
        if outcome.quota_exhausted:
            return Stopped(f"GreyNoise quota exhausted (HTTP 429); {stay_due(outcome)}", quota=True)
        return budget_spent(outcome, "GreyNoise", self.daily_budget, "IPINTEL_GREYNOISE_DAILY_BUDGET")

    def close(self) -> None:
        pass


def greynoise_document(result: greynoise.GreyNoiseResult) -> dict[str, Any]:
    document = result.to_json()
    document.pop("ip", None)
    return document


DSHIELD_SKIPPED = ("IPINTEL_DSHIELD_CONTACT is not set: SANS ISC asks every client of its API to say who runs it, "
                   "so the DShield pass is skipped (snapshots wait for it within its snapshot_window; disable it in "
                   "ipintel.enrichment_policy to stop waiting)")


class DShieldPass:
    """DShield (SANS ISC): one GET per IP, paced, within a daily budget; skipped without a contact."""

    source = "dshield"

    def __init__(self, settings: Settings) -> None:
        self.daily_budget = settings.dshield_daily_budget
        self.settings = (dshield.DShieldSettings(base_url=settings.dshield_url, contact=settings.dshield_contact,
                                                 rate_per_second=settings.dshield_rate)
                         if settings.dshield_contact else None)

    def prepare(self) -> dict[str, Any]:
        if self.settings is None:
            raise SkipPass(DSHIELD_SKIPPED)
        return {"api": self.settings.base_url, "endpoint": dshield.ENDPOINT,
                "user_agent": dshield.user_agent(self.settings.contact),
                "rate_per_second": self.settings.rate_per_second, "daily_budget": self.daily_budget,
                "attribution": dshield.ATTRIBUTION}

    def current_build(self) -> int | None:
        return None

    def fetch(self, ips: list[str], batches: Batches) -> Stopped | None:
        assert self.settings is not None

        def on_results(results: list[dshield.DShieldResult], failures: list[http_api.LookupFailure]) -> None:
            batches.write([(r.ip, r.to_json()) for r in results], lookup_failures(failures))

        try:
            with dshield.DShieldClient(self.settings, sleep=waiting_sleep(batches)) as client:
                outcome = client.run(ips, on_results=on_results,
                                     budget=lambda want: batches.spend_budget(want, self.daily_budget))
        except dshield.DShieldRefused as exc:
            raise ConfigurationError(str(exc)) from None
        # Normal daily operation (exit 0): the rest stays due for the next run.
        if outcome.rate_limited:
            asked = f", Retry-After {outcome.retry_after:.0f} s" if outcome.retry_after is not None else ""
            return Stopped(f"DShield rate limited ipintel (HTTP 429{asked}); {stay_due(outcome)}", quota=True)
        return budget_spent(outcome, "DShield", self.daily_budget, "IPINTEL_DSHIELD_DAILY_BUDGET")

    def close(self) -> None:
        pass


# Each class builds its pass from the settings (a Protocol has no constructor to name in `type[Pass]`).
PASS_TYPES: dict[str, Callable[[Settings], Pass]] = {
    "maxmind": MaxMindPass,
    "ipinfo": IpinfoPass,
    "dbip": DbipPass,
    "cymru": CymruPass,
    "greynoise": GreyNoisePass,
    "dshield": DShieldPass,
}


def registered_sources(dsn: str) -> list[str]:
    """The source registry (ipintel.enrichment_policy), in pass order."""
    with db.connection(dsn, autocommit=True) as conn:
        return [r["source"] for r in db.query_all(conn, db.query("registered_sources"))]


class UnknownSource(EnrichError):
    """--source names no registered source, or one this loader has no pass for."""


def make_passes(settings: Settings, sources: Iterable[str]) -> list[Pass]:
    """The passes of the wanted sources (all when none is named), in the registry's pass order."""
    registered = registered_sources(settings.database_url)
    wanted = set(sources) or set(registered)
    unknown = sorted(wanted - set(registered))
    if unknown:
        raise UnknownSource(f"unknown source {', '.join(unknown)} (registered in ipintel.enrichment_policy: "
                            f"{', '.join(registered)})")
    missing = sorted(name for name in wanted if name not in PASS_TYPES)
    if missing:
        raise UnknownSource(f"source {', '.join(missing)} is registered but this ipintel has no pass for it")
    return [PASS_TYPES[name](settings) for name in registered if name in wanted]
