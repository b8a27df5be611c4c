"""Fixtures for the posts service: the in-process app, auth headers, direct database access."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
async def client(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
) -> httpx.AsyncClient:
    return await app_client(create_app(settings, key_resolver=tokens.resolver))


@pytest.fixture
def auth(tokens: TokenFactory) -> Headers:
    def headers(user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens(user_id)}"}

    return headers


@pytest.fixture
def create_post(
    client: httpx.AsyncClient, auth: Headers
) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def create(user_id: str, content: str = "hello") -> dict[str, Any]:
        response = await client.post(
            "/api/v1/posts", json={"content": content}, headers=auth(user_id)
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return create


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Any]:
    """A direct connection, to check what a request did (or did not) write."""
    conn = await asyncpg.connect(settings.require_database_url())
    try:
        yield conn
    finally:
        await conn.close()
