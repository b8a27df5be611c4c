"""Notifications: created by new likes and follows, each once, visible only to the recipient."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx

from tests.integration.posts.conftest import Headers

CreatePost = Callable[..., Awaitable[dict[str, Any]]]


async def _notifications(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get("/api/v1/posts/notifications", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_like_and_follow_notify_the_recipient(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice, bob = make_user(), make_user()
    post = await create_post(alice)
    await client.put(f"/api/v1/posts/follows/{alice}", headers=auth(bob))
    await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(bob))

    body = await _notifications(client, auth(alice))
    assert body["next_cursor"] is None
    like, follow = body["items"]
    assert set(like) == {"id", "kind", "actor_id", "post_id", "created_at", "read"}
    assert (like["kind"], like["actor_id"], like["post_id"], like["read"]) == (
        "like",
        bob,
        post["id"],
        False,
    )
    assert (follow["kind"], follow["actor_id"], follow["post_id"], follow["read"]) == (
        "follow",
        bob,
        None,
        False,
    )
    assert datetime.fromisoformat(like["created_at"]) > datetime.fromisoformat(follow["created_at"])
    # The actor is not notified of their own actions.
    assert (await _notifications(client, auth(bob)))["items"] == []


async def test_liking_your_own_post_notifies_nobody(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    db: Any,
) -> None:
    alice = make_user()
    post = await create_post(alice)
    response = await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(alice))
    assert response.json()["like_count"] == 1
    assert (await _notifications(client, auth(alice)))["items"] == []
    assert await db.fetchval("SELECT count(*) FROM notifications") == 0


async def test_repeated_or_redone_likes_and_follows_notify_once(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice, bob = make_user(), make_user()
    post = await create_post(alice)
    like_url, follow_url = f"/api/v1/posts/{post['id']}/like", f"/api/v1/posts/follows/{alice}"
    for _ in range(3):
        await client.put(like_url, headers=auth(bob))
        await client.put(like_url, headers=auth(bob))
        await client.delete(like_url, headers=auth(bob))
        await client.put(follow_url, headers=auth(bob))
        await client.put(follow_url, headers=auth(bob))
        await client.delete(follow_url, headers=auth(bob))
    kinds = sorted(n["kind"] for n in (await _notifications(client, auth(alice)))["items"])
    assert kinds == ["follow", "like"]


async def test_notifications_paginate(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice = make_user()
    post = await create_post(alice)
    fans = [make_user() for _ in range(7)]
    for fan in fans:
        await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(fan))

    actors: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        body = await _notifications(
            client, auth(alice), limit=3, **({"cursor": cursor} if cursor else {})
        )
        pages += 1
        actors.extend(n["actor_id"] for n in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert actors == list(reversed(fans))


async def test_nobody_sees_anothers_notifications(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice, bob, eve = make_user(), make_user(), make_user()
    await client.put(f"/api/v1/posts/follows/{alice}", headers=auth(bob))
    await client.put(f"/api/v1/posts/follows/{eve}", headers=auth(bob))
    alices = await _notifications(client, auth(alice))
    eves = await _notifications(client, auth(eve))
    assert len(alices["items"]) == len(eves["items"]) == 1
    assert alices["items"][0]["id"] != eves["items"][0]["id"]
    # A cursor taken from someone else's list still only pages through your own.
    post = await create_post(eve)
    await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(bob))
    first = await _notifications(client, auth(eve), limit=1)
    assert first["next_cursor"] is not None
    borrowed = await _notifications(client, auth(alice), cursor=first["next_cursor"])
    assert [n["id"] for n in borrowed["items"]] == [alices["items"][0]["id"]]
