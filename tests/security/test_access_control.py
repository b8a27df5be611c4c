"""Access control: no one reads or changes another user's data, deletes another's post, or
acts with a token of a deleted account (on any service, at once, Redis or not)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import orjson
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agora.config import Settings
from agora.resilience import BreakerState
from agora.services.auth.app import create_app as create_auth
from agora.services.posts.app import create_app as create_posts
from tests.conftest import free_port
from tests.integration.auth.conftest import PASSWORD
from tests.security.conftest import PROTECTED, Account, System

ME = "/api/v1/auth/me"


async def test_a_post_is_deleted_only_by_its_author(system: System) -> None:
    alice, mallory = await system.account("alice"), await system.account("mallory")
    created = await system.posts.post(
        "/api/v1/posts", json={"content": "mine"}, headers=alice.headers
    )
    post_id = created.json()["id"]
    response = await system.posts.delete(f"/api/v1/posts/{post_id}", headers=mallory.headers)
    assert response.status_code == 403
    still = await system.posts.get(f"/api/v1/posts/{post_id}", headers=alice.headers)
    assert still.status_code == 200


async def test_notifications_and_profiles_are_only_the_owners(system: System) -> None:
    alice = await system.account("alice")
    bob = await system.account("bob")
    mallory = await system.account("mallory")
    followed = await system.posts.put(f"/api/v1/posts/follows/{alice.user_id}", headers=bob.headers)
    assert followed.status_code == 200
    own = await system.posts.get("/api/v1/posts/notifications", headers=alice.headers)
    assert [n["actor_id"] for n in own.json()["items"]] == [bob.user_id]
    foreign = await system.posts.get("/api/v1/posts/notifications", headers=mallory.headers)
    assert foreign.json()["items"] == []
    # No route addresses another user's profile for writing.
    for method in ("PATCH", "DELETE", "PUT"):
        response = await system.auth.client.request(
            method,
            f"/api/v1/auth/users/{alice.user_id}",
            json={"bio": "pwned", "password": PASSWORD},
            headers=mallory.headers,
        )
        assert response.status_code == 405, method
    assert (await system.auth.client.get(ME, headers=alice.headers)).json()["bio"] == ""


async def _delete(system: System, account: Account, password: str = PASSWORD) -> httpx.Response:
    return await system.auth.client.request(
        "DELETE", ME, json={"password": password}, headers=account.headers
    )


async def test_deleting_an_account_needs_its_password(system: System) -> None:
    alice = await system.account("alice")
    assert (
        await system.auth.client.request("DELETE", ME, json={"password": PASSWORD})
    ).status_code == 401
    wrong = await _delete(system, alice, "not the password")
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert await system.auth.count("users") == 1


async def test_a_deleted_accounts_tokens_are_refused_at_once_everywhere(system: System) -> None:
    alice = await system.account("alice")
    bob = await system.account("bob")
    for service, client in system.clients().items():
        before = await client.get(PROTECTED[service], headers=alice.headers)
        assert before.status_code == 200, service  # cached as verified by every service

    response = await _delete(system, alice)
    assert response.status_code == 204
    assert await system.auth.count("users") == 1

    for service, client in system.clients().items():
        after = await client.get(PROTECTED[service], headers=alice.headers)
        assert after.status_code == 401, service
        assert (await client.get(PROTECTED[service], headers=bob.headers)).status_code == 200
    with pytest.raises(InvalidStatus):
        async with connect(
            system.realtime.ws_url, additional_headers=alice.headers, open_timeout=5
        ):
            pytest.fail("a deleted account opened a socket")
    refreshed = await system.auth.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": alice.refresh_token}
    )
    assert refreshed.status_code == 401
    login = await system.auth.client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert login.status_code == 401


async def test_a_deleted_accounts_open_sockets_are_closed(system: System) -> None:
    alice = await system.account("alice")
    bob = await system.account("bob")
    url = system.realtime.ws_url
    async with (
        connect(url, additional_headers=alice.headers, open_timeout=5) as alice_ws,
        connect(url, additional_headers=bob.headers, open_timeout=5) as bob_ws,
    ):
        for ws in (alice_ws, bob_ws):  # both sessions are running (and registered)
            await ws.send('{"type": "ping"}')
            assert orjson.loads(await ws.recv())["type"] == "pong"

        assert (await _delete(system, alice)).status_code == 204
        async with asyncio.timeout(5):
            with pytest.raises(ConnectionClosed) as closed:
                await alice_ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "account deleted")
        await bob_ws.send('{"type": "ping"}')  # everyone else's socket stays open
        assert orjson.loads(await bob_ws.recv())["type"] == "pong"


async def test_without_redis_a_deleted_account_is_refused_from_the_database(
    system: System,
    settings: Settings,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
) -> None:
    alice = await system.account("alice")
    bob = await system.account("bob")
    assert (await _delete(system, alice)).status_code == 204
    # A posts instance whose Redis is gone: nothing listens on this port.
    no_redis = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_posts(no_redis, key_resolver=system.auth.keystore)
    posts = await app_client(app)

    refused = await posts.get(f"/api/v1/posts/users/{bob.user_id}", headers=alice.headers)
    allowed = await posts.get(f"/api/v1/posts/users/{bob.user_id}", headers=bob.headers)
    assert refused.status_code == 401
    assert allowed.status_code == 200
    # Once the redis breaker opens, the check goes straight to PostgreSQL, still refusing.
    for _ in range(settings.breaker_failure_threshold):
        await posts.get(f"/api/v1/posts/users/{bob.user_id}", headers=bob.headers)
    assert app.runtime.infra.breakers.redis.state is BreakerState.OPEN
    refused = await posts.get(f"/api/v1/posts/users/{bob.user_id}", headers=alice.headers)
    assert refused.status_code == 401


async def test_deletion_is_refused_whole_when_it_cannot_be_announced(
    system: System,
    settings: Settings,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
) -> None:

    alice = await system.account("alice")
    no_redis = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    auth = await app_client(create_auth(no_redis))
    response = await auth.request("DELETE", ME, json={"password": PASSWORD}, headers=alice.headers)
    assert response.status_code == 503
    assert await system.auth.count("users") == 1  # no partial write
    assert (await system.posts.get(PROTECTED["posts"], headers=alice.headers)).status_code == 200
