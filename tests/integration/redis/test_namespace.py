"""Every key Agora writes is in its namespace: a flow through auth, posts and realtime on a
redis-server of this test's own, every key touched recorded by keyspace notifications (so
short-lived ones such as rate-limit state count too), and Redis scanned at the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from agora.config import Settings
from agora.observability.activity import active_users
from agora.ratelimit.rates import Rate
from agora.redis import keys
from agora.redis.access import RedisAccess
from agora.runtime import ServiceApp
from tests.integration.auth.conftest import (
    PASSWORD,
    auth,  # noqa: F401
)
from tests.integration.realtime.conftest import (
    open_socket,
    serve,  # noqa: F401
)
from tests.redis_servers import RedisProcess, redis_server
from tests.security.conftest import System, system  # noqa: F401

pytestmark = pytest.mark.usefixtures("system")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    # K: keyspace events, A: every command class (strings, hashes, expiries, ...).
    server = redis_server(tmp_path / "redis", "--notify-keyspace-events", "KA")
    yield server
    server.kill()


@pytest.fixture
def settings(settings: Settings, own_redis: RedisProcess) -> Settings:
    # Real limits (well out of this flow's reach) so rate-limit state lives long enough to
    # be scanned as well as seen.
    return settings.model_copy(
        update={"redis_url": own_redis.url(), "ratelimit_user": Rate(1000, 60)}
    )


@pytest.fixture
async def touched(own_redis: RedisProcess) -> AsyncIterator[set[str]]:
    """The name of every key a command touched while the test ran."""
    seen: set[str] = set()
    client = Redis.from_url(own_redis.url())
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe("__keyspace@0__:*")

    async def collect() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None:
                seen.add(message["channel"].decode().split(":", 1)[1])

    task = asyncio.create_task(collect())
    yield seen
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()


def family(key: str) -> str | None:
    return next((name for name, prefix in keys.FAMILIES.items() if key.startswith(prefix)), None)


async def test_a_flow_through_every_service_writes_only_namespaced_keys(
    system: System,  # noqa: F811
    own_redis: RedisProcess,
    touched: set[str],
) -> None:
    alice = await system.account("alice")
    bob = await system.account("bob")
    auth_client, posts = system.auth.client, system.posts
    # login backoff (a wrong password), session facts (a refresh), profile cache
    wrong = await auth_client.post(
        "/api/v1/auth/login", json={"username": "bob", "password": "wrong password!"}
    )
    assert wrong.status_code == 401
    refreshed = await auth_client.post(
        "/api/v1/auth/refresh", json={"refresh_token": bob.refresh_token}
    )
    assert refreshed.status_code == 200
    auth_client.cookies.clear()
    assert (await auth_client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200
    profile = await auth_client.get(f"/api/v1/auth/users/{bob.user_id}", headers=alice.headers)
    assert profile.status_code == 200
    # posts: a post, a follow, a like (stamps, events), reads through the cache
    created = await posts.post("/api/v1/posts", json={"content": "hello"}, headers=alice.headers)
    assert created.status_code == 201
    post_id = created.json()["id"]
    follow = await posts.put(f"/api/v1/posts/follows/{alice.user_id}", headers=bob.headers)
    assert follow.status_code == 200
    assert (await posts.put(f"/api/v1/posts/{post_id}/like", headers=bob.headers)).is_success
    for _ in range(2):
        assert (await posts.get("/api/v1/posts/feed", headers=bob.headers)).status_code == 200
        assert (await posts.get(f"/api/v1/posts/{post_id}", headers=bob.headers)).is_success
    # realtime: presence while bob's socket is open
    async with open_socket(system.realtime, bob.access_token):
        response = await system.realtime_http.get(
            f"/api/v1/realtime/presence/{bob.user_id}", headers=alice.headers
        )
        assert response.json()["online"] is True
    app = system.realtime.app
    assert isinstance(app, ServiceApp)
    infra = app.runtime.infra
    access: RedisAccess = infra.redis
    # The flusher runs every 10 s and read-your-writes marks need replicas: done by hand,
    # through the same objects a process uses.
    await active_users.flush(access)
    await infra.db.writers.mark(alice.user_id)
    # account deletion (the deleted-user mark), then a logout of a real session
    deleted = await auth_client.request(
        "DELETE", "/api/v1/auth/me", json={"password": PASSWORD}, headers=bob.headers
    )
    assert deleted.status_code == 204
    logout = await auth_client.post(
        "/api/v1/auth/logout", json={"refresh_token": alice.refresh_token}
    )
    assert logout.status_code == 204
    await asyncio.sleep(0.5)  # the last notifications on their way

    client = Redis.from_url(own_redis.url())
    try:
        remaining = {key.decode() async for key in client.scan_iter("*")}
    finally:
        await client.aclose()
    everything = touched | remaining
    outside = sorted(key for key in everything if not key.startswith(keys.NAMESPACE))
    assert not outside, outside
    unknown = sorted(key for key in everything if family(key) is None)
    assert not unknown, unknown
    # Not vacuous: every family was written by this flow (but the game day's probe, which
    # only `agora gameday` writes, to a Redis of its own).
    assert {family(key) for key in everything} == set(keys.FAMILIES) - {"gameday"}, everything
