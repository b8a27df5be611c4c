"""The events subscriber survives Redis outages and silently dead connections.

Redis is real; a small TCP proxy in front of it lets a test cut, refuse and freeze the
subscriber's connection the way a network or a Redis restart would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from agora.config import Settings
from agora.redis.access import RedisAccess
from agora.redis.client import create_redis
from agora.resilience import CircuitBreaker
from agora.services.realtime.subscriber import Subscriber
from tests.integration.realtime.conftest import TcpProxy

CHANNEL = "agora:test-subscriber"


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.require_redis_url())
    yield client
    await client.aclose()


async def run_subscriber(
    proxy: TcpProxy, *, poll_s: float = 1.0, idle_ping_s: float = 15.0
) -> tuple[Subscriber, asyncio.Queue[bytes], asyncio.Task[None], Redis]:
    redis = create_redis(f"redis://127.0.0.1:{proxy.port}/0", socket_timeout_s=0.5)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(data: bytes) -> None:
        await received.put(data)

    subscriber = Subscriber(
        RedisAccess(redis, CircuitBreaker("redis")),
        CHANNEL,
        handler,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        poll_s=poll_s,
        idle_ping_s=idle_ping_s,
    )
    task = asyncio.create_task(subscriber.run())
    return subscriber, received, task, redis


async def publish_until_received(
    publisher: Redis, received: asyncio.Queue[bytes], data: bytes
) -> None:
    """Publish repeatedly until the subscriber hands ``data`` over (pub/sub loses what is
    published while nobody is subscribed, by design)."""
    async with asyncio.timeout(10):
        while True:
            await publisher.publish(CHANNEL, data)
            try:
                async with asyncio.timeout(0.1):
                    while await received.get() != data:
                        pass
            except TimeoutError:
                continue
            return


async def stop(task: asyncio.Task[None], redis: Redis) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await redis.aclose()


async def test_survives_a_redis_outage_and_resubscribes(proxy: TcpProxy, publisher: Redis) -> None:
    subscriber, received, task, redis = await run_subscriber(proxy)
    try:
        await publish_until_received(publisher, received, b"before")
        await proxy.stop()
        # Redis is "down" for a while: several failed reconnect attempts, no crash.
        await asyncio.sleep(0.6)
        assert not task.done()
        assert not subscriber.subscribed.is_set()
        await proxy.start()
        await publish_until_received(publisher, received, b"after")
        assert subscriber.subscribed.is_set()
    finally:
        await stop(task, redis)


async def test_a_silently_dead_connection_is_detected_and_replaced(
    proxy: TcpProxy, publisher: Redis
) -> None:
    _, received, task, redis = await run_subscriber(proxy, poll_s=0.05, idle_ping_s=0.2)
    try:
        await publish_until_received(publisher, received, b"before")
        proxy.blackhole()
        await publish_until_received(publisher, received, b"after")
        assert not task.done()
    finally:
        await stop(task, redis)


async def test_starts_while_redis_is_down_and_cancels_cleanly(proxy: TcpProxy) -> None:
    await proxy.stop()
    subscriber, _, task, redis = await run_subscriber(proxy)
    await asyncio.sleep(0.3)
    assert not task.done()
    assert not subscriber.subscribed.is_set()
    await stop(task, redis)
    assert task.cancelled()
