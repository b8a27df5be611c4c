"""Ending a session ends it everywhere at once: its access tokens on every service and its
open WebSockets on every realtime instance (two real instances on uvicorn, one Redis), and a
socket does not outlive its access token unless it re-authenticates in-band."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agora.config import Settings
from agora.security.jwks import JwksKeyResolver
from agora.services.realtime.app import create_app as create_realtime
from agora.services.realtime.hub import SESSION_ENDED_CLOSE_CODE, TOKEN_EXPIRED_CLOSE_CODE
from tests.conftest import TokenFactory
from tests.integration.auth.conftest import PASSWORD
from tests.integration.realtime.conftest import RunningServer
from tests.security.conftest import JWKS_PATH, PROTECTED, Account, System

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
Serve = Callable[[FastAPI], Awaitable[RunningServer]]


@pytest.fixture
async def second_realtime(system: System, serve: Serve, settings: Settings) -> RunningServer:
    """Another realtime instance on the same Redis, with its own JWKS cache."""
    resolver = JwksKeyResolver(
        f"http://testserver{JWKS_PATH}", client=system.auth.client, refetch_cooldown_s=0.0
    )
    return await serve(create_realtime(settings, key_resolver=resolver))


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[[RunningServer, str], Awaitable[ClientConnection]]]:
    async with AsyncExitStack() as stack:

        async def open_ws(server: RunningServer, token: str) -> ClientConnection:
            ws = await stack.enter_async_context(
                connect(
                    server.ws_url,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=5,
                )
            )
            await _ping(ws)  # registered before the test goes on
            return ws

        yield open_ws


async def _ping(ws: ClientConnection) -> None:
    await ws.send('{"type": "ping"}')
    async with asyncio.timeout(5):
        assert orjson.loads(await ws.recv()) == {"type": "pong"}


async def _closed_with(ws: ClientConnection, timeout_s: float = 3.0) -> tuple[int, str]:
    async with asyncio.timeout(timeout_s):
        with pytest.raises(ConnectionClosed) as closed:  # noqa: PT012 - frames may come first
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None, "the server did not send a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def _second_session(system: System, account: Account) -> Account:
    tokens = await system.auth.login(account.username)
    system.auth.client.cookies.clear()
    return Account(
        account.user_id, account.username, tokens["access_token"], tokens["refresh_token"]
    )


async def _refused_everywhere(system: System, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    for service, client in system.clients().items():
        response = await client.get(PROTECTED[service], headers=headers)
        assert response.status_code == 401, (service, response.text)
        assert response.json()["error"]["code"] == "session_ended", service


async def test_logout_closes_the_sessions_sockets_on_every_instance_and_refuses_its_token(
    system: System, second_realtime: RunningServer, sockets: Any
) -> None:
    alice = await system.account("alice")
    other_tab = await _second_session(system, alice)
    first = await sockets(system.realtime, alice.access_token)
    second = await sockets(second_realtime, alice.access_token)
    unrelated = await sockets(second_realtime, other_tab.access_token)

    logout = await system.auth.client.post(
        "/api/v1/auth/logout", json={"refresh_token": alice.refresh_token}
    )
    assert logout.status_code == 204

    reason = (SESSION_ENDED_CLOSE_CODE, "session ended")
    assert await _closed_with(first) == reason
    assert await _closed_with(second) == reason
    await _ping(unrelated)  # the account's other session goes on
    await _refused_everywhere(system, alice.access_token)
    for server in (system.realtime, second_realtime):
        with pytest.raises(InvalidStatus):
            async with connect(
                server.ws_url,
                additional_headers={"Authorization": f"Bearer {alice.access_token}"},
                open_timeout=5,
            ):
                pytest.fail("a logged-out token opened a socket")
    still = await system.auth.client.get(
        ME, headers={"Authorization": f"Bearer {other_tab.access_token}"}
    )
    assert still.status_code == 200


async def test_refresh_token_reuse_ends_the_session_and_its_sockets_everywhere(
    system: System, second_realtime: RunningServer, sockets: Any
) -> None:
    alice = await system.account("alice")
    rotated = await system.auth.client.post(REFRESH, json={"refresh_token": alice.refresh_token})
    assert rotated.status_code == 200
    fresh_access = rotated.json()["access_token"]
    sockets_of_session = [
        await sockets(system.realtime, fresh_access),
        await sockets(second_realtime, alice.access_token),
    ]

    replay = await system.auth.client.post(REFRESH, json={"refresh_token": alice.refresh_token})
    assert replay.json()["error"]["code"] == "refresh_token_reused"

    for ws in sockets_of_session:
        assert await _closed_with(ws) == (SESSION_ENDED_CLOSE_CODE, "session ended")
    # Both access tokens of the family (before and after the rotation) are dead.
    await _refused_everywhere(system, alice.access_token)
    await _refused_everywhere(system, fresh_access)


async def test_account_deletion_closes_sockets_on_every_instance(
    system: System, second_realtime: RunningServer, sockets: Any
) -> None:
    alice = await system.account("alice")
    open_sockets = [
        await sockets(system.realtime, alice.access_token),
        await sockets(second_realtime, alice.access_token),
    ]
    deleted = await system.auth.client.request(
        "DELETE", ME, json={"password": PASSWORD}, headers=alice.headers
    )
    assert deleted.status_code == 204
    for ws in open_sockets:
        assert await _closed_with(ws) == (1008, "account deleted")


async def test_a_socket_is_closed_when_its_access_token_expires(
    serve: Serve, settings: Settings, tokens: TokenFactory, make_user: Callable[..., str]
) -> None:
    server = await serve(create_realtime(settings, key_resolver=tokens.resolver))
    user_id = make_user()
    # Refused from 1.5 s from now: its expiry plus the verifier's leeway.
    now = time.time() - settings.access_token_ttl_s - settings.jwt_leeway_s + 1.5
    short = tokens(user_id, session_id="00000000-0000-4000-8000-000000000001", now=now)
    async with connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {short}"}, open_timeout=5
    ) as ws:
        await _ping(ws)
        started = time.monotonic()
        assert await _closed_with(ws, timeout_s=5) == (TOKEN_EXPIRED_CLOSE_CODE, "token expired")
        assert time.monotonic() - started < 3


async def test_in_band_reauthentication_keeps_the_socket_past_the_old_expiry(
    serve: Serve, settings: Settings, tokens: TokenFactory, make_user: Callable[..., str]
) -> None:
    server = await serve(create_realtime(settings, key_resolver=tokens.resolver))
    user_id, stranger = make_user(), make_user()
    now = time.time() - settings.access_token_ttl_s - settings.jwt_leeway_s + 1.5
    short = tokens(user_id, now=now)
    async with connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {short}"}, open_timeout=5
    ) as ws:
        # Another user's token is refused; the socket keeps its own deadline.
        await ws.send(orjson.dumps({"type": "auth", "access_token": tokens(stranger)}).decode())
        refused = orjson.loads(await ws.recv())
        assert (refused["type"], refused["code"]) == ("error", "invalid_token")
        await ws.send(orjson.dumps({"type": "auth", "access_token": "not-a-token"}).decode())
        assert orjson.loads(await ws.recv())["code"] == "invalid_token"

        fresh = tokens(user_id)
        await ws.send(orjson.dumps({"type": "auth", "access_token": fresh}).decode())
        accepted = orjson.loads(await ws.recv())
        assert accepted["type"] == "auth.ok"
        assert accepted["valid_until"] > time.time() + 60
        await asyncio.sleep(2.0)  # past the first token's end
        await _ping(ws)
