"""The Lua GCRA against real Redis: the same decisions as the Python one, one key per client
that expires on its own, and a script that survives a flushed script cache."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from agora.config import Settings
from agora.ratelimit.gcra import MemoryStore
from agora.ratelimit.rates import Rate
from agora.ratelimit.redis_store import RedisStore
from agora.redis.access import RedisAccess
from agora.resilience import CircuitBreaker
from tests.unit.ratelimit.test_gcra import Clock


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.require_redis_url())
    yield client
    await client.aclose()


def access(redis: Redis) -> RedisAccess:
    return RedisAccess(redis, CircuitBreaker("redis"))


# Periods long enough that no key expires in real time while the test runs, and strikes kept
# for days (their expiry is Redis's real clock), so Redis and the controlled clock agree.
DAYS = 5 * 86400


@pytest.mark.parametrize("rate", [Rate(5, 60), Rate(7, 60), Rate(100, 60), Rate(50, 3600)])
async def test_lua_and_python_decide_alike(redis: Redis, rate: Rate) -> None:
    rng = random.Random(rate.limit)  # reproducible
    clock = Clock(1_700_000_000.0)
    memory, store = MemoryStore(clock=clock), RedisStore(access(redis))
    interval = rate.period_s / rate.limit
    for _ in range(250):
        clock.advance(rng.choice([0.0, 0.0, 0.001, interval / 3, interval * 2]))
        expected = memory.hit("k", rate, strike_ttl_s=DAYS)
        actual = await store.hit("k", rate, strike_ttl_s=DAYS, now_ms=clock.now * 1000)
        assert actual.allowed == expected.allowed
        assert actual.remaining == expected.remaining
        assert actual.strikes == expected.strikes
        assert actual.reset_s == pytest.approx(expected.reset_s, abs=1e-3)
        assert actual.retry_after_s == pytest.approx(expected.retry_after_s, abs=1e-3)


async def test_redis_time_and_self_expiring_keys(redis: Redis) -> None:
    store = RedisStore(access(redis))
    rate = Rate(3, 60)
    decisions = [await store.hit("client", rate, strike_ttl_s=30) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after_s == pytest.approx(20.0, abs=0.5)
    state_key, strikes_key = store.keys("client")
    # One small string per client, gone once the quota is full again: no cleanup job.
    assert 59_000 <= await redis.pttl(state_key) <= 60_000
    assert 29_000 <= await redis.pttl(strikes_key) <= 30_000
    assert state_key == "agora:rl:{client}"  # hash tag: both keys on one cluster slot


async def test_script_is_reloaded_after_the_cache_is_flushed(redis: Redis) -> None:
    """What a Redis restart or a failover to a fresh replica looks like to the client."""
    store = RedisStore(access(redis))
    assert (await store.hit("k", Rate(2, 60), strike_ttl_s=1)).allowed
    await redis.script_flush()
    assert (await store.hit("k", Rate(2, 60), strike_ttl_s=1)).remaining == 0


async def test_hit_and_check_reads_another_key_in_the_same_round_trip(redis: Redis) -> None:
    store = RedisStore(access(redis))
    rate = Rate(2, 60)
    await redis.set("test:mark:present", b"1")
    first, present = await store.hit_and_check("k", rate, "test:mark:present", strike_ttl_s=30)
    second, absent = await store.hit_and_check("k", rate, "test:mark:absent", strike_ttl_s=30)
    third, _ = await store.hit_and_check("k", rate, "test:mark:absent", strike_ttl_s=30)
    assert (present, absent) == (True, False)
    # The limit counts exactly as ``hit`` does: one request each, the third refused.
    assert [d.allowed for d in (first, second, third)] == [True, True, False]
    assert [d.remaining for d in (first, second)] == [1, 0]
    assert third.strikes == 1


async def test_hit_and_check_survives_a_flushed_script_cache_without_counting_twice(
    redis: Redis,
) -> None:
    store = RedisStore(access(redis))
    rate = Rate(3, 60)
    await store.hit("k", rate, strike_ttl_s=1)  # script loaded and used once
    await redis.script_flush()  # a restart or a failover to a fresh replica
    decision, exists = await store.hit_and_check("k", rate, "test:mark:none", strike_ttl_s=1)
    assert exists is False
    assert decision.remaining == 1  # two requests counted, not three
