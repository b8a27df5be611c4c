"""Identity once, through the whole posts app on real PostgreSQL and Redis: the token is
verified once per request (not by the limiter and again by the route), and a request naming
two tokens is refused with the contract's 400 before the limiter bills anyone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.security.tokens import Principal
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory


async def test_a_token_is_verified_once_per_request(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    make_user: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(settings, key_resolver=tokens.resolver)
    client = await app_client(app)
    verifier = app.runtime.verifier
    real_verify = verifier.verify
    calls: list[str] = []

    async def counting_verify(token: str) -> Principal:
        calls.append(token)
        return await real_verify(token)

    monkeypatch.setattr(verifier, "verify", counting_verify)
    alice = make_user()
    response = await client.post(
        "/api/v1/posts",
        json={"content": "once"},
        headers={"Authorization": f"Bearer {tokens(alice)}"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-ratelimit-limit"]  # the limiter ran, and billed the user
    assert response.headers["ratelimit-policy"].startswith('"user"')
    assert len(calls) == 1


@pytest.mark.parametrize("second", ["same", "other"])
async def test_two_authorization_headers_are_refused_with_400(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    make_user: Callable[[], str],
    second: str,
) -> None:
    client = await app_client(create_app(settings, key_resolver=tokens.resolver))
    alice, bob = make_user(), make_user()
    first = f"Bearer {tokens(alice)}"
    other = first if second == "same" else f"Bearer {tokens(bob)}"
    response = await client.post(
        "/api/v1/posts",
        json={"content": "which one?"},
        headers=[("Authorization", first), ("Authorization", other)],
    )
    assert response.status_code == 400
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "ambiguous_credentials"
    assert error["request_id"] == response.headers["x-request-id"]
    assert "x-ratelimit-remaining" not in response.headers  # refused before the limiter
    assert response.headers["x-content-type-options"] == "nosniff"
    # Nothing was written for either user.
    for user in (alice, bob):
        page = await client.get(
            f"/api/v1/posts/users/{user}", headers={"Authorization": f"Bearer {tokens(user)}"}
        )
        assert page.status_code == 200
        assert page.json()["items"] == []
