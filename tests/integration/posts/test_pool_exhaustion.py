"""An exhausted pool answers a clear 503 ``unavailable`` with ``Retry-After``, in time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI

from agora.config import Settings
from agora.db import Database
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory


async def test_a_request_that_finds_no_free_connection_gets_503(
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
) -> None:
    tight = settings.model_copy(
        update={"db_pool_min_size": 1, "db_pool_max_size": 1, "db_acquire_timeout_s": 0.3}
    )
    app = create_app(tight, key_resolver=tokens.resolver)
    client = await app_client(app)
    user = make_user()
    headers = {"Authorization": f"Bearer {tokens(user)}"}
    db: Database = app.runtime.infra.db
    async with db.connection():  # the only connection, held elsewhere
        started = time.monotonic()
        response = await client.get("/api/v1/posts/feed", headers=headers)
        waited = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "1"
    assert waited < 3.0  # the acquire timeout, not the 10 s query timeout
    assert (await client.get("/api/v1/posts/feed", headers=headers)).status_code == 200
