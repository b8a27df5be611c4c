"""The posts service through its cache: hits, misses, and every invalidation rule.

Queries are counted by wrapping the repository functions the service calls (the real ones run
against the real database); a read served from Redis makes no query.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from agora.cache.service import CacheService
from agora.services.posts import repository as repo
from agora.services.posts import timeline_repository as timelines
from tests.integration.posts.conftest import Headers

CreatePost = Callable[..., Awaitable[dict[str, Any]]]


class QueryCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, hold: asyncio.Event | None = None) -> None:
        self.counts: dict[str, int] = {}
        for module, name in ((repo, "get_post"), (timelines, "feed_page")):
            monkeypatch.setattr(module, name, self._wrap(name, getattr(module, name), hold))

    def _wrap(self, name: str, function: Any, hold: asyncio.Event | None) -> Any:
        @functools.wraps(function)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] = self.counts.get(name, 0) + 1
            if hold is not None:
                # bounded: a reader that never arrives fails the assertions, not the run
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hold.wait(), 30)
            return await function(*args, **kwargs)

        return counted

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> QueryCounter:
    return QueryCounter(monkeypatch)


async def warm(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    """Read twice: the second read is served from the cache."""
    for _ in range(2):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, response.text
    return response.json()


async def test_post_details_are_served_from_the_cache(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    queries: QueryCounter,
) -> None:
    alice = make_user()
    post = await create_post(alice)
    path = f"/api/v1/posts/{post['id']}"
    await warm(client, path, auth(alice))
    before = queries["get_post"]
    for _ in range(5):
        assert (await client.get(path, headers=auth(alice))).json() == post
    assert queries["get_post"] == before


async def test_like_and_unlike_never_leave_a_stale_like_count(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice, bob = make_user(), make_user()
    post = await create_post(alice)
    path = f"/api/v1/posts/{post['id']}"
    feed = "/api/v1/posts/feed"
    await client.put(f"/api/v1/posts/follows/{alice}", headers=auth(bob))
    assert (await warm(client, path, auth(alice)))["like_count"] == 0
    assert (await warm(client, feed, auth(alice)))["items"][0]["like_count"] == 0
    assert (await warm(client, feed, auth(bob)))["items"][0]["liked_by_me"] is False

    await client.put(f"{path}/like", headers=auth(bob))
    assert (await client.get(path, headers=auth(alice))).json()["like_count"] == 1
    assert (await client.get(feed, headers=auth(alice))).json()["items"][0]["like_count"] == 1
    item = (await client.get(feed, headers=auth(bob))).json()["items"][0]
    assert item["like_count"] == 1
    assert item["liked_by_me"] is True

    await client.delete(f"{path}/like", headers=auth(bob))
    assert (await client.get(path, headers=auth(alice))).json()["like_count"] == 0
    assert (await client.get(feed, headers=auth(alice))).json()["items"][0]["like_count"] == 0


async def test_a_new_post_reaches_the_cached_feeds_of_followers_and_author(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    queries: QueryCounter,
) -> None:
    author, followers = make_user(), [make_user() for _ in range(3)]
    for follower in followers:
        await client.put(f"/api/v1/posts/follows/{author}", headers=auth(follower))
    await create_post(author, "first")
    feed = "/api/v1/posts/feed"
    for reader in [author, *followers]:
        await warm(client, feed, auth(reader))
    before = queries["feed_page"]
    for reader in [author, *followers]:
        await client.get(feed, headers=auth(reader))
    assert queries["feed_page"] == before  # all hits

    await create_post(author, "second")
    for reader in [author, *followers]:
        items = (await client.get(feed, headers=auth(reader))).json()["items"]
        assert [item["content"] for item in items] == ["second", "first"]


async def test_follow_and_unfollow_change_the_followers_cached_feed(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    reader, author = make_user(), make_user()
    await create_post(author, "by author")
    feed = "/api/v1/posts/feed"
    assert (await warm(client, feed, auth(reader)))["items"] == []
    await client.put(f"/api/v1/posts/follows/{author}", headers=auth(reader))
    items = (await client.get(feed, headers=auth(reader))).json()["items"]
    assert [item["content"] for item in items] == ["by author"]
    await warm(client, feed, auth(reader))
    await client.delete(f"/api/v1/posts/follows/{author}", headers=auth(reader))
    assert (await client.get(feed, headers=auth(reader))).json()["items"] == []


async def test_delete_removes_the_post_and_it_leaves_the_feeds(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    author, follower = make_user(), make_user()
    await client.put(f"/api/v1/posts/follows/{author}", headers=auth(follower))
    keep = await create_post(author, "keep")
    gone = await create_post(author, "gone")
    path = f"/api/v1/posts/{gone['id']}"
    feed = "/api/v1/posts/feed"
    await warm(client, path, auth(follower))
    for reader in (author, follower):
        await warm(client, feed, auth(reader))
    # A later page (cursor) is cached too and must lose the post as well.
    first = (await client.get(f"{feed}?limit=1", headers=auth(follower))).json()
    second_page = f"{feed}?limit=1&cursor={first['next_cursor']}"
    assert (await warm(client, second_page, auth(follower)))["items"][0]["id"] == keep["id"]

    assert (await client.delete(path, headers=auth(author))).status_code == 204
    assert (await client.get(path, headers=auth(follower))).status_code == 404
    for reader in (author, follower):
        items = (await client.get(feed, headers=auth(reader))).json()["items"]
        assert [item["id"] for item in items] == [keep["id"]]


async def test_a_hundred_concurrent_readers_of_a_cold_post_make_one_query(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = make_user()
    post = await create_post(alice)
    readers = 100
    # The load is held until every reader waits on it, so a slow machine (arrivals spread over
    # longer than any fixed delay) cannot turn a late reader into a second, legitimate miss.
    all_waiting = asyncio.Event()
    waiting = 0
    join = CacheService._join

    async def counted_join(flight: asyncio.Future[object], model: type[Any]) -> Any:
        nonlocal waiting
        waiting += 1
        if waiting == readers:
            all_waiting.set()
        return await join(flight, model)

    monkeypatch.setattr(CacheService, "_join", staticmethod(counted_join))
    queries = QueryCounter(monkeypatch, hold=all_waiting)
    headers = auth(alice)
    responses = await asyncio.gather(
        *(client.get(f"/api/v1/posts/{post['id']}", headers=headers) for _ in range(readers))
    )
    assert {response.status_code for response in responses} == {200}
    assert waiting == readers
    assert queries["get_post"] == 1
