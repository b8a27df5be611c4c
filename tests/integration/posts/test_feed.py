"""Home feed and user timelines: membership, order, keyset pagination, cursors, limits."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agora.services.posts.pagination import encode_cursor
from tests.integration.posts.conftest import Headers

CreatePost = Callable[..., Awaitable[dict[str, Any]]]


async def _walk(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], limit: int
) -> list[list[dict[str, Any]]]:
    """Every page of a list endpoint, following next_cursor until it is null."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not terminate"


async def _follow(client: httpx.AsyncClient, auth: Headers, follower: str, followee: str) -> None:
    response = await client.put(f"/api/v1/posts/follows/{followee}", headers=auth(follower))
    assert response.status_code == 200


async def _posts_of(client: httpx.AsyncClient, auth: Headers, user: str) -> set[str]:
    response = await client.get(f"/api/v1/posts/users/{user}", headers=auth(user))
    return {item["id"] for item in response.json()["items"]}


async def test_feed_holds_own_and_followed_posts_newest_first(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice, bob, carol, dave = (make_user() for _ in range(4))
    await _follow(client, auth, alice, bob)
    await _follow(client, auth, alice, dave)
    await _follow(client, auth, carol, alice)  # the other direction: no effect on alice's feed
    expected = []
    for author in (bob, carol, alice, dave, bob, carol, alice):
        post = await create_post(author, f"by {author}")
        if author != carol:
            expected.append(post["id"])
    await client.delete(f"/api/v1/posts/follows/{dave}", headers=auth(alice))
    unfollowed = await _posts_of(client, auth, dave)
    expected = [pid for pid in expected if pid not in unfollowed]

    response = await client.get("/api/v1/posts/feed", headers=auth(alice))
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["items"]] == list(reversed(expected))
    assert {item["author_id"] for item in body["items"]} == {alice, bob}
    assert body["next_cursor"] is None
    stamps = [item["created_at"] for item in body["items"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_feed_of_a_new_user_is_empty(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    await create_post(make_user())
    response = await client.get("/api/v1/posts/feed", headers=auth(make_user()))
    assert response.json() == {"items": [], "next_cursor": None}


async def test_feed_shows_liked_by_me(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice, bob = make_user(), make_user()
    await _follow(client, auth, alice, bob)
    liked, other = await create_post(bob, "liked"), await create_post(bob, "other")
    await client.put(f"/api/v1/posts/{liked['id']}/like", headers=auth(alice))
    items = (await client.get("/api/v1/posts/feed", headers=auth(alice))).json()["items"]
    assert [(i["id"], i["liked_by_me"], i["like_count"]) for i in items] == [
        (other["id"], False, 0),
        (liked["id"], True, 1),
    ]


@pytest.mark.parametrize(("count", "limit"), [(25, 7), (21, 7), (5, 20), (1, 1), (0, 3)])
async def test_feed_pagination_visits_every_post_once(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    count: int,
    limit: int,
) -> None:
    alice, bob = make_user(), make_user()
    await _follow(client, auth, alice, bob)
    ids = [(await create_post(bob if i % 2 else alice, f"post {i}"))["id"] for i in range(count)]
    pages = await _walk(client, "/api/v1/posts/feed", auth(alice), limit)
    seen = [item["id"] for page in pages for item in page]
    assert seen == list(reversed(ids))
    assert all(len(page) == limit for page in pages[:-1])
    # An exact multiple of the page size ends on a full page, not on an empty extra one.
    assert len(pages) == max(1, -(-count // limit))


async def test_posts_with_equal_timestamps_are_paged_by_id(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], db: Any
) -> None:
    alice = make_user()
    await db.execute(
        "INSERT INTO posts (author_id, content, created_at) "
        "SELECT $1, 'same instant ' || n, '2026-01-01T00:00:00Z' FROM generate_series(1, 12) n",
        uuid.UUID(alice),
    )
    expected = [str(r["id"]) for r in await db.fetch("SELECT id FROM posts ORDER BY id DESC")]
    for url in ("/api/v1/posts/feed", f"/api/v1/posts/users/{alice}"):
        pages = await _walk(client, url, auth(alice), 5)
        assert [item["id"] for page in pages for item in page] == expected


async def test_new_posts_between_pages_cause_no_duplicates_or_skips(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice, bob = make_user(), make_user()
    await _follow(client, auth, alice, bob)
    original = [(await create_post(bob, f"old {i}"))["id"] for i in range(10)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/api/v1/posts/feed", params=params, headers=auth(alice))).json()
        seen.extend(item["id"] for item in body["items"])
        # Someone posts while alice reads: the next pages must not shift.
        await create_post(bob, "new while paging")
        await create_post(alice, "mine, also new")
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(original))


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "bm90IGEgY3Vyc29y",  # "not a cursor"
        "djF8",  # "v1|", truncated
        encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4()) + "A",
        "x" * 500,
        "djF8MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHxub3QtYS11dWlk",  # v1|<time>|not-a-uuid
        "djJ8MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHwwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA",
    ],
)
@pytest.mark.parametrize("path", ["/feed", "/notifications", "/users/{user}"])
async def test_invalid_cursor_is_400(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], cursor: str, path: str
) -> None:
    alice = make_user()
    response = await client.get(
        "/api/v1/posts" + path.format(user=alice), params={"cursor": cursor}, headers=auth(alice)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5"])
@pytest.mark.parametrize("path", ["/feed", "/notifications", "/users/{user}"])
async def test_limit_outside_1_to_100_is_422(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], limit: str, path: str
) -> None:
    alice = make_user()
    response = await client.get(
        "/api/v1/posts" + path.format(user=alice), params={"limit": limit}, headers=auth(alice)
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_limit_defaults_to_20_and_allows_1_to_100(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], db: Any
) -> None:
    alice = make_user()
    await db.execute(
        "INSERT INTO posts (author_id, content) SELECT $1, 'p' || n FROM generate_series(1, 120) n",
        uuid.UUID(alice),
    )
    for params, size in (({}, 20), ({"limit": 1}, 1), ({"limit": 100}, 100)):
        body = (await client.get("/api/v1/posts/feed", params=params, headers=auth(alice))).json()
        assert len(body["items"]) == size
        assert body["next_cursor"] is not None


async def test_fixed_paths_are_not_read_as_post_ids(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str]
) -> None:
    alice, bob = make_user(), make_user()
    headers = auth(alice)
    assert (await client.get("/api/v1/posts/feed", headers=headers)).status_code == 200
    assert (await client.get("/api/v1/posts/notifications", headers=headers)).status_code == 200
    assert (await client.get(f"/api/v1/posts/users/{bob}", headers=headers)).status_code == 200
    assert (await client.put(f"/api/v1/posts/follows/{bob}", headers=headers)).status_code == 200
    assert (await client.delete(f"/api/v1/posts/follows/{bob}", headers=headers)).json() == {
        "user_id": bob,
        "following": False,
    }


async def test_user_posts_lists_only_that_user(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice, bob, viewer = make_user(), make_user(), make_user()
    mine = [(await create_post(alice, f"a{i}"))["id"] for i in range(5)]
    await create_post(bob, "not alice")
    await client.put(f"/api/v1/posts/{mine[0]}/like", headers=auth(viewer))
    pages = await _walk(client, f"/api/v1/posts/users/{alice}", auth(viewer), 2)
    items = [item for page in pages for item in page]
    assert [item["id"] for item in items] == list(reversed(mine))
    assert {item["author_id"] for item in items} == {alice}
    assert [item["liked_by_me"] for item in items] == [False] * 4 + [True]


async def test_user_without_posts_has_an_empty_list(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str]
) -> None:
    alice = make_user()
    response = await client.get(f"/api/v1/posts/users/{make_user()}", headers=auth(alice))
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("user_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_user_posts_of_unknown_user_is_404(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], user_id: str
) -> None:
    response = await client.get(f"/api/v1/posts/users/{user_id}", headers=auth(make_user()))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
