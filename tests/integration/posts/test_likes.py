"""Likes: idempotent, like_count exact under concurrency, one notification per like."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.integration.posts.conftest import Headers

CreatePost = Callable[..., Awaitable[dict[str, Any]]]


async def test_like_and_unlike_are_idempotent(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    db: Any,
) -> None:
    alice, bob = make_user(), make_user()
    post = await create_post(alice)
    url = f"/api/v1/posts/{post['id']}/like"

    for _ in range(3):
        response = await client.put(url, headers=auth(bob))
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == post["id"]
        assert body["like_count"] == 1
        assert body["liked_by_me"] is True

    seen_by_bob = (await client.get(f"/api/v1/posts/{post['id']}", headers=auth(bob))).json()
    seen_by_alice = (await client.get(f"/api/v1/posts/{post['id']}", headers=auth(alice))).json()
    assert (seen_by_bob["like_count"], seen_by_bob["liked_by_me"]) == (1, True)
    assert (seen_by_alice["like_count"], seen_by_alice["liked_by_me"]) == (1, False)

    for _ in range(3):
        response = await client.delete(url, headers=auth(bob))
        assert response.status_code == 200
        assert response.json()["like_count"] == 0
        assert response.json()["liked_by_me"] is False
    assert await db.fetchval("SELECT count(*) FROM likes") == 0
    assert await db.fetchval("SELECT like_count FROM posts") == 0


async def test_like_counts_every_user_once(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice = make_user()
    post = await create_post(alice)
    url = f"/api/v1/posts/{post['id']}/like"
    fans = [make_user() for _ in range(3)]
    counts = [(await client.put(url, headers=auth(fan))).json()["like_count"] for fan in fans]
    assert counts == [1, 2, 3]
    assert (await client.delete(url, headers=auth(fans[0]))).json()["like_count"] == 2
    # Unliking a post one never liked changes nothing.
    assert (await client.delete(url, headers=auth(alice))).json()["like_count"] == 2


async def test_concurrent_likes_from_distinct_users_are_all_counted(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    db: Any,
) -> None:
    post = await create_post(make_user())
    fans = [make_user() for _ in range(20)]
    url = f"/api/v1/posts/{post['id']}/like"
    responses = await asyncio.gather(*(client.put(url, headers=auth(fan)) for fan in fans))
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.json()["like_count"] for r in responses) == list(range(1, 21))
    assert await db.fetchval("SELECT like_count FROM posts") == 20
    assert await db.fetchval("SELECT count(*) FROM likes") == 20
    assert await db.fetchval("SELECT count(*) FROM notifications WHERE kind = 'like'") == 20

    responses = await asyncio.gather(*(client.delete(url, headers=auth(fan)) for fan in fans))
    assert all(r.status_code == 200 for r in responses)
    assert await db.fetchval("SELECT like_count FROM posts") == 0


async def test_concurrent_likes_from_one_user_count_once(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    db: Any,
) -> None:
    post = await create_post(make_user())
    bob = make_user()
    url = f"/api/v1/posts/{post['id']}/like"
    responses = await asyncio.gather(*(client.put(url, headers=auth(bob)) for _ in range(10)))
    assert all(r.status_code == 200 for r in responses)
    # Every answer, including the no-ops that waited for the winning like, shows the count.
    assert {r.json()["like_count"] for r in responses} == {1}
    assert await db.fetchval("SELECT like_count FROM posts") == 1
    assert await db.fetchval("SELECT count(*) FROM notifications") == 1

    responses = await asyncio.gather(*(client.delete(url, headers=auth(bob)) for _ in range(10)))
    assert {r.json()["like_count"] for r in responses} == {0}
    assert await db.fetchval("SELECT like_count FROM posts") == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize("post_id", [str(uuid.uuid4()), "garbage"])
async def test_liking_an_unknown_post_is_404(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    db: Any,
    method: str,
    post_id: str,
) -> None:
    response = await client.request(
        method, f"/api/v1/posts/{post_id}/like", headers=auth(make_user())
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert await db.fetchval("SELECT count(*) FROM likes") == 0


async def test_deleting_a_post_removes_its_likes_and_notifications(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    db: Any,
) -> None:
    alice, bob = make_user(), make_user()
    post = await create_post(alice)
    await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(bob))
    assert (
        await client.delete(f"/api/v1/posts/{post['id']}", headers=auth(alice))
    ).status_code == 204
    assert await db.fetchval("SELECT count(*) FROM likes") == 0
    assert await db.fetchval("SELECT count(*) FROM notifications") == 0
