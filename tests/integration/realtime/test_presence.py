"""Presence across instances in Redis: online while connected, aging out after a crash."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import psycopg
from redis.asyncio import Redis

from agora.config import Settings
from agora.redis.access import RedisAccess
from agora.resilience import CircuitBreaker
from agora.services.realtime.app import create_app
from agora.services.realtime.presence import Presence, presence_key
from tests.conftest import TokenFactory, free_port
from tests.integration.realtime.conftest import (
    RunningServer,
    Serve,
    TcpProxy,
    assert_nothing_queued,
    eventually,
    open_socket,
)


async def presence_of(server: RunningServer, user_id: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        return await client.get(
            f"/api/v1/realtime/presence/{user_id}", headers={"Authorization": f"Bearer {token}"}
        )


async def is_online(server: RunningServer, user_id: str, token: str) -> bool:
    response = await presence_of(server, user_id, token)
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == user_id
    online: bool = response.json()["online"]
    return online


async def eventually_offline(server: RunningServer, user_id: str, token: str) -> None:
    async def offline() -> bool:
        return not await is_online(server, user_id, token)

    await eventually(offline)


async def test_presence_requires_a_token_and_a_user_id(
    realtime: RunningServer, tokens: TokenFactory, make_user: Callable[..., str]
) -> None:
    user_id = make_user()
    async with httpx.AsyncClient(base_url=realtime.url) as client:
        anonymous = await client.get(f"/api/v1/realtime/presence/{user_id}")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    bad = await presence_of(realtime, user_id, "not-a-token")
    assert bad.status_code == 401
    missing = await presence_of(realtime, "not-a-uuid", tokens(user_id))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert await is_online(realtime, user_id, tokens(user_id)) is False


async def test_online_while_connected_offline_after_the_last_socket_closes(
    realtime: RunningServer,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    follow: Callable[[str, str], None],
) -> None:
    alice, bob = make_user(), make_user()
    follow(bob, alice)  # bob lets alice see him
    asker = tokens(alice)
    async with open_socket(realtime, tokens(bob)) as tab1:
        assert await is_online(realtime, bob, asker)
        async with open_socket(realtime, tokens(bob)) as tab2:
            await assert_nothing_queued(tab2)
            assert await is_online(realtime, bob, asker)
        # One tab closed, one still open: still online.
        await asyncio.sleep(0.1)
        assert await is_online(realtime, bob, asker)
        await assert_nothing_queued(tab1)
    await eventually_offline(realtime, bob, asker)
    assert await is_online(realtime, alice, asker) is False


async def test_presence_is_shared_between_instances(
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    serve: Serve,
    follow: Callable[[str, str], None],
) -> None:
    first = await serve(create_app(settings, key_resolver=tokens.resolver))
    second = await serve(create_app(settings, key_resolver=tokens.resolver))
    bob, carol = make_user(), make_user()
    follow(bob, carol)
    asker = tokens(carol)
    async with open_socket(second, tokens(bob)):
        assert await is_online(first, bob, asker)
    await eventually_offline(first, bob, asker)


async def test_entries_of_a_crashed_instance_age_out(
    realtime: RunningServer,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    redis_client: Redis,
    follow: Callable[[str, str], None],
) -> None:
    bob, carol = make_user(), make_user()
    follow(bob, carol)
    asker = tokens(carol)
    key = presence_key(bob)
    # An instance that died without cleaning up: its field outlives its expiry.
    await redis_client.hset(key, "crashed-instance:c1", int(time.time()) - 1)
    assert await is_online(realtime, bob, asker) is False
    assert not await redis_client.hexists(key, "crashed-instance:c1")  # pruned on read
    # Still within its expiry, the other instance's socket counts (presence is global).
    await redis_client.hset(key, "other-instance:c2", int(time.time()) + 30)
    assert await is_online(realtime, bob, asker) is True
    # A live local socket keeps bob online though a stale entry is present.
    await redis_client.hset(key, "other-instance:c2", int(time.time()) - 5)
    async with open_socket(realtime, tokens(bob)):
        assert await is_online(realtime, bob, asker) is True


async def test_connect_sets_a_ttl_and_the_heartbeat_rewrites_lost_entries(
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    serve: Serve,
    redis_client: Redis,
) -> None:
    fast = settings.model_copy(update={"ws_heartbeat_s": 0.05, "presence_ttl_s": 30})
    server = await serve(create_app(fast, key_resolver=tokens.resolver))
    bob = make_user()
    key = presence_key(bob)
    async with open_socket(server, tokens(bob)) as ws:
        await assert_nothing_queued(ws)
        assert 0 < await redis_client.ttl(key) <= 30
        fields = await redis_client.hgetall(key)
        assert len(fields) == 1
        (expiry,) = fields.values()
        assert time.time() + 25 < int(expiry) <= time.time() + 31
        await redis_client.delete(key)  # e.g. Redis restarted empty

        async def rewritten() -> bool:
            return bool(await redis_client.exists(key))

        await eventually(rewritten)
        assert await redis_client.ttl(key) > 0


async def test_a_redis_outage_breaks_presence_queries_but_not_sockets(
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    serve: Serve,
    proxy: TcpProxy,
    follow: Callable[[str, str], None],
) -> None:
    direct = urlsplit(settings.require_redis_url())
    via_proxy = direct._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    behind_proxy = settings.model_copy(update={"redis_url": via_proxy})
    server = await serve(create_app(behind_proxy, key_resolver=tokens.resolver))
    bob, carol = make_user(), make_user()
    follow(bob, carol)
    asker = tokens(carol)
    await proxy.stop()  # Redis is gone
    async with open_socket(server, tokens(bob)) as ws:
        await assert_nothing_queued(ws)
        response = await presence_of(server, bob, asker)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        await assert_nothing_queued(ws)
    await proxy.start()
    async with open_socket(server, tokens(bob)) as ws:
        await assert_nothing_queued(ws)
        assert await is_online(server, bob, asker)


async def test_presence_writes_never_raise_when_redis_is_unreachable() -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    presence = Presence(RedisAccess(dead, CircuitBreaker("redis")), instance_id="i", ttl_s=30)
    await presence.connected("u", "c")
    await presence.disconnected("u", "c")
    await dead.aclose()


async def test_presence_is_visible_only_to_the_user_and_those_the_user_follows(
    realtime: RunningServer,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    follow: Callable[[str, str], None],
    database_url: str,
) -> None:
    bob, friend, fan, stranger = make_user(), make_user(), make_user(), make_user()
    follow(bob, friend)  # bob chose to follow friend
    follow(fan, bob)  # fan follows bob, who does not follow back
    async with open_socket(realtime, tokens(bob)) as ws:
        await assert_nothing_queued(ws)
        assert await is_online(realtime, bob, tokens(bob)) is True  # oneself
        assert await is_online(realtime, bob, tokens(friend)) is True
        for outsider in (stranger, fan):  # following someone does not let you watch them
            hidden = await presence_of(realtime, bob, tokens(outsider))
            assert hidden.status_code == 404
            # The same answer as for an id that names no one: nothing is confirmed.
            nobody = await presence_of(realtime, str(uuid.uuid4()), tokens(outsider))
            assert (hidden.json()["error"]["code"], hidden.json()["error"]["message"]) == (
                nobody.json()["error"]["code"],
                nobody.json()["error"]["message"],
            )
        with psycopg.connect(database_url, autocommit=True) as conn:  # bob unfollows friend
            conn.execute(
                "DELETE FROM follows WHERE follower_id = %s AND followee_id = %s", (bob, friend)
            )
        assert (await presence_of(realtime, bob, tokens(friend))).status_code == 404
