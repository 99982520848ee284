"""Configuration: environment variables first, then an optional ipintel.toml, then defaults.

| variable               | meaning                                        | default                       |
|------------------------|------------------------------------------------|-------------------------------|
| DATABASE_URL           | libpq URI of the target database               | none: required                |
| IPINTEL_GEOIP_DIR      | colon-separated folders holding .mmdb files    | geoipupdate folders, demo data|
| IPINTEL_CYMRU_ADDR     | host:port of the bulk whois service            | whois.cymru.com:43            |
| IPINTEL_GREYNOISE_URL  | base URL of the GreyNoise API                  | https://api.greynoise.io      |
| IPINTEL_GREYNOISE_KEY  | API key; none -> GreyNoise pass skipped        | unset                         |
| IPINTEL_CYMRU_BATCH_SIZE / IPINTEL_CYMRU_CONCURRENCY | IPs per bulk query / connections at once | 500 / 2 |
| IPINTEL_CYMRU_BATCH_TIMEOUT / IPINTEL_CYMRU_PASS_TIMEOUT | seconds for one bulk answer / the whole Cymru pass | 120 / 1800 |
| IPINTEL_GREYNOISE_TIER | community (GET per IP) or enterprise (POST /v3/ip) | community              |
| IPINTEL_GREYNOISE_RATE | requests per second, client-side               | 1.0                           |
| IPINTEL_GREYNOISE_DAILY_BUDGET | lookups per UTC day, shared by all runs | 50 (community), none (enterprise) |

ipintel.toml (in the working directory, or the file named by IPINTEL_CONFIG) may set the same
keys in lower case without the prefix, e.g. `geoip_dir = "/srv/GeoIP"`, `database_url = "..."`.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # annotations only: config stays free of the HTTP client's imports
    from ipintel.sources.greynoise import Tier


class ConfigError(ValueError):
    """Bad configuration: the CLI exits 2 with this message."""


# Sane ranges, checked before anything is sent or spent.
CYMRU_BATCH_MIN, CYMRU_BATCH_MAX = 3, 10_000  # Cymru: bulk, ~10,000 IPs answer within a minute
CYMRU_CONCURRENCY_MAX = 4
CYMRU_TIMEOUT_MAX = 86_400.0  # seconds: a bulk query or a Cymru pass allowed over a day is a typo
GREYNOISE_RATE_MAX = 100.0  # requests per second
GREYNOISE_BUDGET_MAX = 100_000_000  # lookups per UTC day


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
    """DATABASE_URL, else ipintel.toml's database_url; without either, ConfigError. (From a
    checkout, the Makefile passes its local cluster's URL.)"""
    value = _get("DATABASE_URL", "database_url", None, _toml())
    if not value:
        raise ConfigError("DATABASE_URL is not set: set it to the libpq URI of the database "
                          "(e.g. postgresql://ipintel@db.example/ipintel), or database_url in ipintel.toml")
    return _check_dsn("DATABASE_URL", value)


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    geoip_dir: str | None
    cymru_addr: str
    greynoise_url: str
    greynoise_key: str | None = field(repr=False)
    cymru_batch_size: int = 500
    cymru_concurrency: int = 2
    cymru_batch_timeout: float = 120.0  # seconds one bulk query may take in all
    cymru_pass_timeout: float = 1800.0  # seconds the Cymru pass may take; then the rest stays due
    greynoise_tier: Tier = "community"
    greynoise_rate: float = 1.0
    greynoise_daily_budget: int | None = None  # None: 50 on the community tier, unlimited on enterprise


def _number(env_name: str, toml_key: str, default: float | None, table: dict[str, object], kind: type, *,
            minimum: float | None = None, maximum: float | None = None) -> Any:
    """A positive int or float; within [minimum, maximum] when given (checked before any use)."""
    raw = os.environ.get(env_name) or table.get(toml_key)
    if raw is None or raw == "":
        return None if default is None else kind(default)
    try:
        if isinstance(raw, bool):
            raise TypeError
        value = kind(raw)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{env_name} must be a {'number' if kind is float else 'whole number'}, "
                          f"not {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{env_name} must be positive, not {raw!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if minimum is None:
            allowed = f"positive and at most {maximum:g}"
        elif maximum is None:
            allowed = f"at least {minimum:g}"
        else:
            allowed = f"between {minimum:g} and {maximum:g}"
        raise ConfigError(f"{env_name} must be {allowed}, not {raw!r}")
    return value


def _host_port(env_name: str, value: str) -> str:
    """`host:port` (or `[v6]:port`), as the Cymru client reads it."""
    from ipintel.sources.cymru import split_addr

    try:
        split_addr(value)
    except ValueError:
        raise ConfigError(f"{env_name} must be host:port (an IPv6 address as [addr]:port), "
                          f"not {value!r}") from None
    return value


def _http_url(env_name: str, value: str) -> str:
    """An http(s) URL with a host; refused before any request (or any budget) is spent."""
    from ipintel.sources.greynoise import base_url_problem

    problem = base_url_problem(value)
    if problem:
        shown = "(not shown: it holds credentials)" if "@" in value else repr(value)
        raise ConfigError(f"{env_name} is not an http(s) base URL ({problem}): {shown}")
    return value


def _dsn_secrets(dsn: str) -> list[str]:
    """The password(s) written in a libpq URI or key=value string, found even when it is malformed."""
    found = re.findall(r"^[a-z][a-z0-9+.-]*://[^:/?#@]*:([^@/?#]+)@", dsn, re.IGNORECASE)
    found += re.findall(r"(?:^|[\s?&])password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", dsn)
    return [secret.strip("'") for secret in found if secret.strip("'")]


def redact_dsn(text: str, dsn: str | None) -> str:
    """`text` with any password from `dsn` masked (for messages that quote a DSN)."""
    for secret in _dsn_secrets(dsn or ""):
        for form in sorted({secret, urllib.parse.unquote(secret)}, key=len, reverse=True):
            text = text.replace(form, "***")
    return text


def _check_dsn(env_name: str, value: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(value)
    except Exception as exc:  # psycopg.ProgrammingError: libpq could not parse it
        detail = redact_dsn(" ".join(str(exc).split()), value)
        raise ConfigError(f"{env_name} is not a libpq connection URI or key=value string: {detail}") from None
    return value


def load() -> Settings:
    table = _toml()
    tier = _get("IPINTEL_GREYNOISE_TIER", "greynoise_tier", "community", table) or "community"
    if tier not in ("community", "enterprise"):
        raise ConfigError(f"IPINTEL_GREYNOISE_TIER must be community or enterprise, not {tier!r}")
    return Settings(
        database_url=database_url(),
        geoip_dir=_get("IPINTEL_GEOIP_DIR", "geoip_dir", None, table),
        cymru_addr=_host_port("IPINTEL_CYMRU_ADDR",
                              _get("IPINTEL_CYMRU_ADDR", "cymru_addr", "whois.cymru.com:43", table) or ""),
        greynoise_url=_http_url("IPINTEL_GREYNOISE_URL",
                                _get("IPINTEL_GREYNOISE_URL", "greynoise_url", "https://api.greynoise.io", table) or ""),
        greynoise_key=_get("IPINTEL_GREYNOISE_KEY", "greynoise_key", None, table),
        # Never a batch of one IP (Cymru asks for bulk queries; see cymru._split_batches), and
        # no more than a handful of connections at once.
        cymru_batch_size=_number("IPINTEL_CYMRU_BATCH_SIZE", "cymru_batch_size", 500, table, int,
                                 minimum=CYMRU_BATCH_MIN, maximum=CYMRU_BATCH_MAX),
        cymru_concurrency=_number("IPINTEL_CYMRU_CONCURRENCY", "cymru_concurrency", 2, table, int,
                                  minimum=1, maximum=CYMRU_CONCURRENCY_MAX),
        cymru_batch_timeout=_number("IPINTEL_CYMRU_BATCH_TIMEOUT", "cymru_batch_timeout", 120.0, table, float,
                                    maximum=CYMRU_TIMEOUT_MAX),
        cymru_pass_timeout=_number("IPINTEL_CYMRU_PASS_TIMEOUT", "cymru_pass_timeout", 1800.0, table, float,
                                   maximum=CYMRU_TIMEOUT_MAX),
        greynoise_tier=cast("Tier", tier),  # one of the two, checked above
        greynoise_rate=_number("IPINTEL_GREYNOISE_RATE", "greynoise_rate", 1.0, table, float,
                               maximum=GREYNOISE_RATE_MAX),
        greynoise_daily_budget=_number("IPINTEL_GREYNOISE_DAILY_BUDGET", "greynoise_daily_budget", None, table, int,
                                       maximum=GREYNOISE_BUDGET_MAX),
    )
