"""A Redis timeout judges Redis, not the event loop (``RedisAccess._judged_by_redis``): a reply
that arrived while the process itself was not running is read, not thrown away at the
deadline; a Redis that answers nobody is still given up on at the budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from agora.redis import uses
from agora.redis.access import RedisAccess, RedisUnavailable
from agora.redis.client import create_redis
from agora.resilience import CircuitBreaker
from tests.redis_servers import RedisProcess, redis_server

BUDGET_S = 0.05  # the rate-limit use's budget here (production: 0.1 s)
SOCKET_S = 0.5


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = redis_server(tmp_path / "redis")
    yield server
    server.kill()


@pytest.fixture
async def access(own_redis: RedisProcess) -> AsyncIterator[RedisAccess]:
    client = create_redis(
        f"redis://127.0.0.1:{own_redis.port}/0", socket_timeout_s=SOCKET_S, max_connections=20
    )
    access = RedisAccess(
        client, CircuitBreaker("redis"), socket_timeout_s=SOCKET_S, ratelimit_timeout_s=BUDGET_S
    )
    await access.send_all(uses.RATE_LIMIT, [("PING",)])  # a kept connection: no connect below
    yield access
    await access.aclose()


def _process_stalls(seconds: float) -> None:
    """The event loop does not run for ``seconds``: a CPU-starved host, a long GC pause."""
    time.sleep(seconds)


async def test_a_reply_that_came_while_the_loop_was_blocked_is_read(access: RedisAccess) -> None:
    commands = [("SET", "k", "v"), ("GET", "k")]
    call = asyncio.ensure_future(access.send_all(uses.RATE_LIMIT, commands))
    await asyncio.sleep(0)  # the call is sent and waits for its replies
    _process_stalls(4 * BUDGET_S)

    replies = await call

    assert replies[1] in (b"v", "v")


async def test_redis_answering_nobody_is_given_up_on_at_the_budget(
    access: RedisAccess, own_redis: RedisProcess
) -> None:
    pauser = redis.Redis(host="127.0.0.1", port=own_redis.port)
    pauser.client_pause(1000, all=True)  # Redis answers nobody for 1 s
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable) as refused:
            await access.send_all(uses.RATE_LIMIT, [("GET", "k")])
        waited = time.monotonic() - started
    finally:
        pauser.client_unpause()  # never paused itself
    assert isinstance(refused.value.cause, TimeoutError)
    assert BUDGET_S <= waited < 3 * BUDGET_S, f"given up after {waited:.3f} s"


async def test_a_late_loop_is_given_at_most_the_socket_timeout(
    access: RedisAccess, own_redis: RedisProcess
) -> None:
    pauser = redis.Redis(host="127.0.0.1", port=own_redis.port)
    pauser.client_pause(2000, all=True)
    try:
        started = time.monotonic()
        call = asyncio.ensure_future(access.send_all(uses.RATE_LIMIT, [("GET", "k")]))
        await asyncio.sleep(0)
        _process_stalls(2 * BUDGET_S)  # late at the deadline: put off, but Redis is away
        with pytest.raises(RedisUnavailable):
            await call
        waited = time.monotonic() - started
    finally:
        pauser.client_unpause()
    assert 2 * BUDGET_S <= waited < SOCKET_S + 3 * BUDGET_S, f"given up after {waited:.3f} s"
