"""Follow and unfollow: idempotent, never yourself, only existing users."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.posts.conftest import Headers


async def test_follow_and_unfollow_are_idempotent(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], db: Any
) -> None:
    alice, bob = make_user(), make_user()
    url = f"/api/v1/posts/follows/{bob}"
    for _ in range(2):
        response = await client.put(url, headers=auth(alice))
        assert response.status_code == 200
        assert response.json() == {"user_id": bob, "following": True}
    assert await db.fetch("SELECT follower_id::text, followee_id::text FROM follows") == [
        (alice, bob)
    ]
    for _ in range(2):
        response = await client.delete(url, headers=auth(alice))
        assert response.status_code == 200
        assert response.json() == {"user_id": bob, "following": False}
    assert await db.fetchval("SELECT count(*) FROM follows") == 0


async def test_concurrent_follows_make_one_row_and_one_notification(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], db: Any
) -> None:
    alice, bob = make_user(), make_user()
    url = f"/api/v1/posts/follows/{bob}"
    responses = await asyncio.gather(*(client.put(url, headers=auth(alice)) for _ in range(8)))
    assert {r.status_code for r in responses} == {200}
    assert await db.fetchval("SELECT count(*) FROM follows") == 1
    assert await db.fetchval("SELECT count(*) FROM notifications") == 1


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_following_yourself_is_422(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], db: Any, method: str
) -> None:
    alice = make_user()
    response = await client.request(method, f"/api/v1/posts/follows/{alice}", headers=auth(alice))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "cannot_follow_self"
    assert await db.fetchval("SELECT count(*) FROM follows") == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize("user_id", [str(uuid.uuid4()), "not-a-user"])
async def test_following_an_unknown_user_is_404(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    db: Any,
    method: str,
    user_id: str,
) -> None:
    response = await client.request(
        method, f"/api/v1/posts/follows/{user_id}", headers=auth(make_user())
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert await db.fetchval("SELECT count(*) FROM follows") == 0
    assert await db.fetchval("SELECT count(*) FROM notifications") == 0
