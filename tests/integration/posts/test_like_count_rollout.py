"""The gradual rollout of notification-like-count: a like's notification event carries the
post's like count for the authors in the rollout, and only for them; raising the percentage
never takes it away from an author who had it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from agora.config import Settings
from agora.flags import bucket
from agora.flags.catalog import NOTIFICATION_LIKE_COUNT
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory


def write_rollout(path: Path, percent: float) -> None:
    flag = {
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "rollout": {"variant": "on", "percent": percent},
    }
    path.write_text(json.dumps({"flags": {NOTIFICATION_LIKE_COUNT.key: flag}}), encoding="utf-8")


@pytest.fixture
def flags_path(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    write_rollout(path, 0)
    return path


@pytest.fixture
async def client(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    flags_path: Path,
) -> httpx.AsyncClient:
    configured = settings.model_copy(update={"flags_file": str(flags_path), "flags_reload_s": 0.05})
    return await app_client(create_app(configured, key_resolver=tokens.resolver))


@pytest.fixture
async def events(settings: Settings) -> AsyncIterator[PubSub]:
    redis = Redis.from_url(settings.require_redis_url())
    pubsub = redis.pubsub()
    await pubsub.subscribe(settings.events_channel)
    confirmation = await pubsub.get_message(timeout=5.0)
    assert confirmation is not None
    try:
        yield pubsub
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()


async def like_notification(pubsub: PubSub, post_id: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            message = await pubsub.get_message(timeout=5.0)
            if message is None or message["type"] != "message":
                continue
            event: dict[str, Any] = orjson.loads(message["data"])
            notification = event["payload"].get("notification") or {}
            if event["type"] == "notification" and notification.get("post_id") == post_id:
                return event


async def test_authors_in_the_rollout_get_the_like_count_and_keep_it_as_it_rises(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    events: PubSub,
    flags_path: Path,
) -> None:
    def auth(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens(user)}"}

    authors = [make_user() for _ in range(8)]
    # The rollout is sticky per author: their bucket decides, for every percentage.
    buckets = {author: bucket(NOTIFICATION_LIKE_COUNT.key, author) for author in authors}
    posts = {}
    for author in authors:
        created = await client.post("/api/v1/posts", json={"content": "hi"}, headers=auth(author))
        posts[author] = created.json()["id"]

    had_it: set[str] = set()
    for percent in (0, 30, 60, 100):
        write_rollout(flags_path, percent)
        await asyncio.sleep(0.3)  # the file is polled every 0.05 s
        fan = make_user()
        for author in authors:
            liked = await client.put(f"/api/v1/posts/{posts[author]}/like", headers=auth(fan))
            assert liked.status_code == 200
            event = await like_notification(events, posts[author])
            if buckets[author] < percent:
                assert event["payload"]["post"] == {
                    "id": posts[author],
                    "like_count": liked.json()["like_count"],
                }
                had_it.add(author)
            else:
                assert "post" not in event["payload"]
                assert author not in had_it, "an author left the rollout as it rose"
    assert had_it == set(authors)
