"""One Redis round trip on a cached authenticated read: the rate-limit decision, the
deletion mark and the cache lookup travel in the limiter's one pipeline (real Redis; the
writes to Redis connections are counted: one per command or pipeline sent, whichever
connection — the pool's or one the limiter's batches keep — carries it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio.connection import AbstractConnection

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

    real_send = AbstractConnection.send_packed_command
    sends: list[Any] = []

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sends.append(command)
        await real_send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    cached = await client.get(url, headers=headers)
    assert cached.status_code == 200
    assert cached.json() == first.json()
    assert cached.headers["x-ratelimit-limit"]  # the limiter did decide
    assert len(sends) == 1

    # Still validated by its stamp in that same round trip: a like is seen at once.
    liked = await client.put(f"{url}/like", headers=headers)
    assert liked.status_code == 200
    after = await client.get(url, headers=headers)
    assert after.json()["like_count"] == 1
    assert after.json()["liked_by_me"] is True
