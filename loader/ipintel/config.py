"""Configuration: environment variables first, then an optional ipintel.toml, then defaults.

| variable               | meaning                                        | default                       |
|------------------------|------------------------------------------------|-------------------------------|
| DATABASE_URL           | libpq URI of the target database               | none: required                |
| IPINTEL_GEOIP_DIR      | colon-separated folders holding .mmdb files    | geoipupdate folders, demo data|
| IPINTEL_CYMRU_ADDR     | host:port of the bulk whois service            | whois.cymru.com:43            |
| IPINTEL_GREYNOISE_URL  | base URL of the GreyNoise API                  | https://api.greynoise.io      |
| IPINTEL_GREYNOISE_KEY  | API key; none -> GreyNoise pass skipped        | unset                         |
| IPINTEL_GREYNOISE_KEY_FILE | file holding the API key (mode 0600 or 0400: its owner only) | unset         |
| IPINTEL_GREYNOISE_TIMEOUT | seconds one GreyNoise request may take in all | 10                          |
| IPINTEL_CYMRU_BATCH_SIZE / IPINTEL_CYMRU_CONCURRENCY | IPs per bulk query / connections at once | 500 / 2 |
| IPINTEL_CYMRU_BATCH_TIMEOUT / IPINTEL_CYMRU_PASS_TIMEOUT | seconds for one bulk answer / the whole Cymru pass | 120 / 1800 |
| IPINTEL_GREYNOISE_TIER | community (GET per IP) or enterprise (POST /v3/ip) | community              |
| IPINTEL_GREYNOISE_RATE | requests per second, client-side               | 1.0                           |
| IPINTEL_GREYNOISE_DAILY_BUDGET | lookups per UTC day, shared by all runs | 50 (community), none (enterprise) |
| IPINTEL_DSHIELD_URL    | base URL of the SANS ISC / DShield API         | https://isc.sans.edu          |
| IPINTEL_DSHIELD_CONTACT | the operator's e-mail address or URL, sent in the User-Agent; none -> DShield pass skipped | unset |
| IPINTEL_DSHIELD_RATE   | requests per second, client-side (at most 10)  | 1.0                           |
| IPINTEL_DSHIELD_DAILY_BUDGET | lookups per UTC day, shared by all runs  | 1000                          |
| IPINTEL_RANGES_<KIND>_URL | where `ipintel ranges fetch` gets a range list (KIND: AWS, GCP, AZURE, ORACLE, DIGITALOCEAN, CLOUDFLARE_IPV4, CLOUDFLARE_IPV6, TOR_BULK_EXIT_LIST, TOR_EXIT_ADDRESSES); `off`: not fetched | the publisher's URL (Azure: none) |
| IPINTEL_RANGES_TIMEOUT | seconds one range-list download may wait for the server | 60 |

ipintel.toml (in the working directory, or the file named by IPINTEL_CONFIG) may set the same
keys in lower case without the prefix, e.g. `geoip_dir = "/srv/GeoIP"`, `database_url = "..."`.

Secrets (the API keys) are guarded here, before anything is sent:
* a key file, and an ipintel.toml that holds a key, must be its owner's only (no group or other
  permission bits): otherwise one line says which file, its mode, and `chmod 600 FILE`;
* a key goes over https only, or over plain http to this machine (127.0.0.0/8, ::1, localhost);
* an ipintel.toml merely found in the working directory may not send a key to another host than
  the service's own: such a URL is taken only from the environment or from a file the operator
  names with IPINTEL_CONFIG (a file dropped in a shared or cloned folder cannot redirect the key).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import stat
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


GREYNOISE_DEFAULT_URL = "https://api.greynoise.io"
GREYNOISE_TIMEOUT_MAX = 600.0  # seconds per request
# DShield is a free service run by volunteers: the rate may be raised a little, not a lot.
DSHIELD_RATE_MAX = 10.0  # requests per second
DSHIELD_DAILY_BUDGET = 1000  # lookups per UTC day unless configured
DSHIELD_BUDGET_MAX = 1_000_000
DSHIELD_DEFAULT_URL = "https://isc.sans.edu"
RANGES_TIMEOUT_MAX = 3600.0  # seconds a range-list download may wait


@dataclass(frozen=True, slots=True)
class _TomlFile:
    table: dict[str, object]
    path: Path | None = None  # None: no file
    named: bool = False  # named by IPINTEL_CONFIG; False: found in the working directory


def _read_toml() -> _TomlFile:
    named = "IPINTEL_CONFIG" in os.environ
    path = Path(os.environ.get("IPINTEL_CONFIG", "ipintel.toml"))
    if not path.exists():
        if named:
            raise ConfigError(f"IPINTEL_CONFIG names {path}, which does not exist")
        return _TomlFile({})
    try:
        with path.open("rb") as fh:
            return _TomlFile(tomllib.load(fh), path, named)
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
    value = _get("DATABASE_URL", "database_url", None, _read_toml().table)
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
    greynoise_timeout: float = 10.0  # seconds one GreyNoise request may take in all
    dshield_url: str = DSHIELD_DEFAULT_URL
    dshield_contact: str | None = None  # None: the DShield pass is skipped
    dshield_rate: float = 1.0
    dshield_daily_budget: int = DSHIELD_DAILY_BUDGET
    # `ipintel ranges fetch`: kind -> URL of each list fetched (a kind absent: not fetched)
    range_urls: dict[str, str] = field(default_factory=dict)
    ranges_timeout: float = 60.0

    def redact(self, text: str) -> str:
        """`text` with every secret of these settings masked: the database password, the API keys.
        For every message that may quote an exception before it is printed or stored."""
        text = redact_dsn(text, self.database_url)
        if self.greynoise_key:
            text = text.replace(self.greynoise_key, "[REDACTED]")
        return text


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
    from ipintel.sources.http_api import base_url_problem

    problem = base_url_problem(value)
    if problem:
        shown = "(not shown: it holds credentials)" if "@" in value else repr(value)
        raise ConfigError(f"{env_name} is not an http(s) base URL ({problem}): {shown}")
    return value


def _dshield_contact(value: str | None) -> str | None:
    """The contact the DShield pass sends in its User-Agent, checked before anything is sent."""
    from ipintel.sources.dshield import contact_problem

    if value is None:
        return None
    value = value.strip()
    problem = contact_problem(value) if value else None
    if problem:
        raise ConfigError(f"IPINTEL_DSHIELD_CONTACT is not a contact ({problem}): {value!r}")
    return value or None


def _range_urls(table: dict[str, object]) -> dict[str, str]:
    """IPINTEL_RANGES_<KIND>_URL (or ranges_<kind>_url) for each range list, else its publisher's
    URL; `off` (or no default) leaves the list out. Checked now: an http(s) URL with a host."""
    from ipintel.ranges import FETCH_URLS

    urls: dict[str, str] = {}
    for kind, default in FETCH_URLS.items():
        env_name = f"IPINTEL_RANGES_{kind.upper()}_URL"
        value = _get(env_name, f"ranges_{kind}_url", default, table)
        if not value or value.strip().lower() == "off":
            continue
        problem = _download_url_problem(value)
        if problem:
            raise ConfigError(f"{env_name} is not an http(s) URL ({problem}): {value!r}")
        urls[kind] = value
    return urls


def _download_url_problem(url: str) -> str | None:
    """Why `url` cannot be downloaded from (an http(s) URL with a host, no credentials), or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "no http:// or https:// scheme" if not parts.scheme else f"scheme {parts.scheme!r}"
    if not parts.hostname:
        return "no host"
    if any(ch.isspace() for ch in url):
        return "contains whitespace"
    if parts.username or parts.password:
        return "credentials in the URL"
    return None


def _private_file_problem(mode: int) -> str | None:
    """Why a file with `mode` is not its owner's only, or None when it is."""
    if mode & 0o077:
        return f"has mode {stat.S_IMODE(mode):04o}: group and others must have no access to it"
    return None


def _chmod_hint(path: Path) -> str:
    return f"run `chmod 600 {shlex.quote(str(path))}`"


# What an HTTP header value can carry without quoting: a key is one token of visible ASCII.
_KEY_TEXT = re.compile(r"[\x21-\x7e]{1,1024}")


def _check_key(where: str, key: str) -> str:
    """The key, if an HTTP header can carry it as it is; never quoted in the message."""
    if not _KEY_TEXT.fullmatch(key):
        raise ConfigError(f"{where} is not an API key: it must be one line of printable ASCII without spaces "
                          "(at most 1024 characters)")
    return key


def _key_file(setting: str, path: Path) -> str:
    """The API key in `path`: a file its owner alone may read (mode 0600 or 0400), one line."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)  # of the file opened, not of whatever the path names a moment later
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{setting}: {path} is not a regular file")
        problem = _private_file_problem(st.st_mode)
        if problem:
            raise ConfigError(f"{setting}: the key file {path} {problem}; {_chmod_hint(path)}")
        raw = os.read(fd, 4097)
    finally:
        os.close(fd)
    key = raw.decode("ascii", errors="replace").strip()  # U+FFFD for a byte that is not ASCII: refused below
    if not key:
        raise ConfigError(f"{setting}: the key file {path} is empty")
    return _check_key(f"{setting}: the content of {path}", key)


def _greynoise_key(toml: _TomlFile) -> str | None:
    """The GreyNoise API key: IPINTEL_GREYNOISE_KEY or IPINTEL_GREYNOISE_KEY_FILE, else ipintel.toml's
    greynoise_key or greynoise_key_file (relative to the toml's folder). One source per layer."""
    env_key = os.environ.get("IPINTEL_GREYNOISE_KEY") or None
    env_file = os.environ.get("IPINTEL_GREYNOISE_KEY_FILE") or None
    if env_key and env_file:
        raise ConfigError("IPINTEL_GREYNOISE_KEY and IPINTEL_GREYNOISE_KEY_FILE are both set: keep one")
    if env_key:
        return _check_key("IPINTEL_GREYNOISE_KEY", env_key)
    if env_file:
        return _key_file("IPINTEL_GREYNOISE_KEY_FILE", Path(env_file).expanduser())
    key, key_file = toml.table.get("greynoise_key"), toml.table.get("greynoise_key_file")
    if key is None and key_file is None:
        return None
    assert toml.path is not None
    if key is not None and key_file is not None:
        raise ConfigError(f"{toml.path} sets both greynoise_key and greynoise_key_file: keep one")
    if not isinstance(key if key is not None else key_file, str) or not (key or key_file):
        name = "greynoise_key" if key is not None else "greynoise_key_file"
        raise ConfigError(f"{toml.path}: {name} must be a non-empty string")
    if isinstance(key_file, str):
        return _key_file(f"{toml.path}: greynoise_key_file", toml.path.parent / Path(key_file).expanduser())
    # A key written in the toml makes the toml a key file: its owner's only.
    problem = _private_file_problem(toml.path.stat().st_mode)
    if problem:
        raise ConfigError(f"{toml.path} holds greynoise_key and {problem}; {_chmod_hint(toml.path)} "
                          "(or move the key to a file named by greynoise_key_file)")
    assert isinstance(key, str)
    return _check_key(f"{toml.path}: greynoise_key", key)


def _service_host(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL: where a request, and its key header, goes."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _keyed_url(env_name: str, toml_key: str, url: str, default: str, toml: _TomlFile) -> str:
    """A keyed service's base URL, once the key may go there: https, or http to this machine; and
    no other host than the default's from an ipintel.toml that nobody named."""
    from ipintel.sources.greynoise import plain_http_problem

    problem = plain_http_problem(url)
    if problem:
        raise ConfigError(f"{env_name}: {problem}")
    from_implicit_toml = (not os.environ.get(env_name) and toml_key in toml.table and not toml.named)
    if from_implicit_toml and _service_host(url) != _service_host(default):
        raise ConfigError(
            f"{toml.path} (found in the working directory) sets {toml_key} to {_service_host(url)[1]}, not "
            f"{_service_host(default)[1]}: an ipintel.toml nobody named cannot send the API key to another host; "
            f"name it with IPINTEL_CONFIG={shlex.quote(str(toml.path))} or set {env_name} to accept it")
    return url


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
    toml = _read_toml()
    table = toml.table
    greynoise_key = _greynoise_key(toml)
    greynoise_url = _http_url("IPINTEL_GREYNOISE_URL",
                              _get("IPINTEL_GREYNOISE_URL", "greynoise_url", GREYNOISE_DEFAULT_URL, table) or "")
    if greynoise_key:
        greynoise_url = _keyed_url("IPINTEL_GREYNOISE_URL", "greynoise_url", greynoise_url, GREYNOISE_DEFAULT_URL, toml)
    tier = _get("IPINTEL_GREYNOISE_TIER", "greynoise_tier", "community", table) or "community"
    if tier not in ("community", "enterprise"):
        raise ConfigError(f"IPINTEL_GREYNOISE_TIER must be community or enterprise, not {tier!r}")
    return Settings(
        database_url=database_url(),
        geoip_dir=_get("IPINTEL_GEOIP_DIR", "geoip_dir", None, table),
        cymru_addr=_host_port("IPINTEL_CYMRU_ADDR",
                              _get("IPINTEL_CYMRU_ADDR", "cymru_addr", "whois.cymru.com:43", table) or ""),
        greynoise_url=greynoise_url,
        greynoise_key=greynoise_key,
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
        greynoise_timeout=_number("IPINTEL_GREYNOISE_TIMEOUT", "greynoise_timeout", 10.0, table, float,
                                  maximum=GREYNOISE_TIMEOUT_MAX),
        dshield_url=_http_url("IPINTEL_DSHIELD_URL",
                              _get("IPINTEL_DSHIELD_URL", "dshield_url", DSHIELD_DEFAULT_URL, table) or ""),
        dshield_contact=_dshield_contact(_get("IPINTEL_DSHIELD_CONTACT", "dshield_contact", None, table)),
        dshield_rate=_number("IPINTEL_DSHIELD_RATE", "dshield_rate", 1.0, table, float, maximum=DSHIELD_RATE_MAX),
        dshield_daily_budget=_number("IPINTEL_DSHIELD_DAILY_BUDGET", "dshield_daily_budget", DSHIELD_DAILY_BUDGET,
                                     table, int, maximum=DSHIELD_BUDGET_MAX),
        range_urls=_range_urls(table),
        ranges_timeout=_number("IPINTEL_RANGES_TIMEOUT", "ranges_timeout", 60.0, table, float,
                               maximum=RANGES_TIMEOUT_MAX),
    )
