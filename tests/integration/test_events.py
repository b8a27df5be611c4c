"""Publishing events: never raises, never waits longer than its bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from agora.events import Event, publish
from agora.redis.access import RedisAccess
from agora.redis.client import create_redis
from agora.resilience import CircuitBreaker

EVENT = Event(type="post.created", author_id="a", payload={"post": {"id": "p"}})


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers: a hung Redis."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_hung_redis_costs_at_most_the_publish_bound(silent_server: int) -> None:
    # Socket timeouts and retries of the client alone would take several times longer.
    redis = create_redis(f"redis://127.0.0.1:{silent_server}/0", socket_timeout_s=1.0)
    started = time.perf_counter()
    try:
        access = RedisAccess(redis, CircuitBreaker("redis"), socket_timeout_s=0.2)
        assert await publish(access, "agora:events", EVENT) is False
    finally:
        await redis.aclose()
    assert time.perf_counter() - started < 0.6


async def test_a_working_redis_delivers_to_subscribers(redis_url: str) -> None:
    redis = create_redis(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe("agora:test-events")
    try:
        access = RedisAccess(redis, CircuitBreaker("redis"), socket_timeout_s=1.0)
        assert await publish(access, "agora:test-events", EVENT) is True
        message = None
        async with asyncio.timeout(5):
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        assert Event.decode(message["data"]) == EVENT
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        await redis.aclose()
