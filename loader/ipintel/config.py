"""Configuration: environment variables first, then an optional ipintel.toml, then defaults.

| variable               | meaning                                        | default                       |
|------------------------|------------------------------------------------|-------------------------------|
| DATABASE_URL           | libpq URI of the target database               | the project-local cluster     |
| IPINTEL_GEOIP_DIR      | colon-separated folders holding .mmdb files    | geoipupdate folders, demo data|
| IPINTEL_CYMRU_ADDR     | host:port of the bulk whois service            | whois.cymru.com:43            |
| IPINTEL_GREYNOISE_URL  | base URL of the GreyNoise API                  | https://api.greynoise.io      |
| IPINTEL_GREYNOISE_KEY  | API key; none -> GreyNoise pass skipped        | unset                         |

ipintel.toml (in the working directory, or the file named by IPINTEL_CONFIG) may set the same
keys in lower case without the prefix, e.g. `geoip_dir = "/srv/GeoIP"`, `database_url = "..."`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
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


def load() -> Settings:
    table = _toml()
    return Settings(
        database_url=database_url(),
        geoip_dir=_get("IPINTEL_GEOIP_DIR", "geoip_dir", None, table),
        cymru_addr=_get("IPINTEL_CYMRU_ADDR", "cymru_addr", "whois.cymru.com:43", table) or "",
        greynoise_url=_get("IPINTEL_GREYNOISE_URL", "greynoise_url", "https://api.greynoise.io", table) or "",
        greynoise_key=_get("IPINTEL_GREYNOISE_KEY", "greynoise_key", None, table),
    )
