"""Apps with the real default limits (the shared fixtures raise them out of reach), and
clients that come from a chosen address."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY

from agora.config import Settings
from agora.runtime import ServiceApp
from tests.conftest import FAST_HASH

# The realtime tests' uvicorn fixture, for the WebSocket limit tests.
from tests.integration.realtime.conftest import serve  # noqa: F401

# The issue's defaults, spelled out: these tests must not depend on the fixtures' overrides.
REAL_LIMITS = {
    "ratelimit_user": "100/minute",
    "ratelimit_credentials": "5/minute",
    "ratelimit_anonymous": "60/minute",
    "ratelimit_ws_messages": "50/second",
}


class Running:
    """A started app; ``client(address)`` talks to it as if from that TCP peer."""

    def __init__(self, app: ServiceApp[Any], asgi: Any) -> None:
        self.app = app
        self._asgi = asgi
        self._clients: list[httpx.AsyncClient] = []

    def client(self, address: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self._asgi, client=(address, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


Start = Callable[[ServiceApp[Any]], Awaitable[Running]]


@pytest.fixture
def limited_settings(settings: Settings) -> Callable[..., Settings]:
    """Settings on the test databases with the real limits, plus ``overrides``."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": settings.database_url,
            "redis_url": settings.redis_url,
            "db_pool_min_size": 1,
            "db_pool_max_size": 5,
            "log_level": "WARNING",
            **FAST_HASH,
            **REAL_LIMITS,
        }
        return Settings(**{**values, **overrides})

    return build


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    started: list[tuple[LifespanManager, Running]] = []

    async def run(app: ServiceApp[Any]) -> Running:
        manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        running = Running(app, manager.app)
        started.append((manager, running))
        return running

    yield run
    for manager, running in reversed(started):
        await running.aclose()
        await manager.__aexit__(None, None, None)


def rejections(limit: str) -> float:

    value = REGISTRY.get_sample_value("agora_ratelimit_rejections_total", {"limit": limit})
    return value or 0.0
