"""WebSocket messages: 50/second per connection, excess dropped with an error event, and
1008 for a client that keeps flooding (real uvicorn with wsproto, real client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agora.config import Settings
from agora.services.realtime.app import create_app
from tests.conftest import TokenFactory
from tests.integration.ratelimit.conftest import rejections
from tests.integration.realtime.conftest import (
    RunningServer,
    Serve,
    eventually,
    open_socket,
    receive,
)

PING = '{"type": "ping"}'


async def realtime(serve: Serve, settings: Settings, tokens: TokenFactory) -> RunningServer:
    return await serve(create_app(settings, key_resolver=tokens.resolver))


async def drain(ws: ClientConnection, quiet_s: float = 0.5) -> tuple[list[dict[str, Any]], float]:
    """Every frame until the socket is quiet, and when the last one came (loop time)."""
    frames: list[dict[str, Any]] = []
    last = asyncio.get_running_loop().time()
    with contextlib.suppress(TimeoutError):
        while True:
            async with asyncio.timeout(quiet_s):
                frames.append(orjson.loads(await ws.recv()))
            last = asyncio.get_running_loop().time()
    return frames, last


async def refused_upgrade(server: RunningServer, token: str, via: str = "header") -> dict[str, Any]:
    """The error event of an upgrade the limiter refused, after checking the socket was then
    closed with 1013 (try again later: not 1008, not a bare 403)."""
    async with open_socket(server, token, via=via) as refused:
        error = await receive(refused)
        with contextlib.suppress(ConnectionClosed):
            await refused.recv()
    assert refused.close_code == 1013
    assert error["code"] == "rate_limited"
    return error


async def test_a_flood_of_200_gets_about_50_answers_and_an_error(
    serve: Serve,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    server = await realtime(serve, limited_settings(), tokens)
    before = rejections("websocket")
    async with open_socket(server, tokens(make_user())) as ws:
        started = asyncio.get_running_loop().time()
        for _ in range(200):
            await ws.send(PING)
        frames, last = await drain(ws)
        pongs = [f for f in frames if f["type"] == "pong"]
        errors = [f for f in frames if f["type"] == "error"]
        # 50 at once, plus what refilled (50/s) while the server worked through the flood:
        # on an idle machine that is a handful; the bound allows for a busy one.
        assert 50 <= len(pongs) <= 51 + 50 * (last - started), (len(pongs), last - started)
        assert len(pongs) < 200
        assert errors, frames
        assert errors[0]["code"] == "rate_limited"
        assert errors[0]["retry_after_ms"] >= 1
        assert len(errors) <= 2  # one notice a second, not one per dropped message
        assert rejections("websocket") - before == 200 - len(pongs)
        # One burst is not abuse: the socket stays open and is answered again.
        await asyncio.sleep(1.1)
        await ws.send(PING)
        assert await receive(ws) == {"type": "pong"}


async def test_sustained_flooding_is_closed_with_1008(
    serve: Serve,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    server = await realtime(serve, limited_settings(), tokens)
    user_id = make_user()
    async with open_socket(server, tokens(user_id)) as ws:
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def read_all() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass

        reader = asyncio.create_task(read_all())
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(15):
                while True:  # about 200 messages a second, four times the limit
                    await ws.send(PING)
                    await asyncio.sleep(0.005)
        elapsed = loop.time() - started
        await reader
        assert ws.close_code == 1008
        assert ws.close_reason == "message rate limit exceeded"
        assert 3.0 <= elapsed < 10.0, elapsed  # the grace is 3 s of continuous excess

    async def forgotten() -> bool:
        return not server.app.runtime.parts.hub.is_connected(user_id)

    await eventually(forgotten)


async def test_a_client_within_the_limit_is_never_refused(
    serve: Serve,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    server = await realtime(serve, limited_settings(ratelimit_ws_messages="20/second"), tokens)
    async with open_socket(server, tokens(make_user())) as ws:
        for _ in range(30):  # 10/s for 3 s
            await ws.send(PING)
            assert await receive(ws) == {"type": "pong"}
            await asyncio.sleep(0.1)


async def test_upgrades_count_against_the_users_limit_and_a_refusal_says_when_to_return(
    serve: Serve,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
    make_user: Callable[[], str],
) -> None:
    server = await realtime(serve, limited_settings(ratelimit_user="2/minute"), tokens)
    token = tokens(make_user())
    before = rejections("user")
    # Header and query-string tokens are the same user: two upgrades use up the limit.
    for via in ("header", "query"):
        async with open_socket(server, token, via=via) as ws:
            await ws.send(PING)
            assert await receive(ws) == {"type": "pong"}

    error = await refused_upgrade(server, token, via="query")
    assert error["type"] == "error"
    assert "user limit is 2 per 60 s" in error["message"]
    assert 1 <= error["retry_after_ms"] <= 30_000  # one upgrade per 30 s refills
    assert rejections("user") == before + 1

    # Another user is not affected.
    async with open_socket(server, tokens(make_user())) as other:
        await other.send(PING)
        assert await receive(other) == {"type": "pong"}


async def test_upgrades_without_a_valid_token_are_limited_per_address(
    serve: Serve,
    limited_settings: Callable[..., Settings],
    tokens: TokenFactory,
) -> None:
    server = await realtime(serve, limited_settings(ratelimit_anonymous="1/minute"), tokens)
    before = rejections("anonymous")
    # The first bad token is refused by the route (403, no socket); the second by the limit.
    with pytest.raises(InvalidStatus) as refused_by_route:
        async with open_socket(server, "not-a-token"):
            pass
    assert refused_by_route.value.response.status_code == 403
    error = await refused_upgrade(server, "not-a-token")
    assert "anonymous limit is 1 per 60 s" in error["message"]
    assert rejections("anonymous") == before + 1
