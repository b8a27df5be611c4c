"""Oversized and deeply nested bodies are refused before any route parses them; WebSocket
messages are bounded too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agora.config import Settings
from agora.services.realtime.app import create_app as create_realtime
from tests.integration.auth.conftest import PASSWORD
from tests.integration.realtime.conftest import RunningServer
from tests.security.conftest import System


def _nested(depth: int) -> bytes:
    return b'{"username": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"


async def test_a_body_over_the_limit_is_refused_with_413(
    system: System, settings: Settings
) -> None:
    alice = await system.account("alice")
    big = "x" * (settings.max_body_bytes + 1)
    for client, path in (
        (system.auth.client, "/api/v1/auth/register"),
        (system.posts, "/api/v1/posts"),
    ):
        response = await client.post(path, json={"content": big}, headers=alice.headers)
        assert response.status_code == 413, path
        assert response.json()["error"]["code"] == "payload_too_large"


async def test_a_chunked_body_is_counted_as_it_arrives(system: System, settings: Settings) -> None:
    alice = await system.account("alice")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"content": "'
        for _ in range(settings.max_body_bytes // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = await system.posts.post(
        "/api/v1/posts",
        content=chunks(),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert await system.auth.count("posts") == 0


async def test_deeply_nested_json_is_refused_with_422(system: System, settings: Settings) -> None:
    headers = {"Content-Type": "application/json"}
    deep = await system.auth.client.post(
        "/api/v1/auth/login", content=_nested(settings.max_json_depth + 1), headers=headers
    )
    assert deep.status_code == 422
    assert deep.json()["error"]["code"] == "json_too_deep"
    # A million brackets: refused just the same, not a crash (Python's parser would recurse).
    huge = b"[" * 60_000 + b"]" * 2_000
    assert (
        await system.posts.post("/api/v1/posts", content=huge, headers=headers)
    ).status_code in (
        413,
        422,
    )
    shallow = await system.auth.client.post(
        "/api/v1/auth/login", content=_nested(settings.max_json_depth - 2), headers=headers
    )
    assert shallow.status_code == 422  # reaches validation: the password is missing
    assert shallow.json()["error"]["code"] == "validation_error"


async def test_brackets_inside_strings_do_not_count_as_nesting(system: System) -> None:
    alice = await system.account("alice")
    content = "[" * 200 + " brackets are text " + "{" * 200
    response = await system.posts.post(
        "/api/v1/posts", json={"content": content}, headers=alice.headers
    )
    assert response.status_code == 201
    assert response.json()["content"] == content


async def test_a_websocket_message_over_the_limit_closes_the_socket(
    system: System,
    settings: Settings,
    serve: Callable[[FastAPI], Awaitable[RunningServer]],
) -> None:
    alice = await system.account("alice")
    small = settings.model_copy(update={"ws_max_message_bytes": 1024})
    realtime = await serve(create_realtime(small, key_resolver=system.auth.keystore))
    async with connect(realtime.ws_url, additional_headers=alice.headers, open_timeout=5) as ws:
        await ws.send('{"type": "ping"}')
        assert "pong" in str(await ws.recv())
        await ws.send('{"type": "ping", "pad": "' + "x" * 2048 + '"}')
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_register_refuses_a_common_password(system: System) -> None:
    for password in ("password123", "qwertyuiop", "Password1234"):
        response = await system.auth.client.post(
            "/api/v1/auth/register",
            json={"username": "carol", "email": "carol@example.com", "password": password},
        )
        assert response.status_code == 422, password
        assert "common" in response.text
    ok = await system.auth.client.post(
        "/api/v1/auth/register",
        json={"username": "carol", "email": "carol@example.com", "password": PASSWORD},
    )
    assert ok.status_code == 201
