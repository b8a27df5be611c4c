"""Redis Sentinel: master + replica + three sentinels started here; the master is killed and
the posts service's cache works again, on the promoted replica, within 15 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI

from agora.config import Settings
from agora.observability.metrics import CACHE_REQUESTS
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory
from tests.redis_servers import RedisProcess, redis_server, sentinel


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[tuple[RedisProcess, RedisProcess, str]]:
    master = redis_server(tmp_path / "master")
    replica = redis_server(tmp_path / "replica", "--replicaof", "127.0.0.1", str(master.port))
    sentinels: list[RedisProcess] = []
    try:
        sentinels = [sentinel(tmp_path / f"sentinel{i}", master.port) for i in range(3)]
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
        yield master, replica, f"redis+sentinel://{hosts}/agora/0"
    finally:
        for process in (*sentinels, replica, master):
            process.kill()


def hits() -> float:
    return float(CACHE_REQUESTS.labels(cache="post", result="hit")._value.get())


async def test_the_cache_follows_a_sentinel_failover(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    make_user: Callable[[], str],
    sentinel_group: tuple[RedisProcess, RedisProcess, str],
) -> None:
    master, replica, url = sentinel_group
    # With Sentinel the breaker's open period must be shorter than the failover objective.
    configured = settings.model_copy(
        update={"redis_url": url, "breaker_open_s": 3.0, "redis_socket_timeout_s": 0.25}
    )
    client = await app_client(create_app(configured, key_resolver=tokens.resolver))
    alice = make_user()
    headers = {"Authorization": f"Bearer {tokens(alice)}"}
    post = (await client.post("/api/v1/posts", json={"content": "hi"}, headers=headers)).json()
    path = f"/api/v1/posts/{post['id']}"
    for _ in range(3):
        assert (await client.get(path, headers=headers)).status_code == 200
    before = hits()
    assert (await client.get(path, headers=headers)).status_code == 200
    assert hits() == before + 1  # served by the master

    master.kill()
    killed = time.monotonic()
    recovered = None
    while time.monotonic() - killed < 20:
        before = hits()
        response = await client.get(path, headers=headers)
        assert response.status_code == 200  # PostgreSQL answers meanwhile
        if hits() > before:
            recovered = time.monotonic() - killed
            break
        await asyncio.sleep(0.1)
    print(f"\ncache working again {recovered} s after the master was killed")  # noqa: T201  # the measured figure is this test's report (pytest -s)
    assert recovered is not None
    assert recovered < 15
    promoted = redis.Redis(port=replica.port)
    assert promoted.info("replication")["role"] == "master"
    promoted.close()
