"""The /ws handshake (token before upgrade) and the client protocol (ping, errors)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agora.security.keys import generate_signing_key
from agora.security.tokens import TokenIssuer
from tests.conftest import TokenFactory
from tests.integration.realtime.conftest import (
    RunningServer,
    assert_nothing_queued,
    eventually,
    open_socket,
    receive,
)


async def assert_refused(server: RunningServer, *, url: str, headers: dict[str, str]) -> None:
    with pytest.raises(InvalidStatus) as excinfo:
        async with connect(url, additional_headers=headers, open_timeout=5):
            pytest.fail("the socket opened")
    assert excinfo.value.response.status_code == 403
    assert len(server.app.runtime.parts.hub) == 0


async def test_missing_token_is_refused_before_upgrade(realtime: RunningServer) -> None:
    await assert_refused(realtime, url=realtime.ws_url, headers={})
    await assert_refused(realtime, url=f"{realtime.ws_url}?access_token=", headers={})
    await assert_refused(realtime, url=realtime.ws_url, headers={"Authorization": "Basic abc"})


@pytest.mark.parametrize("via", ["header", "query"])
async def test_bad_tokens_are_refused(
    realtime: RunningServer,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    via: str,
) -> None:
    user_id = make_user()
    foreign_key = generate_signing_key()
    issuer = TokenIssuer(issuer=tokens.issuer.issuer, audience="agora", ttl_s=900)
    bad = {
        "garbage": "not-a-jwt",
        "expired": tokens(user_id, now=time.time() - 3600),
        "unknown key": issuer.issue(user_id, foreign_key),
        "tampered": tokens(user_id)[:-4] + "AAAA",
        "not a user id": tokens("someone"),
    }
    for token in bad.values():
        if via == "header":
            await assert_refused(
                realtime, url=realtime.ws_url, headers={"Authorization": f"Bearer {token}"}
            )
        else:
            await assert_refused(
                realtime, url=f"{realtime.ws_url}?access_token={token}", headers={}
            )


@pytest.mark.parametrize("via", ["header", "query"])
async def test_valid_token_opens_a_socket_and_ping_gets_pong(
    realtime: RunningServer, tokens: TokenFactory, make_user: Callable[..., str], via: str
) -> None:
    user_id = make_user()
    async with open_socket(realtime, tokens(user_id), via=via) as ws:
        await ws.send('{"type": "ping"}')
        assert await receive(ws) == {"type": "pong"}
        assert realtime.app.runtime.parts.hub.is_connected(user_id)

    # The server notices the close and forgets the socket.
    async def forgotten() -> bool:
        return not realtime.app.runtime.parts.hub.is_connected(user_id)

    await eventually(forgotten)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "malformed_message"),
        ("", "malformed_message"),
        ("[1, 2, 3]", "malformed_message"),
        ('"ping"', "malformed_message"),
        ('{"no": "type"}', "unknown_type"),
        ('{"type": "subscribe"}', "unknown_type"),
        ('{"type": 42}', "unknown_type"),
    ],
)
async def test_bad_messages_get_an_error_and_the_socket_stays_usable(
    realtime: RunningServer,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    frame: str,
    code: str,
) -> None:
    async with open_socket(realtime, tokens(make_user())) as ws:
        await ws.send(frame)
        error = await receive(ws)
        assert error["type"] == "error"
        assert error["code"] == code
        assert isinstance(error["message"], str)
        assert error["message"]
        await assert_nothing_queued(ws)  # still open and answering


async def test_binary_json_frames_are_understood(
    realtime: RunningServer, tokens: TokenFactory, make_user: Callable[..., str]
) -> None:
    async with open_socket(realtime, tokens(make_user())) as ws:
        await ws.send(b'{"type": "ping"}')
        assert await receive(ws) == {"type": "pong"}
