"""agora_active_users: distinct users across instances over the last 5 minutes (real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from agora.config import Settings
from agora.observability.activity import WINDOW_S, ActiveUsers
from agora.observability.metrics import ACTIVE_USERS
from agora.redis.access import RedisAccess, RedisUnavailable
from agora.resilience import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[RedisAccess]:
    client = Redis.from_url(settings.require_redis_url())
    yield RedisAccess(client, CircuitBreaker("redis"))
    await client.aclose()


async def test_distinct_users_across_instances_within_the_window(redis: RedisAccess) -> None:
    clock = Clock()
    first, second = ActiveUsers(clock=clock), ActiveUsers(clock=clock)
    for user in ("alice", "bob", "alice"):
        first.record(user)
    for user in ("bob", "carol"):
        second.record(user)
    await first.flush(redis)
    assert await second.flush(redis) == 3  # alice, bob, carol: bob counted once
    assert ACTIVE_USERS._value.get() == 3
    clock.now += WINDOW_S - 20
    second.record("dave")
    assert await second.flush(redis) == 4
    clock.now += 30  # the first users have aged out; dave has not
    assert await first.flush(redis) == 1


async def test_users_wait_while_redis_is_away(redis: RedisAccess) -> None:
    clock = Clock()
    instance = ActiveUsers(clock=clock)
    instance.record("alice")
    broken = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with pytest.raises(RedisUnavailable):
        await instance.flush(RedisAccess(broken, CircuitBreaker("redis")))
    await broken.aclose()
    assert await instance.flush(redis) == 1
