"""Redis killed or frozen mid-test: the limiter answers from this process within
milliseconds (no 5xx, no hang), counts the fallback, and returns to Redis when it is back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest
import redis
from prometheus_client import REGISTRY

from agora.config import Settings
from agora.ratelimit.limiter import RateLimiter
from agora.ratelimit.rates import parse_rate
from agora.redis.access import RedisAccess
from agora.redis.client import create_redis
from agora.resilience import CircuitBreaker
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory
from tests.integration.ratelimit.conftest import Start
from tests.integration.realtime.conftest import TcpProxy
from tests.redis_servers import RedisProcess

FEED = "/api/v1/posts/feed"


def limiter_keys(server: RedisProcess) -> list[bytes]:
    client = redis.Redis(port=server.port)
    try:
        return [k if isinstance(k, bytes) else k.encode() for k in client.keys("agora:rl:*")]
    finally:
        client.close()


def fallbacks_counted() -> float:
    value = REGISTRY.get_sample_value("agora_errors_total", {"type": "ratelimit_fallback"})
    return value or 0.0


async def test_redis_killed_falls_back_locally_and_comes_back(
    start: Start,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
    own_redis: RedisProcess,
) -> None:
    settings = limited_settings(
        redis_url=own_redis.url(), ratelimit_user="5/minute", ratelimit_fallback_s=0.5
    )
    app = await start(create_app(settings, key_resolver=tokens.resolver))
    limiter: RateLimiter = app.app.runtime.infra.limiter
    client = app.client()
    headers = {"Authorization": f"Bearer {tokens(make_user())}"}
    for _ in range(2):
        assert (await client.get(FEED, headers=headers)).status_code == 200
    assert limiter.using_redis
    assert limiter_keys(own_redis)
    counted = fallbacks_counted()

    own_redis.kill()
    started = time.monotonic()
    burst = await asyncio.gather(*(client.get(FEED, headers=headers) for _ in range(10)))
    elapsed = time.monotonic() - started
    # Same limit, now counted in this process: 5 of the 10 pass; nothing failed, nothing hung.
    assert sorted(r.status_code for r in burst) == [200] * 5 + [429] * 5
    assert elapsed < 3.0, elapsed  # generous: the wait is one 0.1 s timeout, on a busy CPU
    assert not limiter.using_redis
    assert limiter.fallbacks == 1
    assert fallbacks_counted() == counted + 1
    # While Redis stays down, requests do not wait for it at all.
    started = time.monotonic()
    assert (await client.get(FEED, headers=headers)).status_code == 429
    assert time.monotonic() - started < 1.0

    own_redis.start()
    await asyncio.sleep(0.6)  # the back-off before Redis is tried again
    response = await client.get(FEED, headers=headers)
    assert response.status_code == 200  # a fresh Redis: counting starts again there
    assert response.headers["x-ratelimit-remaining"] == "4"
    assert limiter.using_redis
    assert limiter_keys(own_redis)
    assert limiter.fallbacks == 1


@pytest.fixture
async def frozen_redis(settings: Settings) -> AsyncIterator[TcpProxy]:
    target = urlsplit(settings.require_redis_url())
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def test_a_frozen_redis_costs_one_short_timeout(
    start: Start,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
    frozen_redis: TcpProxy,
) -> None:
    db = urlsplit(limited_settings().require_redis_url()).path
    # With the client's own 5 s socket timeout (and its retries) the wait would be 15 s and
    # more; the limiter's own bound is 0.1 s.
    settings = limited_settings(
        redis_url=f"redis://127.0.0.1:{frozen_redis.port}{db}", redis_socket_timeout_s=5.0
    )
    app = await start(create_app(settings, key_resolver=tokens.resolver))
    limiter: RateLimiter = app.app.runtime.infra.limiter
    client = app.client()
    headers = {"Authorization": f"Bearer {tokens(make_user())}"}
    assert (await client.get(FEED, headers=headers)).status_code == 200
    frozen_redis.blackhole()  # connections stay open and answer nothing, ever
    started = time.monotonic()
    response = await client.get(FEED, headers=headers)
    assert response.status_code == 200
    assert time.monotonic() - started < 2.0
    assert limiter.fallbacks == 1
    assert response.headers["x-ratelimit-limit"] == "100"


async def test_a_wait_redis_did_not_cause_does_not_switch_to_the_fallback(
    settings: Settings, frozen_redis: TcpProxy
) -> None:
    """Under overload a reply can sit unread past the limiter's bound while Redis answers
    everyone else: that request is decided in process, the others stay on Redis (a switch
    would add the round trips the limiter's pipeline saves, just when the process is
    busiest)."""
    db = urlsplit(settings.require_redis_url()).path
    redis_client = create_redis(f"redis://127.0.0.1:{frozen_redis.port}{db}", socket_timeout_s=5.0)
    access = RedisAccess(redis_client, CircuitBreaker("redis"), ratelimit_timeout_s=0.3)
    limiter = RateLimiter(access, fallback_s=30.0)
    rate, key = parse_rate("100/minute"), f"test:{uuid.uuid4()}"
    try:
        assert (await limiter.hit(key, rate)).allowed  # one pooled connection
        frozen_redis.blackhole()  # ... which now carries nothing
        stuck = asyncio.create_task(limiter.hit(key, rate))  # takes that connection
        await asyncio.sleep(0.05)
        assert (await limiter.hit(key, rate)).allowed  # a new connection: Redis answers
        assert (await stuck).allowed  # timed out, decided in process
        assert limiter.using_redis
        assert limiter.fallbacks == 0
        # (A wait with no answer to anyone: test_a_frozen_redis_costs_one_short_timeout.)
    finally:
        await redis_client.aclose()
