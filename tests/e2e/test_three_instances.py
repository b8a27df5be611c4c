"""Three instances of every service, all stateless: any instance serves any user, events reach a
user whichever realtime instance holds their socket, presence agrees everywhere, and losing an
instance outright costs its users only a reconnect."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.conftest import Cluster, ServiceProcess
from tests.e2e.test_realtime import PASSWORD, assert_nothing_queued, bearer, presence, receive

pytestmark = pytest.mark.e2e

# Small pools: nine processes share the machine's PostgreSQL with everything else.
ENV = {
    "AGORA_DB_POOL_MAX_SIZE": "3",
    "AGORA_PRESENCE_TTL_S": "5",
    "AGORA_WS_HEARTBEAT_S": "1",
}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


async def open_ws(instance: ServiceProcess, token: str) -> ClientConnection:
    ws = await connect(f"{instance.ws_url}/ws", additional_headers=bearer(token), open_timeout=5)
    await assert_nothing_queued(ws)  # subscribed and registered before the test goes on
    return ws


async def eventually_offline(realtime: ServiceProcess, user_id: str, token: str) -> None:
    async with asyncio.timeout(20):
        while True:
            if not await presence(realtime, user_id, token):
                return
            await asyncio.sleep(0.2)


async def test_three_instances_of_each_service_behave_as_one(  # noqa: C901, PLR0915  # one story, step by step: its order is the assertion
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    auths = cluster.start_many("auth", 3, extra_env=ENV)
    # Each posts/realtime instance trusts the JWKS of a different auth instance.
    posts = [
        cluster.start("posts", extra_env={**ENV, "AGORA_AUTH_JWKS_URL": jwks(a)}) for a in auths
    ]
    realtimes = [
        cluster.start("realtime", extra_env={**ENV, "AGORA_AUTH_JWKS_URL": jwks(a)}) for a in auths
    ]

    # Accounts and sessions are shared: register on one auth instance, log in on another,
    # rotate the refresh token on a third, and a reuse is caught by any of them.
    users: dict[str, tuple[str, str]] = {}
    for i, name in enumerate(("alice", "bob", "carol")):
        registered = await http.post(
            f"{auths[i].url}/api/v1/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        login = await http.post(
            f"{auths[(i + 1) % 3].url}/api/v1/auth/login",
            json={"username": name, "password": PASSWORD},
        )
        assert login.status_code == 200, login.text
        users[name] = (registered.json()["id"], login.json()["access_token"])
        refresh = login.json()["refresh_token"]
        rotated = await http.post(
            f"{auths[(i + 2) % 3].url}/api/v1/auth/refresh", json={"refresh_token": refresh}
        )
        assert rotated.status_code == 200, rotated.text
        reused = await http.post(
            f"{auths[i].url}/api/v1/auth/refresh", json={"refresh_token": refresh}
        )
        assert reused.status_code == 401
        # The reuse ended that login's session everywhere (its access token too): log in again.
        relogin = await http.post(
            f"{auths[(i + 1) % 3].url}/api/v1/auth/login",
            json={"username": name, "password": PASSWORD},
        )
        assert relogin.status_code == 200, relogin.text
        users[name] = (registered.json()["id"], relogin.json()["access_token"])
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = users.values()

    # A token from any auth instance works on every posts instance.
    for i, follower_token in ((0, bob_token), (1, carol_token)):
        followed = await http.put(
            f"{posts[i].url}/api/v1/posts/follows/{alice}", headers=bearer(follower_token)
        )
        assert followed.status_code == 200, followed.text

    alice_ws = await open_ws(realtimes[0], alice_token)
    bob_ws = await open_ws(realtimes[1], bob_token)
    carol_ws = await open_ws(realtimes[2], carol_token)
    try:
        # Presence agrees on every instance, whichever one holds the socket.
        for realtime in realtimes:
            for user in (alice, bob, carol):
                assert await presence(realtime, user, alice_token) is True

        created = await http.post(
            f"{posts[2].url}/api/v1/posts", json={"content": "to all"}, headers=bearer(alice_token)
        )
        assert created.status_code == 201, created.text
        post_id = created.json()["id"]
        for ws in (bob_ws, carol_ws):
            assert (await receive(ws, of_type="post.created"))["post"]["id"] == post_id
        await assert_nothing_queued(alice_ws)

        for i, liker_token in ((0, bob_token), (1, carol_token)):
            liked = await http.put(
                f"{posts[i].url}/api/v1/posts/{post_id}/like", headers=bearer(liker_token)
            )
            assert liked.status_code == 200, liked.text
            notified = await receive(alice_ws, of_type="notification")
            assert notified["notification"]["post_id"] == post_id
        for instance in posts:
            feed = await http.get(f"{instance.url}/api/v1/posts/feed", headers=bearer(bob_token))
            assert [item["id"] for item in feed.json()["items"]] == [post_id]
            assert feed.json()["items"][0]["like_count"] == 2

        # realtime #3 is lost outright (no drain): carol's presence ages out everywhere,
        # and once she reconnects to another instance she is online and reachable again.
        realtimes[2].process.send_signal(signal.SIGKILL)
        realtimes[2].process.wait(timeout=10)
        await eventually_offline(realtimes[0], carol, alice_token)
        assert await presence(realtimes[1], carol, alice_token) is False
        assert await presence(realtimes[1], bob, alice_token) is True
        await carol_ws.close()
        carol_ws = await open_ws(realtimes[1], carol_token)
        assert await presence(realtimes[0], carol, alice_token) is True
        again = await http.post(
            f"{posts[0].url}/api/v1/posts", json={"content": "again"}, headers=bearer(alice_token)
        )
        assert again.status_code == 201
        for ws in (bob_ws, carol_ws):
            assert (await receive(ws, of_type="post.created"))["post"]["id"] == again.json()["id"]
    finally:
        for ws in (alice_ws, bob_ws, carol_ws):
            await ws.close()
    for realtime in realtimes[:2]:
        # Alice's own presence: bob may not see it (she does not follow him).
        await eventually_offline(realtime, alice, alice_token)


def jwks(auth: ServiceProcess) -> str:
    return f"{auth.url}/api/v1/auth/.well-known/jwks.json"
