"""One typed settings object, read from the environment (prefix ``AGORA_``).

Every value is validated at start; a bad or missing one stops the process with a message
that names the variable, instead of failing later on the first request that needs it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agora.flags.provider import FlagFileError, load_flag_file
from agora.ratelimit.rates import Rate, parse_rate
from agora.redis.keys import EVENTS_CHANNEL, KEY_EVENTS_CHANNEL
from agora.security.settings import check_fernet_keys, production_problems

MIN_TOKEN_CHARS = 16  # the internal and admin tokens: guessing one must be out of reach
MAX_DRAIN_S = 50  # shutdown delay + drain timeout (see _shutdown_budget)


ServiceName = Literal["auth", "posts", "realtime"]

DEFAULT_PORTS: dict[ServiceName, int] = {"auth": 8080, "posts": 8081, "realtime": 8082}

CommaList = Annotated[list[str], NoDecode]
RateSetting = Annotated[Rate, NoDecode, BeforeValidator(parse_rate)]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Runtime configuration of every Agora process. See README.md for each variable."""

    model_config = SettingsConfigDict(env_prefix="AGORA_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    debug: bool = False
    instance_id: str = Field(default_factory=socket.gethostname)

    database_url: str | None = None
    database_replica_urls: CommaList = []
    db_pool_min_size: int = Field(default=10, ge=0)
    db_pool_max_size: int = Field(default=100, ge=1)
    db_command_timeout_s: float = Field(default=10.0, gt=0)
    db_acquire_timeout_s: float = Field(default=2.0, gt=0)
    db_pool_max_lifetime_s: float = Field(default=1800.0, gt=0)
    db_pool_max_idle_s: float = Field(default=300.0, gt=0)
    db_health_check_after_idle_s: float = Field(default=1.0, ge=0)
    db_leak_threshold_s: float = Field(default=300.0, ge=0)
    db_retry_attempts: int = Field(default=3, ge=1, le=10)
    db_read_your_writes_s: float = Field(default=10.0, gt=0)
    db_replica_cooldown_s: float = Field(default=5.0, gt=0)
    admin_token: SecretStr | None = None

    redis_url: str | None = None
    redis_socket_timeout_s: float = Field(default=0.5, gt=0)
    redis_max_connections: int = Field(default=200, ge=1)
    events_channel: str = EVENTS_CHANNEL
    # Signing-key revocations reach every instance of every service here (not on the events
    # channel, which only realtime listens to).
    key_events_channel: str = KEY_EVENTS_CHANNEL

    auth_jwks_url: str = "http://127.0.0.1:8080/api/v1/auth/.well-known/jwks.json"
    jwks_refetch_cooldown_s: float = Field(default=10.0, ge=0)
    jwt_issuer: str = "agora"
    jwt_audience: str = "agora"
    jwt_leeway_s: int = Field(default=30, ge=0, le=300)
    access_token_ttl_s: int = Field(default=900, ge=60, le=900)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=3600)
    signing_key_refresh_s: float = Field(default=30.0, gt=0)

    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8192)
    password_hash_parallelism: int = Field(default=4, ge=1)
    # Hashes at once (None: one per usable core), sign-ins waiting for a turn and how long one
    # may wait; beyond either, a sign-in is refused with 503 (agora.security.passwords says why).
    password_hash_concurrency: int | None = Field(default=None, ge=1)
    password_hash_max_waiting: int = Field(default=32, ge=0)
    password_hash_max_wait_s: float = Field(default=2.0, gt=0, le=60)

    cookie_secure: bool | None = None

    log_level: Literal["DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] | None = None

    otlp_endpoint: str | None = None
    # agora_build_info's revision label (the image build sets it to the commit).
    build_revision: str = "unknown"
    # `agora up --monitoring` (docs/monitoring.md): Prometheus scrape/evaluation interval and
    # Alertmanager's group wait; the defaults are production's, the tests use 1 s and 0 s.
    monitoring_scrape_interval_s: float = Field(default=15.0, ge=1.0)
    monitoring_group_wait_s: float = Field(default=30.0, ge=0.0)
    # Compresses time in the rendered rules and routing (docs/gameday.md): every `for:`, range
    # window and Alertmanager group interval multiplied by it. 1 is production; the fast game
    # day uses 1/15 with a 1 s scrape (15 s -> 1 s, so every alert keeps its shape).
    monitoring_time_scale: float = Field(default=1.0, gt=0.0, le=1.0)
    trace_sample_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    # Observability (docs/observability.md): file sink, access-log sampling, active users.
    log_file: str | None = None
    log_sample_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    log_hot_routes: CommaList = [
        "/api/v1/posts/feed",
        "/api/v1/posts/{post_id}",
        "/api/v1/posts/users/{user_id}",
        "/api/v1/auth/users/{user_id}",
        "/api/v1/realtime/presence/{user_id}",
    ]
    log_slow_request_ms: int = Field(default=500, ge=1)
    active_users_flush_s: float = Field(default=10.0, gt=0, le=60)

    # Circuit breakers (postgres, redis, jwks): open after N failures in a rolling window.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_window_s: float = Field(default=10.0, gt=0)
    breaker_open_s: float = Field(default=30.0, gt=0)

    # Cache (cache-aside on Redis): entry lifetimes, XFetch early-refresh factor, and the
    # largest follow list whose home feed is cached (its check costs one GET per followee).
    cache_profile_ttl_s: float = Field(default=300.0, gt=0)
    cache_feed_ttl_s: float = Field(default=300.0, gt=0)
    cache_post_ttl_s: float = Field(default=600.0, gt=0)
    cache_early_refresh_beta: float = Field(default=1.0, ge=0)
    cache_feed_max_followees: int = Field(default=1000, ge=0)

    cors_origins: CommaList = []
    trusted_proxies: CommaList = ["127.0.0.0/8", "::1/128"]

    presence_ttl_s: int = Field(default=60, ge=5)
    ws_heartbeat_s: float = Field(default=20.0, gt=0)
    # Open WebSockets per user across all realtime instances (a few accounts must not hold
    # every upstream connection, docs/security.md); without Redis, per instance.
    realtime_max_sockets_per_user: int = Field(default=8, ge=1)
    shutdown_timeout_s: float = Field(default=30.0, gt=0, le=60)
    keep_alive_timeout_s: int = Field(default=75, ge=1)
    # Health probes and drain (see docs/operations.md).
    health_check_interval_s: float = Field(default=10.0, gt=0, le=300)
    health_check_timeout_s: float = Field(default=1.0, gt=0, le=30)
    shutdown_delay_s: float | None = Field(default=None, ge=0, le=30)
    ws_reconnect_jitter_ms: int = Field(default=5000, ge=0, le=60000)

    # Rate limits (agora.ratelimit): rates are written like 100/minute, 5/min, 50/second.
    ratelimit_enabled: bool = True
    ratelimit_user: RateSetting = Rate(limit=100, period_s=60)
    ratelimit_credentials: RateSetting = Rate(limit=5, period_s=60)
    ratelimit_anonymous: RateSetting = Rate(limit=60, period_s=60)
    ratelimit_ws_messages: RateSetting = Rate(limit=50, period_s=1)
    ratelimit_ws_close_after_s: float = Field(default=3.0, gt=0)
    ratelimit_allowlist: CommaList = []
    ratelimit_redis_timeout_s: float = Field(default=0.1, gt=0, le=5)
    ratelimit_fallback_s: float = Field(default=5.0, gt=0)
    ratelimit_max_backoff_s: int = Field(default=300, ge=1)
    internal_token: SecretStr | None = None

    # --- security hardening (docs/security.md) ---
    # Fernet keys, comma-separated: the first encrypts signing keys at rest, all decrypt.
    key_encryption_key: Annotated[list[SecretStr], NoDecode] = []
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_json_depth: int = Field(default=32, ge=2, le=256)
    ws_max_message_bytes: int = Field(default=64 * 1024, ge=128)
    request_timeout_s: float = Field(default=30.0, gt=0)
    # Slow clients (docs/security.md): a request's headers must arrive within
    # request_header_timeout_s of the connect (or of the request's first byte on a kept-alive
    # connection) and be at most max_header_bytes (above Envoy's 60 KiB, so nothing the gateway
    # forwards is refused); its body within request_body_timeout_s of the headers (408).
    request_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    request_body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # Admission control (agora.resilience.admission; sized in docs/performance.md): HTTP
    # requests one instance works on at once, how many more may wait for a turn and how long;
    # past that, 503 before any work.
    max_in_flight: int = Field(default=64, ge=1)
    admission_queue: int = Field(default=1024, ge=0)
    admission_queue_timeout_s: float = Field(default=1.0, ge=0)
    # The garbage collector's youngest-generation threshold (agora.server; Python's is 700).
    gc_threshold: int = Field(default=50_000, ge=100)
    login_backoff_threshold: int = Field(default=5, ge=1)
    login_backoff_max_s: int = Field(default=900, ge=1)
    signing_key_rotation_s: int = Field(default=30 * 24 * 3600, ge=3600)

    # The API gateway (Envoy) that `agora up` runs in front of the services; docs/gateway.md.
    gateway_http_port: int = Field(default=8000, ge=1, le=65535)
    gateway_https_port: int = Field(default=8443, ge=1, le=65535)
    gateway_admin_port: int = Field(default=9901, ge=1, le=65535)
    gateway_public_https_port: int = Field(default=443, ge=1, le=65535)
    gateway_tls_cert_file: str | None = None
    gateway_tls_key_file: str | None = None
    gateway_client_rps: int = Field(default=100, ge=1)
    gateway_total_rps: int = Field(default=5000, ge=1)
    # Proxies in front of the gateway (load balancers) that append their peer to
    # X-Forwarded-For: the client is that many entries from the right. 0: the TCP peer.
    gateway_trusted_hops: int = Field(default=0, ge=0, le=10)
    # Upstream connections the gateway may hold to realtime for WebSockets, a budget of their
    # own: however many sockets are open, HTTP to realtime keeps its 1024 (docs/security.md).
    gateway_max_websockets: int = Field(default=8192, ge=1)
    # Admission at the gateway (docs/gateway.md "Admission"): each HTTP cluster holds at most
    # instances x AGORA_MAX_IN_FLIGHT upstream connections (HTTP/1.1: one request each) and
    # lets instances x this many more requests wait inside Envoy for one; past that Envoy
    # answers 503 `overloaded` itself, before a service spends a cycle on the refusal.
    gateway_queue_per_instance: int = Field(default=64, ge=1, le=4096)
    gateway_instances_per_service: int = Field(default=1, ge=1, le=256)
    # How long the gateway waits for a whole request (headers and body; a WebSocket until its
    # upgrade is answered): a slow body cannot hold a service's connection for Envoy's 300 s.
    gateway_request_timeout_s: float = Field(default=30.0, ge=1, le=300)
    # The gateway's fault-injection switch (docs/gameday.md): None = on in development, off
    # in production; true enables it in production too (a game day on a staging copy).
    gateway_fault_injection: bool | None = None

    # Feature flags (an OpenFeature file provider) and the fault switch; docs/flags.md.
    flags_file: str | None = None
    flags_reload_s: float = Field(default=2.0, gt=0, le=300)
    # None: allowed outside production, refused in production (an explicit true allows it).
    fault_injection: bool | None = None
    # SIGUSR2 heap snapshots (agora.observability.heap; docs/runbook.md).
    heap_snapshot_dir: str = "/tmp"  # noqa: S108  # nosec B108 # the image's writable tmpfs

    _split = field_validator(
        "database_replica_urls",
        "cors_origins",
        "trusted_proxies",
        "log_hot_routes",
        "ratelimit_allowlist",
        mode="before",
    )(_split_commas)
    _split_security = field_validator("key_encryption_key", mode="before")(_split_commas)

    @field_validator("internal_token", mode="before")
    @classmethod
    def _internal_token_strength(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or len(raw) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"must be at least {MIN_TOKEN_CHARS} characters: it bypasses every rate limit"
            )
        return value

    @field_validator(
        "database_url",
        "redis_url",
        "otlp_endpoint",
        "log_file",
        "gateway_tls_cert_file",
        "gateway_tls_key_file",
        "flags_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("trusted_proxies", "ratelimit_allowlist")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _otlp_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    "must be an http:// or https:// URL with a host (OTLP/HTTP; /v1/traces added)"
                )
        return value

    @field_validator("database_replica_urls")
    @classmethod
    def _replica_schemes(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("postgresql://", "postgres://")):
                raise ValueError("every replica must be a postgresql:// URL")
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("admin_token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"must be at least {MIN_TOKEN_CHARS} characters (it guards the admin endpoints)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("redis://", "rediss://", "unix://", "redis+sentinel://")
        ):
            raise ValueError("must be a redis://, rediss://, unix:// or redis+sentinel:// URL")
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("AGORA_DB_POOL_MIN_SIZE must not exceed AGORA_DB_POOL_MAX_SIZE")
        if (self.gateway_tls_cert_file is None) != (self.gateway_tls_key_file is None):
            raise ValueError(
                "AGORA_GATEWAY_TLS_CERT_FILE and AGORA_GATEWAY_TLS_KEY_FILE go together"
            )
        if self.env == "production":
            if self.debug:
                raise ValueError("AGORA_DEBUG must be off in production")
            if "*" in self.cors_origins:
                raise ValueError("AGORA_CORS_ORIGINS must not be '*' in production")
        return self

    @field_validator("flags_file")
    @classmethod
    def _readable_flags(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                load_flag_file(value)
            except FlagFileError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("key_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:

        check_fernet_keys([item.get_secret_value() for item in value])
        return value

    @model_validator(mode="after")
    def _production_security(self) -> Settings:
        if self.env == "production":
            problems = production_problems(self)
            if problems:
                raise ValueError("production refuses development defaults: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _shutdown_budget(self) -> Settings:
        # The drain must fit the 60 s hard limit with room for the accept queue (2 s), the
        # WebSocket goodbye (5 s) and
        # closing the pool and Redis (agora.shutdown.HARD_LIMIT_S).
        if self.effective_shutdown_delay_s + self.shutdown_timeout_s > MAX_DRAIN_S:
            raise ValueError(
                "AGORA_SHUTDOWN_DELAY_S + AGORA_SHUTDOWN_TIMEOUT_S must not exceed "
                f"{MAX_DRAIN_S} seconds"
            )
        if self.health_check_timeout_s > self.health_check_interval_s:
            raise ValueError(
                "AGORA_HEALTH_CHECK_TIMEOUT_S must not exceed AGORA_HEALTH_CHECK_INTERVAL_S"
            )
        return self

    @property
    def effective_shutdown_delay_s(self) -> float:
        """Serving on after SIGTERM while load balancers notice readiness is 503."""
        if self.shutdown_delay_s is not None:
            return self.shutdown_delay_s
        return 5.0 if self.is_production else 0.0

    @property
    def effective_password_hash_concurrency(self) -> int:
        if self.password_hash_concurrency is not None:
            return self.password_hash_concurrency
        return max(1, len(os.sched_getaffinity(0)))

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def effective_gateway_fault_injection(self) -> bool:
        if self.gateway_fault_injection is not None:
            return self.gateway_fault_injection
        return not self.is_production

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "console"

    @property
    def effective_trace_sample_ratio(self) -> float:
        if self.trace_sample_ratio is not None:
            return self.trace_sample_ratio
        return 0.1 if self.is_production else 1.0

    @property
    def effective_log_sample_ratio(self) -> float:
        if self.log_sample_ratio is not None:
            return self.log_sample_ratio
        return 0.1 if self.is_production else 1.0

    @property
    def effective_fault_injection(self) -> bool:
        return (not self.is_production) if self.fault_injection is None else self.fault_injection

    @property
    def effective_cookie_secure(self) -> bool:
        return self.is_production if self.cookie_secure is None else self.cookie_secure

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigError(
                "AGORA_DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/agora); "
                "`agora up` sets it for you, with an embedded PostgreSQL when none is configured"
            )
        return self.database_url

    def require_redis_url(self) -> str:
        if self.redis_url is None:
            raise ConfigError(
                "AGORA_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0); "
                "`agora up` sets it for you, with an embedded Redis when none is configured"
            )
        return self.redis_url


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad variable, named as the operator sets it."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        name = f"AGORA_{field.upper()}" if field else "configuration"
        lines.append(f"{name}: {item['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings() -> Settings:
    """Read and validate the environment, raising ConfigError with a readable message.

    With ``AGORA_SECRETS_DIR`` (e.g. ``/run/secrets``, where compose and Kubernetes mount
    secrets), a file named like a variable in lower case (``agora_key_encryption_key``) sets it;
    the environment wins over a file."""
    secrets_dir = os.environ.get("AGORA_SECRETS_DIR") or None
    try:
        return Settings(_secrets_dir=secrets_dir)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
