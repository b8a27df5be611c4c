"""``RedisAccess.send_all`` on real redis-servers of the test's own: the lean batch keeps its
connection between calls (no pool checkout), gives redis-py's pipeline every call it cannot
finish itself (a dead connection, a former master's ``READONLY``), and never keeps a
connection that may still carry replies or hands one back without its socket timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ReadOnlyError, ResponseError

from agora.redis import uses
from agora.redis.access import RedisAccess
from agora.redis.batch import Batches
from agora.redis.client import create_redis
from agora.resilience import CircuitBreaker
from tests.redis_servers import RedisProcess, redis_server


def _access(port: int, *, max_connections: int = 200) -> RedisAccess:
    client = create_redis(
        f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.5, max_connections=max_connections
    )
    return RedisAccess(client, CircuitBreaker("redis"))


@pytest.fixture
async def access(own_redis: RedisProcess) -> AsyncIterator[RedisAccess]:
    access = _access(own_redis.port)
    yield access
    await access.aclose()


def _batches(access: RedisAccess) -> Batches:
    batches: Batches = access._batches  # the kept connections are the subject
    return batches


def _kept(access: RedisAccess) -> list[AbstractConnection]:
    kept: list[AbstractConnection] = _batches(access)._idle
    return kept


def _count_checkouts(access: RedisAccess, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    pool = access.client.connection_pool
    real = pool.get_connection
    checkouts: list[Any] = []

    async def counting(*args: Any, **kwargs: Any) -> Any:
        checkouts.append(args)
        return await real(*args, **kwargs)  # type: ignore[no-untyped-call]  # redis-py: untyped

    monkeypatch.setattr(pool, "get_connection", counting)
    return checkouts


async def test_replies_in_order_with_error_replies_in_place(access: RedisAccess) -> None:
    replies = await access.send_all(
        uses.RATE_LIMIT,
        [("SET", "k", "v"), ("INCR", "k"), ("GET", "k"), ("EXISTS", "k", "missing")],
    )
    assert replies[0] is True or replies[0] == b"OK"
    assert isinstance(replies[1], ResponseError)  # not an integer: an error reply, in place
    assert replies[2:] == [b"v", 1]


async def test_the_connection_is_kept_between_calls(
    access: RedisAccess, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkouts = _count_checkouts(access, monkeypatch)
    await access.send_all(uses.RATE_LIMIT, [("PING",)])
    await access.send_all(uses.RATE_LIMIT, [("PING",)])
    await access.send_all(uses.RATE_LIMIT, [("PING",)])
    assert len(checkouts) == 1
    assert len(_kept(access)) == 1
    # While kept it has no socket timeout (redis-py would run each write in a task of its own).
    assert _kept(access)[0].socket_timeout is None


async def test_a_dead_kept_connection_is_dropped_and_the_pipeline_answers(
    access: RedisAccess, own_redis: RedisProcess
) -> None:
    await access.send_all(uses.RATE_LIMIT, [("SET", "k", "v")])
    (kept,) = _kept(access)
    # The server ends that connection (as a restart or an idle timeout would).
    with redis.Redis(port=own_redis.port) as admin:
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert await access.send_all(uses.RATE_LIMIT, [("GET", "k")]) == [b"v"]
    assert kept not in _kept(access)
    assert kept.socket_timeout == 0.5  # handed back to the pool with its timeout


async def test_connections_beyond_the_bound_go_back_to_the_pool(own_redis: RedisProcess) -> None:
    access = _access(own_redis.port, max_connections=4)  # keeps at most half: 2
    try:
        pool = access.client.connection_pool
        held = [await _batches(access)._checkout() for _ in range(3)]
        for connection in held:
            await _batches(access)._keep_or_give_back(connection)
        assert len(_kept(access)) == 2
        (returned,) = pool._available_connections
        assert returned.socket_timeout == 0.5
    finally:
        await access.aclose()


async def test_a_former_master_is_left_to_the_pipeline(tmp_path: Path) -> None:
    primary = redis_server(tmp_path / "primary")
    replica = redis_server(tmp_path / "replica")
    try:
        with redis.Redis(port=replica.port) as admin:
            admin.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        access = _access(replica.port)
        try:
            replies = await access.send_all(uses.RATE_LIMIT, [("SET", "k", "v")])
            assert isinstance(replies[0], ReadOnlyError)
            assert _kept(access) == []  # the lean send gave up on that connection
        finally:
            await access.aclose()
    finally:
        replica.kill()
        primary.kill()
