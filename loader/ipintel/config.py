"""Configuration: environment variables first, then an optional ipintel.toml, then defaults.

| variable               | meaning                                        | default                       |
|------------------------|------------------------------------------------|-------------------------------|
| DATABASE_URL           | libpq URI of the target database               | the project-local cluster     |
| IPINTEL_GEOIP_DIR      | colon-separated folders holding .mmdb files    | geoipupdate folders, demo data|
| IPINTEL_CYMRU_ADDR     | host:port of the bulk whois service            | whois.cymru.com:43            |
| IPINTEL_GREYNOISE_URL  | base URL of the GreyNoise API                  | https://api.greynoise.io      |
| IPINTEL_GREYNOISE_KEY  | API key; none -> GreyNoise pass skipped        | unset                         |
| IPINTEL_CYMRU_BATCH_SIZE / IPINTEL_CYMRU_CONCURRENCY | IPs per bulk query / connections at once | 500 / 2 |
| IPINTEL_GREYNOISE_TIER | community (GET per IP) or enterprise (POST /v3/ip) | community              |
| IPINTEL_GREYNOISE_RATE | requests per second, client-side               | 1.0                           |
| IPINTEL_GREYNOISE_DAILY_BUDGET | lookups per UTC day, shared by all runs | 50 (community), none (enterprise) |

ipintel.toml (in the working directory, or the file named by IPINTEL_CONFIG) may set the same
keys in lower case without the prefix, e.g. `geoip_dir = "/srv/GeoIP"`, `database_url = "..."`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

from ipintel import localdb


class ConfigError(ValueError):
    """Bad configuration: the CLI exits 2 with this message."""


def _toml() -> dict[str, object]:
    path = Path(os.environ.get("IPINTEL_CONFIG", "ipintel.toml"))
    if not path.exists():
        if "IPINTEL_CONFIG" in os.environ:
            raise ConfigError(f"IPINTEL_CONFIG names {path}, which does not exist")
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _get(env_name: str, toml_key: str, default: str | None, table: dict[str, object]) -> str | None:
    if env_name in os.environ and os.environ[env_name] != "":
        return os.environ[env_name]
    value = table.get(toml_key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"ipintel.toml: {toml_key} must be a string")
    return value


def database_url() -> str:
    """DATABASE_URL, else ipintel.toml's database_url, else the local cluster's URI."""
    value = _get("DATABASE_URL", "database_url", None, _toml())
    if value:
        return value
    try:
        return localdb.url()
    except localdb.LocalDbError as exc:
        raise ConfigError(f"DATABASE_URL is not set and {exc}") from exc


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    geoip_dir: str | None
    cymru_addr: str
    greynoise_url: str
    greynoise_key: str | None = field(repr=False)
    cymru_batch_size: int = 500
    cymru_concurrency: int = 2
    greynoise_tier: str = "community"
    greynoise_rate: float = 1.0
    greynoise_daily_budget: int | None = None  # None: 50 on the community tier, unlimited on enterprise


def _number(env_name: str, toml_key: str, default: float | None, table: dict[str, object], kind: type) -> Any:
    raw = os.environ.get(env_name) or table.get(toml_key)
    if raw is None or raw == "":
        return None if default is None else kind(default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{env_name} must be a {kind.__name__}, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{env_name} must be positive, not {raw!r}")
    return value


def load() -> Settings:
    table = _toml()
    tier = _get("IPINTEL_GREYNOISE_TIER", "greynoise_tier", "community", table) or "community"
    if tier not in ("community", "enterprise"):
        raise ConfigError(f"IPINTEL_GREYNOISE_TIER must be community or enterprise, not {tier!r}")
    return Settings(
        database_url=database_url(),
        geoip_dir=_get("IPINTEL_GEOIP_DIR", "geoip_dir", None, table),
        cymru_addr=_get("IPINTEL_CYMRU_ADDR", "cymru_addr", "whois.cymru.com:43", table) or "",
        greynoise_url=_get("IPINTEL_GREYNOISE_URL", "greynoise_url", "https://api.greynoise.io", table) or "",
        greynoise_key=_get("IPINTEL_GREYNOISE_KEY", "greynoise_key", None, table),
        cymru_batch_size=_number("IPINTEL_CYMRU_BATCH_SIZE", "cymru_batch_size", 500, table, int),
        cymru_concurrency=_number("IPINTEL_CYMRU_CONCURRENCY", "cymru_concurrency", 2, table, int),
        greynoise_tier=tier,
        greynoise_rate=_number("IPINTEL_GREYNOISE_RATE", "greynoise_rate", 1.0, table, float),
        greynoise_daily_budget=_number("IPINTEL_GREYNOISE_DAILY_BUDGET", "greynoise_daily_budget", None, table, int),
    )
