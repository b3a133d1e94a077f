"""config.toml plus CDNSTORE_SECTION_KEY environment overrides -> one frozen, validated Config.

This is the only module that reads os.environ for settings. Every key has a default; an unknown key,
section or environment variable is an error, and every error names the key, the value and its source.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

ENV_PREFIX = "CDNSTORE_"
ENV_CONFIG_PATH = "CDNSTORE_CONFIG"
MIN_TOKEN_LENGTH = 16  # events tokens, global and per server
SECRET_KEYS = frozenset({"auth.secret_key", "events.token", "database.url"})  # never echoed in a config error


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_header_bytes: int = Field(16384, ge=1024, le=1 << 20)  # header fields, one or all together
    metrics_token: str = ""  # bearer token /metrics asks for; empty: /metrics is open

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("metrics_token")
    @classmethod
    def _token(cls, v: str) -> str:
        if v and len(v) < 16:
            raise ValueError("must be empty (no token asked) or at least 16 characters")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return v


class DatabaseConfig(Section):
    path: str = "var/cdnstore.sqlite3"
    # Empty: SQLite at `path`. "postgresql://user:password@host:port/name": PostgreSQL (several daemons).
    url: str = ""
    # PostgreSQL only: connections this daemon keeps open at most (each of its transactions holds one).
    pool_size: int = Field(10, ge=1, le=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be empty (SQLite) or a postgresql:// URL")
        return v


class AuthConfig(Section):
    secret_key: str = ""
    access_token_ttl: int = Field(900, ge=10)
    refresh_token_ttl: int = Field(2592000, ge=60)
    login_max_failures: int = Field(5, ge=1)
    login_max_failures_per_ip: int = Field(20, ge=1)
    login_lockout: int = Field(300, ge=1)
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)
    argon2_max_running: int = Field(2, ge=1)
    argon2_max_waiting: int = Field(16, ge=0)


class GeoipConfig(Section):
    database: str = ""
    fallback_ip: str = ""

    @field_validator("fallback_ip")
    @classmethod
    def _ip(cls, v: str) -> str:
        if v:
            ipaddress.ip_address(v)
        return v


class EventsConfig(Section):
    token: str = ""  # empty: storage events are disabled (except for servers with their own events_token)
    # The webhook answers within this many seconds, the work going on after it if it takes longer: Ceph RGW
    # holds the client's S3 write until its (non-persistent) topic's push is answered.
    answer_within: float = Field(1.0, gt=0)
    # Origins besides AWS's SNS hosts (https://sns.<region>.amazonaws.com) and the storage server's own whose
    # SNS SubscriptionConfirmation URL cdnstore fetches: an SNS-compatible service of your own.
    sns_origins: tuple[str, ...] = ()

    @field_validator("sns_origins")
    @classmethod
    def _origins(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
                raise ValueError(f"{item!r} is not an origin (http[s]://host[:port])")
        return tuple(item.rstrip("/") for item in v)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: str) -> str:
        # A short shared secret is guessable; empty is the explicit "no webhook" choice.
        if v and len(v) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be empty (events disabled) or at least {MIN_TOKEN_LENGTH} characters")
        return v


class StorageConfig(Section):
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    check_timeout: float = Field(10.0, gt=0)


class UploadsConfig(Section):
    max_file_size: int = Field(5 << 40, ge=1, le=5 << 40)  # S3's limit for one object (5 TiB)
    multipart_threshold: int = Field(64 << 20, ge=5 << 20, le=5 << 30)  # larger files are uploaded in parts
    # Seconds a presigned upload URL works. Clients start the PUT as soon as they have it (the page asks for
    # part URLs a few parts ahead, and again when one has expired), and a URL still valid after its upload
    # is stored lets its holder PUT other bytes under the same key: 10 minutes, not an hour.
    url_ttl: int = Field(600, ge=60, le=604800)
    sweep_interval: float = Field(30.0, gt=0)  # how often uploads still pending are looked for
    sweep_after: int = Field(60, ge=0)  # an upload pending this long is HEADed on its server
    abandon_after: int = Field(86400, ge=60)  # ... and given up this long after it was announced
    max_per_minute: int = Field(600, ge=0)  # uploads one user may announce per minute (429 beyond); 0: no limit


class DownloadsConfig(Section):
    url_ttl: int = Field(3600, ge=60, le=604800)


class JobsConfig(Section):
    workers: int = Field(4, ge=1, le=256)
    per_server: int = Field(2, ge=1)  # jobs running at once against one server
    max_attempts: int = Field(8, ge=1)
    backoff_base: float = Field(2.0, gt=0)  # seconds before the first retry; doubles each time
    backoff_max: float = Field(600.0, gt=0)
    timeout: float = Field(3600.0, gt=0)  # a job running longer is failed (and retried)
    poll_interval: float = Field(1.0, gt=0)  # idle workers look for due jobs this often
    part_size: int = Field(8 << 20, ge=5 << 20)  # multipart part size of server-to-server copies
    parts_in_flight: int = Field(2, ge=1)
    shutdown_grace: float = Field(30.0, ge=0)  # at SIGTERM, running jobs may finish this long, then are requeued
    # A running job's lease, renewed every third of it: a job of a daemon that died is taken over by another
    # (or the restarted one) within lease_seconds + poll_interval.
    lease_seconds: float = Field(30.0, ge=1)


class HealthConfig(Section):
    interval: float = Field(15.0, gt=0)
    timeout: float = Field(3.0, gt=0)


class ScrubConfig(Section):
    interval: float = Field(86400.0, ge=0)  # seconds between scrubs of every server; 0: only `cdnstore scrub`
    stale_upload_after: float = Field(86400.0, ge=0)  # an unfinished multipart upload this old is aborted
    # seconds: each replica is read back and hashed this often; 0: only `cdnstore scrub --deep`
    deep_interval: float = Field(2592000.0, ge=0)
    deep_rate: int = Field(20_000_000, ge=1)  # bytes a second the deep scrub reads at most (over all servers)


class IntegrityConfig(Section):
    verify_rate: int = Field(50 << 20, ge=1)  # bytes/s at most read back by verification reads
    verify_interval: float = Field(30.0, gt=0)  # how often versions awaiting their first read are looked for
    verify_attempts: int = Field(5, ge=1)  # reads that settle nothing before a version's final verdict
    verify_backoff: float = Field(60.0, gt=0)  # seconds before such a version is read again, doubled each time


class PeriodicConfig(Section):
    # Periodic work (health checks, the upload sweep, scrub, the verifier, deep scrub passes) runs on the
    # daemon holding its lease, renewed every third of it; when the holder dies another daemon takes it
    # within lease_seconds * 4/3.
    lease_seconds: float = Field(30.0, ge=1)


class LinksConfig(Section):
    default_expires_in: int = Field(0, ge=0)  # seconds a new link lives when none is asked; 0: no expiry
    max_expires_in: int = Field(0, ge=0)  # the longest expires_in a link may ask; 0: no ceiling
    max_password_failures: int = Field(5, ge=1)  # wrong passwords for one link within password_lockout -> 429
    max_password_failures_per_ip: int = Field(20, ge=1)  # ... from one client address, over all links
    password_lockout: int = Field(300, ge=1)  # seconds: the window in which wrong passwords count
    url_ttl: int = Field(300, ge=60, le=604800)  # seconds a link's download URL works (anyone may hold it)

    @model_validator(mode="after")
    def _default_within_ceiling(self) -> LinksConfig:
        if self.max_expires_in and self.default_expires_in > self.max_expires_in:
            raise ValueError(
                f"default_expires_in ({self.default_expires_in}) is above max_expires_in ({self.max_expires_in})"
            )
        return self


class UsersConfig(Section):
    default_quota_bytes: int = Field(0, ge=0)  # the quota_bytes of new users; 0: no quota


class WebhooksConfig(Section):
    # Loopback and private addresses (10/8, 192.168/16, 127/8, fc00::/7 ...) as webhook endpoints: off, so
    # that a user cannot make cdnstore call into its own network. Link-local and metadata addresses are
    # refused whatever this says (endpoints.py).
    allow_private: bool = False
    timeout: float = Field(10.0, gt=0, le=300)  # seconds one delivery attempt may take, connection to answer
    retry_for: float = Field(86400.0, ge=0)  # seconds a delivery is retried before it is marked failed
    backoff_base: float = Field(5.0, gt=0)  # seconds before the first retry; doubles each time (with jitter)
    backoff_max: float = Field(3600.0, gt=0)  # the longest wait between two attempts
    workers: int = Field(4, ge=1, le=256)  # deliveries one daemon sends at once
    poll_interval: float = Field(1.0, gt=0)  # idle workers look for due deliveries this often
    log_days: int = Field(7, ge=1)  # delivered and failed deliveries stay in the delivery log this long


class LogConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    requests: bool = True  # one line per HTTP request; false for benchmarks


class Config(Section):
    http: HttpConfig = HttpConfig()
    database: DatabaseConfig = DatabaseConfig()
    auth: AuthConfig = AuthConfig()
    geoip: GeoipConfig = GeoipConfig()
    events: EventsConfig = EventsConfig()
    storage: StorageConfig = StorageConfig()
    uploads: UploadsConfig = UploadsConfig()
    downloads: DownloadsConfig = DownloadsConfig()
    jobs: JobsConfig = JobsConfig()
    health: HealthConfig = HealthConfig()
    scrub: ScrubConfig = ScrubConfig()
    integrity: IntegrityConfig = IntegrityConfig()
    periodic: PeriodicConfig = PeriodicConfig()
    links: LinksConfig = LinksConfig()
    users: UsersConfig = UsersConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    log: LogConfig = LogConfig()

    def require_secret(self) -> None:
        if not self.auth.secret_key:
            raise ConfigError(
                "auth.secret_key: required to serve (tokens are signed with it); "
                "set it in the config file or CDNSTORE_AUTH_SECRET_KEY"
            )
        if len(self.auth.secret_key) < 16:
            raise ConfigError("auth.secret_key: must be at least 16 characters")


SECTIONS: dict[str, type[Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Config.model_fields.items()
}


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read `path` (missing is fine when it was not asked for by name), apply the environment, validate."""
    explicit = path is not None or ENV_CONFIG_PATH in (os.environ if env is None else env)
    env = os.environ if env is None else env
    file = Path(path) if path is not None else Path(env.get(ENV_CONFIG_PATH) or "config.toml")
    raw: dict[str, Any] = {}
    if file.exists():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    elif explicit:
        raise ConfigError(f"{file}: config file not found")
    sources = {f"{s}.{k}": str(file) for s, keys in raw.items() if isinstance(keys, dict) for k in keys}
    _apply_env(raw, env, sources)
    return _validate(raw, sources)


def _apply_env(raw: dict[str, Any], env: Mapping[str, str], sources: dict[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_PATH:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        model = SECTIONS.get(section)
        if model is None or key not in model.model_fields:
            raise ConfigError(f"{name}: no such setting (expected CDNSTORE_<SECTION>_<KEY>, e.g. CDNSTORE_HTTP_PORT)")
        is_list = "tuple" in str(model.model_fields[key].annotation)
        raw.setdefault(section, {})[key] = _parse_list(name, value) if is_list else value
        sources[f"{section}.{key}"] = name


def _parse_list(name: str, value: str) -> list[Any]:
    if value.strip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"{name}={value!r}: not a JSON list") from None
        if not isinstance(parsed, list):
            raise ConfigError(f"{name}={value!r}: not a JSON list")
        return parsed
    return [item.strip() for item in value.split(",") if item.strip()]


def _validate(raw: dict[str, Any], sources: dict[str, str]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        source = sources.get(key, "config")
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{key}: unknown setting (in {source})") from None
        shown = "(hidden)" if key in SECRET_KEYS else repr(err.get("input"))
        raise ConfigError(f"{key} = {shown}: {err['msg']} (in {source})") from None
