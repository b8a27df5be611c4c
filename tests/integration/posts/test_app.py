"""The app factory's default key source: auth's JWKS fetched over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory
from tests.jwks_server import jwks_server


@pytest.fixture
def jwks_url(tokens: TokenFactory) -> Iterator[str]:
    with jwks_server(tokens.key) as server:
        yield server.url


async def test_tokens_are_verified_with_keys_from_the_jwks_url(
    settings: Settings,
    tokens: TokenFactory,
    jwks_url: str,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    make_user: Callable[[], str],
) -> None:
    app = create_app(settings.model_copy(update={"auth_jwks_url": jwks_url}))
    client = await app_client(app)
    alice = make_user()
    response = await client.post(
        "/api/v1/posts",
        json={"content": "hi"},
        headers={"Authorization": f"Bearer {tokens(alice)}"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["author_id"] == alice


async def test_without_reachable_jwks_every_token_is_refused(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    make_user: Callable[[], str],
) -> None:
    unreachable = settings.model_copy(update={"auth_jwks_url": "http://127.0.0.1:1/jwks.json"})
    client = await app_client(create_app(unreachable))
    response = await client.get(
        "/api/v1/posts/feed", headers={"Authorization": f"Bearer {tokens(make_user())}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
