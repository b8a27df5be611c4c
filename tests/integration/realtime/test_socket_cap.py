"""The per-user WebSocket cap, across two real realtime instances sharing a real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from agora.config import Settings
from agora.observability.metrics import RATELIMIT_REJECTIONS
from agora.services.realtime.admission import SocketAdmission
from agora.services.realtime.app import create_app
from agora.services.realtime.hub import TOO_MANY_SOCKETS_CLOSE_CODE
from agora.services.realtime.presence import presence_key
from tests.conftest import TokenFactory
from tests.integration.realtime.conftest import (
    RunningServer,
    Serve,
    TcpProxy,
    assert_nothing_queued,
    eventually,
    open_socket,
    receive,
)

CAP = 2


def refusals() -> float:
    value: float = RATELIMIT_REJECTIONS.labels("ws_sockets_per_user")._value.get()
    return value


async def two_instances(
    settings: Settings, tokens: TokenFactory, serve: Serve
) -> list[RunningServer]:
    return [
        await serve(
            create_app(
                settings.model_copy(
                    update={"realtime_max_sockets_per_user": CAP, "instance_id": name}
                ),
                key_resolver=tokens.resolver,
            )
        )
        for name in ("rt-a", "rt-b")
    ]


async def assert_refused(ws: ClientConnection) -> None:
    frame = await receive(ws)
    assert frame["type"] == "error"
    assert frame["code"] == "too_many_connections"
    with pytest.raises(ConnectionClosed) as closed:
        await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == TOO_MANY_SOCKETS_CLOSE_CODE == 4029
    assert closed.value.rcvd.reason == "too many connections"


async def test_the_cap_holds_across_instances_and_a_closed_socket_frees_its_slot(
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    serve: Serve,
    redis_client: Redis,
) -> None:
    a, b = await two_instances(settings, tokens, serve)
    bob, carol = make_user(), make_user()
    before = refusals()
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(open_socket(a, tokens(bob)))
        await stack.enter_async_context(open_socket(b, tokens(bob)))
        async with open_socket(b, tokens(bob)) as third:  # N+1-th, on the other instance
            await assert_refused(third)
        async with open_socket(a, tokens(bob)) as fourth:
            await assert_refused(fourth)
        assert refusals() == before + 2
        # Another user is not affected by bob's sockets.
        async with open_socket(a, tokens(carol)) as other:
            await assert_nothing_queued(other)

        await first.close()

        async def freed() -> bool:
            return int(await redis_client.hlen(presence_key(bob))) == 1

        await eventually(freed)  # at once, not after the presence TTL (60 s)
        async with open_socket(b, tokens(bob)) as again:
            await assert_nothing_queued(again)
            assert int(await redis_client.hlen(presence_key(bob))) == CAP
    assert refusals() == before + 2


async def test_a_crashed_instances_fields_count_until_they_expire(
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    serve: Serve,
    redis_client: Redis,
) -> None:
    a, _ = await two_instances(settings, tokens, serve)
    bob = make_user()
    key = presence_key(bob)
    # Another instance holds bob's CAP sockets; it then crashes: its fields stop being
    # refreshed and their expiry passes.
    crashed = {f"crashed:{uuid.uuid4().hex}": int(time.time()) + 60 for _ in range(CAP)}
    await redis_client.hset(key, mapping=crashed)  # type: ignore[arg-type]
    async with open_socket(a, tokens(bob)) as ws:
        await assert_refused(ws)
    expired = dict.fromkeys(crashed, int(time.time()) - 1)
    await redis_client.hset(key, mapping=expired)  # type: ignore[arg-type]
    async with open_socket(a, tokens(bob)) as ws:
        await assert_nothing_queued(ws)
        fields = await redis_client.hgetall(key)
        assert len(fields) == 1  # the expired fields were cleared by the admission
        (name,) = fields
        assert isinstance(name, bytes)
        assert name.startswith(b"rt-a:")


async def test_without_redis_each_instance_applies_the_cap_to_its_own_sockets(
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    serve: Serve,
    proxy: TcpProxy,
) -> None:
    direct = urlsplit(settings.require_redis_url())
    via_proxy = direct._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    behind_proxy = settings.model_copy(
        update={"redis_url": via_proxy, "realtime_max_sockets_per_user": CAP}
    )
    server = await serve(create_app(behind_proxy, key_resolver=tokens.resolver))
    bob = make_user()
    await proxy.stop()  # Redis is gone: sockets are still admitted, up to the local cap
    async with AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(open_socket(server, tokens(bob))) for _ in range(CAP)
        ]
        for ws in opened:
            await assert_nothing_queued(ws)
        async with open_socket(server, tokens(bob)) as over:
            await assert_refused(over)
        await opened[0].close()

        async def freed() -> bool:
            admission: SocketAdmission = server.app.runtime.parts.admission
            return admission.held_here(bob) < CAP

        await eventually(freed)
        async with open_socket(server, tokens(bob)) as again:
            await assert_nothing_queued(again)
