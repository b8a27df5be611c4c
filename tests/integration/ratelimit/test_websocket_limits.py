"""WebSocket messages: 50/second per connection, excess dropped with an error event, and
1008 for a client that keeps flooding (real uvicorn with wsproto, real client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

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
        return not server.app.state.hub.is_connected(user_id)

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
