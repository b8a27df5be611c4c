"""One Redis round trip on a cached authenticated read: the rate-limit decision, the
deletion mark and the cache lookup travel in the limiter's one pipeline (real Redis; the
pool's checkouts are counted: one per command or pipeline sent)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory


async def test_a_cached_read_makes_one_round_trip_and_stays_fresh(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    make_user: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(settings, key_resolver=tokens.resolver)
    client = await app_client(app)
    alice = make_user()
    headers = {"Authorization": f"Bearer {tokens(alice)}"}
    created = await client.post("/api/v1/posts", json={"content": "once"}, headers=headers)
    assert created.status_code == 201, created.text
    url = f"/api/v1/posts/{created.json()['id']}"
    first = await client.get(url, headers=headers)  # a miss: loads and fills the cache
    assert first.status_code == 200

    pool = app.runtime.infra.redis.client.connection_pool
    real_get_connection = pool.get_connection
    checkouts: list[Any] = []

    async def counting(*args: Any, **kwargs: Any) -> Any:
        checkouts.append(args)
        return await real_get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated

    monkeypatch.setattr(pool, "get_connection", counting)
    cached = await client.get(url, headers=headers)
    assert cached.status_code == 200
    assert cached.json() == first.json()
    assert cached.headers["x-ratelimit-limit"]  # the limiter did decide
    assert len(checkouts) == 1

    # Still validated by its stamp in that same round trip: a like is seen at once.
    liked = await client.put(f"{url}/like", headers=headers)
    assert liked.status_code == 200
    after = await client.get(url, headers=headers)
    assert after.json()["like_count"] == 1
    assert after.json()["liked_by_me"] is True
