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
# The `cdnstore upload` client's variables (the service it talks to, its token): not the daemon's settings.
CLIENT_VARIABLES = frozenset({"CDNSTORE_URL", "CDNSTORE_TOKEN"})
MIN_TOKEN_LENGTH = 16  # events tokens, global and per server
# never echoed in a config error
SECRET_KEYS = frozenset({"auth.secret_key", "events.token", "database.url", "oidc.client_secret"})


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_header_bytes: int = Field(16384, ge=1024, le=1 << 20)  # header fields, one or all together
    metrics_token: str = ""  # bearer token /metrics asks for; empty: this machine only
    head_timeout: float = Field(15.0, gt=0)  # seconds a connection has to send a whole request head
    idle_timeout: float = Field(60.0, gt=0)  # seconds a kept-alive connection may wait for its next request
    max_connections: int = Field(4096, ge=1)  # client connections open at once (fewer if open files are fewer)

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
    argon2_max_waiting: int = Field(16, ge=0)  # checks of unknown callers waiting for a turn; then 429
    # ... and of known ones (an address, or an account, that logged in within known_for), each apart
    argon2_reserved_waiting: int = Field(16, ge=0)
    known_for: int = Field(2592000, ge=0)  # seconds a successful login keeps its address and account known


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
    check_timeout: float = Field(10.0, gt=0)  # (also each step of a capability probe)
    # seconds a storage call made for a request may take in all (retries included); then 503
    request_timeout: float = Field(10.0, gt=0)
    # seconds between capability probes of each server (probe.py); 0: only at registration, on a change of
    # its address or keys, and on POST /servers/{id}/probe
    probe_interval: float = Field(86400.0, ge=0)


class UploadsConfig(Section):
    max_file_size: int = Field(5 << 40, ge=1, le=5 << 40)  # S3's limit for one object (5 TiB)
    multipart_threshold: int = Field(64 << 20, ge=5 << 20, le=5 << 30)  # larger files are uploaded in parts
    # Seconds a presigned upload URL works. Clients start the PUT as soon as they have it (the page asks for
    # part URLs a few parts ahead, and again when one has expired), and a URL still valid after its upload
    # is stored lets its holder PUT other bytes under the same key: 10 minutes, not an hour.
    url_ttl: int = Field(600, ge=60, le=604800)
    sweep_interval: float = Field(30.0, gt=0)  # how often uploads still pending are looked for
    sweep_after: int = Field(60, ge=0)  # an upload pending this long is HEADed on its server
    # ... on a server whose events are not seen (capabilities.events): looked for this often, this old
    fast_sweep_interval: float = Field(5.0, gt=0)
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


class ImportsConfig(Section):
    page_size: int = Field(1000, ge=1, le=1000)  # keys listed, and adopted in one transaction, at a time
    rate: float = Field(0.0, ge=0)  # objects an import lists a second at most; 0: no limit
    poll_interval: float = Field(5.0, gt=0)  # how often a daemon looks for imports to run (or resume)


class PeriodicConfig(Section):
    # Periodic work (health checks, the upload sweep, scrub, the verifier, deep scrub passes) runs on the
    # daemon holding its lease, renewed every third of it; when the holder dies another daemon takes it
    # within lease_seconds * 4/3.
    lease_seconds: float = Field(30.0, ge=1)


class LinksConfig(Section):
    default_expires_in: int = Field(0, ge=0)  # seconds a new link lives when none is asked; 0: no expiry
    max_expires_in: int = Field(0, ge=0)  # the longest expires_in a link may ask; 0: no ceiling
    # wrong passwords for one link from one client address (IPv6: its /64) within password_lockout -> 429
    max_password_failures: int = Field(5, ge=1)
    max_password_failures_per_link: int = Field(100, ge=1)  # ... for one link from all addresses together
    max_password_failures_per_ip: int = Field(20, ge=1)  # ... from one client address, over all links
    password_lockout: int = Field(300, ge=1)  # seconds: the window in which wrong passwords count
    url_ttl: int = Field(300, ge=60, le=604800)  # seconds a link's download URL works (anyone may hold it)
    max_archives: int = Field(4, ge=1, le=1000)  # ZIP archives one daemon streams at once; more: 503 + Retry-After
    max_per_minute: int = Field(30, ge=0)  # links one user may make per minute (429 beyond); 0: no limit

    @model_validator(mode="after")
    def _default_within_ceiling(self) -> LinksConfig:
        if self.max_expires_in and self.default_expires_in > self.max_expires_in:
            raise ValueError(
                f"default_expires_in ({self.default_expires_in}) is above max_expires_in ({self.max_expires_in})"
            )
        return self


class FilesConfig(Section):
    # Days a deleted file stays in its owner's trash (restorable, still counted in the quota) before it is
    # removed everywhere; 0: a deletion removes it at once. A change applies to files deleted from then on.
    trash_days: int = Field(7, ge=0, le=36500)
    sweep_interval: float = Field(60.0, gt=0)  # how often expired files are deleted and the trash emptied of due files


class RequestsConfig(Section):
    """Upload requests: links through which people without an account send files to a user."""

    default_expires_in: int = Field(604800, ge=0)  # seconds a new request stays open when none is asked; 0: no expiry
    max_expires_in: int = Field(0, ge=0)  # the longest expires_in a request may ask; 0: no ceiling
    max_per_minute: int = Field(60, ge=0)  # files one sender's address may announce a minute (429 beyond); 0: no limit

    @model_validator(mode="after")
    def _default_within_ceiling(self) -> RequestsConfig:
        if self.max_expires_in and self.default_expires_in > self.max_expires_in:
            raise ValueError(
                f"default_expires_in ({self.default_expires_in}) is above max_expires_in ({self.max_expires_in})"
            )
        return self


class UsersConfig(Section):
    default_quota_bytes: int = Field(0, ge=0)  # the quota_bytes of new users; 0: no quota
    default_zones: tuple[str, ...] = ()  # the zones of new users (their uploads go only there); empty: any zone


class OidcConfig(Section):
    """OpenID Connect single sign-on (oidc.py); `issuer` empty: none."""

    issuer: str = ""  # the provider's issuer URL; its /.well-known/openid-configuration is read
    client_id: str = ""
    client_secret: str = ""  # empty: a public client (PKCE alone)
    scopes: str = "openid profile email groups"  # asked for at sign-in (space separated; openid is required)
    name: str = ""  # the page's "Sign in with <name>"; empty: the issuer's host
    username_claim: str = "preferred_username"  # the claim whose value is the cdnstore username
    groups_claim: str = "groups"  # the claim listing the user's groups (for admin_group)
    admin_group: str = ""  # members of this group are admins (at each sign-in); empty: the provider decides nothing
    create_users: bool = True  # a first sign-in creates the user (users.default_quota_bytes, default_zones)
    password_login: bool = True  # false: only single sign-on (POST /auth/login answers 403)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        if v and not v.startswith(("https://", "http://")):
            raise ValueError("must be empty (no single sign-on) or the provider's https:// URL")
        return v.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid(cls, v: str) -> str:
        if "openid" not in v.split():
            raise ValueError("must include openid")
        return v

    @model_validator(mode="after")
    def _client(self) -> OidcConfig:
        if self.issuer and not self.client_id:
            raise ValueError("client_id is required when issuer is set")
        if not self.password_login and not self.issuer:
            raise ValueError("password_login = false needs single sign-on (issuer) or nobody could sign in")
        return self


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
    imports: ImportsConfig = ImportsConfig()
    periodic: PeriodicConfig = PeriodicConfig()
    links: LinksConfig = LinksConfig()
    files: FilesConfig = FilesConfig()
    requests: RequestsConfig = RequestsConfig()
    users: UsersConfig = UsersConfig()
    oidc: OidcConfig = OidcConfig()
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
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_PATH or name in CLIENT_VARIABLES:
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
        if "." not in key:  # a rule between a section's keys: its values (secrets among them) are not echoed
            raise ConfigError(f"[{key}]: {err['msg'].removeprefix('Value error, ')} (in {source})") from None
        shown = "(hidden)" if key in SECRET_KEYS else repr(err.get("input"))
        raise ConfigError(f"{key} = {shown}: {err['msg']} (in {source})") from None
