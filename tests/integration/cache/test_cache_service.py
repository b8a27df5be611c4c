"""CacheService against a real Redis: lazy loading, stamps, the store race, single flight,
early refresh, fail-open, deferred invalidations and the eviction counter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from agora.cache import CacheService, Loaded, stamp
from agora.observability.metrics import CACHE_EVICTIONS, CACHE_HIT_RATIO, CACHE_REQUESTS
from agora.redis.access import RedisAccess
from agora.redis.client import create_redis
from agora.resilience import BreakerState, CircuitBreaker
from tests.conftest import free_port
from tests.redis_servers import redis_server


class Item(BaseModel):
    name: str
    version: int


class Source:
    """A stand-in for the database: counts loads, optionally slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.version = 1
        self.loads = 0
        self.delay_s = delay_s
        self.during_load: Callable[[], object] | None = None

    async def load(self, _storing: bool = True) -> Loaded[Item]:
        self.loads += 1
        value = Item(name="x", version=self.version)
        if self.during_load is not None:
            await self.during_load()  # type: ignore[misc]
        await asyncio.sleep(self.delay_s)
        return Loaded(value, [stamp("item", "x")])


@pytest.fixture
async def redis_client(redis_url: str, clean_state: None) -> AsyncIterator[Redis]:  # noqa: ARG001  # requested for its side effect
    client = create_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def breaker() -> CircuitBreaker:
    return CircuitBreaker("redis")


@pytest.fixture
def cache(redis_client: Redis, breaker: CircuitBreaker) -> CacheService:
    return CacheService(RedisAccess(redis_client, breaker), early_refresh_beta=0.0)


def requests(cache_name: str, result: str) -> float:
    return float(CACHE_REQUESTS.labels(cache=cache_name, result=result)._value.get())


async def get(cache: CacheService, source: Source, name: str = "t") -> Item | None:
    return await cache.get_or_load(name, "x", Item, source.load, ttl_s=60)


async def test_miss_then_hit_with_metrics(cache: CacheService) -> None:
    source = Source()
    hits, misses = requests("t1", "hit"), requests("t1", "miss")
    for _ in range(3):
        assert (await get(cache, source, "t1")) == Item(name="x", version=1)
    assert source.loads == 1
    assert requests("t1", "hit") - hits == 2
    assert requests("t1", "miss") - misses == 1
    assert CACHE_HIT_RATIO.labels(cache="t1")._value.get() == pytest.approx(2 / 3)


async def test_invalidation_moves_the_stamp_and_the_next_read_reloads(
    cache: CacheService,
) -> None:
    source = Source()
    await get(cache, source)
    await get(cache, source)
    assert (await get(cache, source)).version == 1  # type: ignore[union-attr]
    loads = source.loads
    source.version = 2
    await cache.invalidate([stamp("item", "x")])
    assert (await get(cache, source)).version == 2  # type: ignore[union-attr]
    assert source.loads == loads + 1


async def test_a_change_during_the_load_is_never_stored(cache: CacheService) -> None:
    source = Source()
    await get(cache, source)
    await cache.invalidate([stamp("item", "x")])  # the next read loads

    async def concurrent_write() -> None:
        # The classic race: the loader has read version 1, then a writer commits version 2
        # and invalidates; the loader's store must not put version 1 back.
        source.version = 2
        await cache.invalidate([stamp("item", "x")])

    source.during_load = concurrent_write
    assert (await get(cache, source)).version == 1  # type: ignore[union-attr]
    source.during_load = None
    assert (await get(cache, source)).version == 2  # type: ignore[union-attr]
    assert source.loads == 3


async def test_one_load_for_a_hundred_concurrent_readers(
    cache: CacheService, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers = 100
    # The load is held until every reader waits on it: on a loaded machine arrivals spread
    # over longer than any fixed delay, and a late reader after the store is a real miss.
    all_waiting = asyncio.Event()
    waiting = 0
    join = cache._join

    async def counted_join(flight: asyncio.Future[object], model: type[Item]) -> Item | None:
        nonlocal waiting
        waiting += 1
        if waiting == readers:
            all_waiting.set()
        return await join(flight, model)

    monkeypatch.setattr(cache, "_join", counted_join)
    source = Source()

    async def hold() -> None:
        async with asyncio.timeout(30):
            await all_waiting.wait()

    source.during_load = hold
    results = await asyncio.gather(*(get(cache, source) for _ in range(readers)))
    assert waiting == readers
    assert source.loads == 1
    assert all(item == Item(name="x", version=1) for item in results)


async def test_a_hit_near_expiry_is_refreshed_early_in_the_background(
    redis_client: Redis, breaker: CircuitBreaker
) -> None:
    cache = CacheService(RedisAccess(redis_client, breaker), early_refresh_beta=1e6)
    source = Source(delay_s=0.01)

    async def read() -> Item | None:
        return await cache.get_or_load("t", "x", Item, source.load, ttl_s=1)

    await read()  # loaded and stored
    loads = source.loads
    source.version = 2
    # P(early refresh) = exp(-remaining / (load time x beta)) = exp(-1 s / 10,000 s) ~ 0.9999:
    # the hit serves the cached value and refreshes it in the background.
    served = await read()
    assert served == Item(name="x", version=1)
    await asyncio.sleep(0.2)
    assert source.loads == loads + 1
    plain = CacheService(RedisAccess(redis_client, breaker), early_refresh_beta=0.0)
    assert (await plain.get_or_load("t", "x", Item, source.load, ttl_s=1)) == Item(
        name="x", version=2
    )


async def test_redis_down_serves_the_loader_and_opens_the_breaker() -> None:
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.2)
    breaker = CircuitBreaker("redis-test", failure_threshold=3)
    cache = CacheService(RedisAccess(dead, breaker, socket_timeout_s=0.2))
    source = Source()
    errors = requests("down", "error")
    for _ in range(5):
        assert (await get(cache, source, "down")) == Item(name="x", version=1)
    assert breaker.state is BreakerState.OPEN
    assert requests("down", "error") - errors == 5
    assert source.loads == 5
    await dead.aclose()


async def test_invalidations_made_while_redis_is_away_are_applied_when_it_returns(
    tmp_path: Path,
) -> None:
    server = redis_server(tmp_path)
    client = create_redis(server.url(), socket_timeout_s=0.2)
    breaker = CircuitBreaker("redis-test")
    cache = CacheService(RedisAccess(client, breaker, socket_timeout_s=0.2))
    source = Source()
    try:
        await get(cache, source)
        await get(cache, source)
        server.process.send_signal(19)  # type: ignore[union-attr]  # SIGSTOP: data kept
        source.version = 2
        await cache.invalidate([stamp("item", "x")])
        assert cache.pending_invalidations == 1
        server.process.send_signal(18)  # type: ignore[union-attr]  # SIGCONT
        await cache.flush_pending()
        assert cache.pending_invalidations == 0
        assert (await get(cache, source)).version == 2  # type: ignore[union-attr]
    finally:
        await client.aclose()
        server.kill()


async def test_evicted_keys_feed_the_eviction_counter(tmp_path: Path) -> None:
    server = redis_server(tmp_path, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    client = create_redis(server.url())
    cache = CacheService(RedisAccess(client, CircuitBreaker("redis-test")))
    try:
        await cache.sample_evictions()  # baseline
        before = CACHE_EVICTIONS._value.get()
        async with client.pipeline(transaction=False) as pipe:
            for i in range(400):
                pipe.set(f"filler:{i}", b"x" * 10_000)
            await pipe.execute()
        await cache.sample_evictions()
        assert CACHE_EVICTIONS._value.get() > before
    finally:
        await client.aclose()
        server.kill()
