"""Events on Redis pub/sub after commit: post.created and notification; Redis loss is harmless."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from agora.config import Settings
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory
from tests.integration.posts.conftest import Headers

CreatePost = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def events(settings: Settings) -> AsyncIterator[PubSub]:
    redis = Redis.from_url(settings.require_redis_url())
    pubsub = redis.pubsub()
    await pubsub.subscribe(settings.events_channel)
    # Wait for the server's confirmation, so no event published after this point is missed.
    confirmation = await pubsub.get_message(timeout=5.0)
    assert confirmation is not None
    assert confirmation["type"] == "subscribe"
    try:
        yield pubsub
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()


async def _next_event(
    pubsub: PubSub, match: Callable[[dict[str, Any]], bool], within_s: float = 5.0
) -> dict[str, Any]:
    """The first event that ``match`` accepts; pub/sub channels are shared by every database
    number of the Redis server, so other test runs' events are skipped, not failed on."""
    async with asyncio.timeout(within_s):
        while True:
            message = await pubsub.get_message(timeout=within_s)
            if message is None or message["type"] != "message":
                continue
            event: dict[str, Any] = orjson.loads(message["data"])
            if match(event):
                return event


async def _no_event(pubsub: PubSub, match: Callable[[dict[str, Any]], bool]) -> None:
    with pytest.raises(TimeoutError):
        await _next_event(pubsub, match, within_s=0.5)


async def test_creating_a_post_publishes_post_created(
    events: PubSub, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice = make_user()
    post = await create_post(alice, "<b>hello</b> followers")
    event = await _next_event(events, lambda e: e.get("author_id") == alice)
    assert event["type"] == "post.created"
    assert event["recipient_id"] is None
    assert event["payload"] == {"post": post}
    assert event["payload"]["post"]["content"] == "hello followers"


async def test_a_new_like_publishes_a_notification_for_the_author(
    client: httpx.AsyncClient,
    auth: Headers,
    events: PubSub,
    make_user: Callable[[], str],
    create_post: CreatePost,
) -> None:
    alice, bob = make_user(), make_user()
    post = await create_post(alice)
    await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(bob))

    event = await _next_event(events, lambda e: e.get("recipient_id") == alice)
    assert event["type"] == "notification"
    assert event["author_id"] is None
    notification = event["payload"]["notification"]
    stored = (await client.get("/api/v1/posts/notifications", headers=auth(alice))).json()["items"][
        0
    ]
    assert notification == stored
    assert (notification["kind"], notification["actor_id"], notification["post_id"]) == (
        "like",
        bob,
        post["id"],
    )

    # A repeated like, and a like of one's own post, announce nothing.
    await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(bob))
    await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(alice))
    await _no_event(
        events, lambda e: e.get("type") == "notification" and e.get("recipient_id") == alice
    )


async def test_a_new_follow_publishes_a_notification_for_the_followee(
    client: httpx.AsyncClient, auth: Headers, events: PubSub, make_user: Callable[[], str]
) -> None:
    alice, bob = make_user(), make_user()
    await client.put(f"/api/v1/posts/follows/{alice}", headers=auth(bob))
    event = await _next_event(events, lambda e: e.get("recipient_id") == alice)
    assert event["type"] == "notification"
    notification = event["payload"]["notification"]
    assert (notification["kind"], notification["actor_id"], notification["post_id"]) == (
        "follow",
        bob,
        None,
    )
    await client.put(f"/api/v1/posts/follows/{alice}", headers=auth(bob))
    await _no_event(events, lambda e: e.get("recipient_id") == alice)


async def test_failed_requests_publish_nothing(
    client: httpx.AsyncClient, auth: Headers, events: PubSub, make_user: Callable[[], str]
) -> None:
    alice = make_user()
    response = await client.post("/api/v1/posts", json={"content": "x" * 501}, headers=auth(alice))
    assert response.status_code == 422
    await _no_event(events, lambda e: e.get("author_id") == alice)


async def test_writes_succeed_when_redis_is_unreachable(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    make_user: Callable[[], str],
    db: Any,
) -> None:
    # Nothing listens on port 1: every publish fails fast with a connection error.
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    client = await app_client(create_app(broken, key_resolver=tokens.resolver))
    alice, bob = make_user(), make_user()
    headers = {"Authorization": f"Bearer {tokens(alice)}"}
    response = await client.post("/api/v1/posts", json={"content": "still works"}, headers=headers)
    assert response.status_code == 201
    like = await client.put(
        f"/api/v1/posts/{response.json()['id']}/like",
        headers={"Authorization": f"Bearer {tokens(bob)}"},
    )
    assert like.status_code == 200
    assert await db.fetchval("SELECT count(*) FROM notifications") == 1
