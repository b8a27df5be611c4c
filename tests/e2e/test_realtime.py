"""The full push flow through real processes: auth, posts and two realtime instances.

alice and bob sit on different realtime instances; events cross between them through Redis,
and presence is answered by an instance the user is not connected to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Cluster, ServiceProcess

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


async def register_and_login(auth: httpx.AsyncClient, username: str) -> tuple[str, str]:
    """Returns ``(user_id, access_token)``."""
    registered = await auth.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    login = await auth.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return str(registered.json()["id"]), str(login.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def receive(ws: ClientConnection, *, of_type: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            message: dict[str, Any] = orjson.loads(await ws.recv())
            if message["type"] == of_type:
                return message


async def assert_nothing_queued(ws: ClientConnection) -> None:
    """Anything queued for this socket would arrive before the pong (one FIFO per socket)."""
    await ws.send('{"type": "ping"}')
    async with asyncio.timeout(10):
        assert orjson.loads(await ws.recv()) == {"type": "pong"}


async def presence(realtime: ServiceProcess, user_id: str, token: str) -> bool:
    async with httpx.AsyncClient(base_url=realtime.url, timeout=5) as client:
        response = await client.get(f"/api/v1/realtime/presence/{user_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    online: bool = response.json()["online"]
    return online


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_post_like_and_presence_across_two_realtime_instances(  # noqa: PLR0915  # one story, step by step: its order is the assertion
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    auth = cluster.start("auth")
    posts = cluster.start("posts")
    realtime_1 = cluster.start("realtime")
    realtime_2 = cluster.start("realtime")
    auth_client = httpx.AsyncClient(base_url=auth.url, timeout=10)
    posts_url = f"{posts.url}/api/v1/posts"
    try:
        alice_id, alice_token = await register_and_login(auth_client, "alice")
        bob_id, bob_token = await register_and_login(auth_client, "bob")
    finally:
        await auth_client.aclose()

    followed = await http.put(f"{posts_url}/follows/{alice_id}", headers=bearer(bob_token))
    assert followed.status_code == 200, followed.text

    # A refused token never gets a socket, on either instance.
    for instance in (realtime_1, realtime_2):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{instance.ws_url}/ws?access_token=nope", open_timeout=5):
                pytest.fail("the socket opened")
        assert refused.value.response.status_code == 403

    async with (
        connect(
            f"{realtime_1.ws_url}/ws", additional_headers=bearer(alice_token), open_timeout=5
        ) as alice_ws,
        connect(f"{realtime_2.ws_url}/ws?access_token={bob_token}", open_timeout=5) as bob_ws,
    ):
        await assert_nothing_queued(alice_ws)
        await assert_nothing_queued(bob_ws)
        assert await presence(realtime_1, bob_id, alice_token) is True

        # alice posts (posts service) -> bob, on the other realtime instance, is told.
        created = await http.post(
            posts_url, json={"content": "hello from alice"}, headers=bearer(alice_token)
        )
        assert created.status_code == 201, created.text
        post_id = created.json()["id"]
        pushed = await receive(bob_ws, of_type="post.created")
        assert pushed["post"]["id"] == post_id
        assert pushed["post"]["content"] == "hello from alice"
        assert pushed["post"]["author_id"] == alice_id
        await assert_nothing_queued(alice_ws)  # the author is not notified of her own post

        feed = await http.get(f"{posts_url}/feed", headers=bearer(bob_token))
        assert feed.status_code == 200, feed.text
        assert post_id in [item["id"] for item in feed.json()["items"]]

        # bob likes it -> alice, on instance #1, gets a notification.
        liked = await http.put(f"{posts_url}/{post_id}/like", headers=bearer(bob_token))
        assert liked.status_code == 200, liked.text
        notified = await receive(alice_ws, of_type="notification")
        notification = notified["notification"]
        assert notification["kind"] == "like"
        assert notification["actor_id"] == bob_id
        assert notification["post_id"] == post_id

        listed = await http.get(f"{posts_url}/notifications", headers=bearer(alice_token))
        assert listed.status_code == 200, listed.text
        assert notification["id"] in [item["id"] for item in listed.json()["items"]]

    # bob left: offline everywhere (the server notices the close asynchronously).
    async with asyncio.timeout(10):
        while True:
            if not await presence(realtime_1, bob_id, alice_token):
                break
            await asyncio.sleep(0.05)
    assert await presence(realtime_2, bob_id, alice_token) is False

    for instance in (realtime_1, realtime_2):
        logs = instance.logs()
        assert "Traceback" not in logs
        # uvicorn logs each handshake with its query string; the token is redacted there.
        assert bob_token not in logs
    assert "access_token=[REDACTED]" in realtime_2.logs()
