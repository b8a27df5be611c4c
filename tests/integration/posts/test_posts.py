"""Create, read and delete posts; content rules; authentication."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from agora.security.keys import generate_signing_key
from tests.conftest import TokenFactory
from tests.integration.posts.conftest import Headers

CreatePost = Callable[..., Awaitable[dict[str, Any]]]


async def test_create_returns_the_post(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str]
) -> None:
    alice = make_user()
    response = await client.post(
        "/api/v1/posts", json={"content": "  hello, world  "}, headers=auth(alice)
    )
    assert response.status_code == 201
    post = response.json()
    assert set(post) == {"id", "author_id", "content", "like_count", "liked_by_me", "created_at"}
    assert uuid.UUID(post["id"])
    assert post["author_id"] == alice
    assert post["content"] == "hello, world"
    assert post["like_count"] == 0
    assert post["liked_by_me"] is False
    assert datetime.fromisoformat(post["created_at"]).utcoffset() is not None


async def test_get_returns_the_stored_post(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:
    alice, bob = make_user(), make_user()
    created = await create_post(alice, "first post")
    response = await client.get(f"/api/v1/posts/{created['id']}", headers=auth(bob))
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize("post_id", [str(uuid.uuid4()), "not-a-uuid", "123"])
async def test_get_unknown_or_malformed_id_is_404(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], post_id: str
) -> None:
    response = await client.get(f"/api/v1/posts/{post_id}", headers=auth(make_user()))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["request_id"]


async def test_author_deletes_own_post(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    db: Any,
) -> None:
    alice = make_user()
    post = await create_post(alice)
    response = await client.delete(f"/api/v1/posts/{post['id']}", headers=auth(alice))
    assert response.status_code == 204
    assert response.content == b""
    assert await db.fetchval("SELECT count(*) FROM posts") == 0
    again = await client.delete(f"/api/v1/posts/{post['id']}", headers=auth(alice))
    assert again.status_code == 404
    gone = await client.get(f"/api/v1/posts/{post['id']}", headers=auth(alice))
    assert gone.status_code == 404


async def test_only_the_author_may_delete(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    create_post: CreatePost,
    db: Any,
) -> None:
    alice, mallory = make_user(), make_user()
    post = await create_post(alice)
    response = await client.delete(f"/api/v1/posts/{post['id']}", headers=auth(mallory))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert await db.fetchval("SELECT count(*) FROM posts") == 1


@pytest.mark.parametrize("post_id", [str(uuid.uuid4()), "nope"])
async def test_delete_unknown_post_is_404(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], post_id: str
) -> None:
    response = await client.delete(f"/api/v1/posts/{post_id}", headers=auth(make_user()))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("<script>alert(1)</script>hi", "hi"),
        ("<b>bold</b> and <i>italic</i>", "bold and italic"),
        ('<img src=x onerror="alert(1)">caption', "caption"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;ok", "ok"),
        ("<title><img src=x onerror=alert(1)></title>t", "t"),
        ("Tom &amp; Jerry: 1 < 2 > 0 <3", "Tom & Jerry: 1 < 2 > 0 <3"),
        ("line one\r\nline two\ttab", "line one\nline two\ttab"),
        ("Cafe\u0301", "Caf\u00e9"),
    ],
)
async def test_content_is_stored_as_plain_text(
    client: httpx.AsyncClient,
    auth: Headers,
    make_user: Callable[[], str],
    db: Any,
    raw: str,
    stored: str,
) -> None:
    response = await client.post("/api/v1/posts", json={"content": raw}, headers=auth(make_user()))
    assert response.status_code == 201, response.text
    assert response.json()["content"] == stored
    assert await db.fetchval("SELECT content FROM posts") == stored


async def test_script_markup_never_comes_back(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str]
) -> None:
    alice = make_user()
    created = await client.post(
        "/api/v1/posts", json={"content": "<script>alert(1)</script>hi"}, headers=auth(alice)
    )
    fetched = await client.get(f"/api/v1/posts/{created.json()['id']}", headers=auth(alice))
    for response in (created, fetched):
        assert "<" not in response.json()["content"]
        assert "script" not in response.text


@pytest.mark.parametrize(
    "content",
    [
        "",
        "   \n\t ",
        "<p></p>",
        "<script>only a script</script>",
        "x" * 501,
        "é" * 501,
        "<b>" + "y" * 501 + "</b>",
        "z" * 20_000,
    ],
    ids=[
        "empty",
        "blank",
        "empty-markup",
        "script-only",
        "501",
        "501-accents",
        "501-in-markup",
        "huge",
    ],
)
async def test_content_outside_1_to_500_characters_is_422(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], db: Any, content: str
) -> None:
    response = await client.post(
        "/api/v1/posts", json={"content": content}, headers=auth(make_user())
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "content"
    assert await db.fetchval("SELECT count(*) FROM posts") == 0


async def test_content_of_exactly_500_characters_is_accepted(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str]
) -> None:
    content = "a" * 499 + "é"
    response = await client.post(
        "/api/v1/posts", json={"content": f"<p>{content}</p>"}, headers=auth(make_user())
    )
    assert response.status_code == 201
    assert response.json()["content"] == content


@pytest.mark.parametrize(
    "content", ["nul\x00byte", "bell\x07", "esc\x1b[31mred", "del\x7f", "c1\x85", "&#12;ff"]
)
async def test_control_characters_are_422(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], db: Any, content: str
) -> None:
    response = await client.post(
        "/api/v1/posts", json={"content": content}, headers=auth(make_user())
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert await db.fetchval("SELECT count(*) FROM posts") == 0


@pytest.mark.parametrize(
    "body", [{}, {"content": 5}, {"content": None}, {"content": "ok", "like_count": 9}]
)
async def test_malformed_bodies_are_422(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], body: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/posts", json=body, headers=auth(make_user()))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_invalid_json_is_400(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str]
) -> None:
    headers = {**auth(make_user()), "Content-Type": "application/json"}
    response = await client.post("/api/v1/posts", content=b"{nope", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/posts"),
        ("GET", "/api/v1/posts/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/api/v1/posts/00000000-0000-0000-0000-000000000000"),
        ("PUT", "/api/v1/posts/00000000-0000-0000-0000-000000000000/like"),
        ("DELETE", "/api/v1/posts/00000000-0000-0000-0000-000000000000/like"),
        ("GET", "/api/v1/posts/feed"),
        ("GET", "/api/v1/posts/notifications"),
        ("GET", "/api/v1/posts/users/00000000-0000-0000-0000-000000000000"),
        ("PUT", "/api/v1/posts/follows/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/api/v1/posts/follows/00000000-0000-0000-0000-000000000000"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer "]
)
async def test_every_endpoint_requires_a_valid_bearer_token(
    client: httpx.AsyncClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.request(method, path, headers=headers, json={"content": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"unauthenticated", "invalid_token"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_and_foreign_tokens_are_rejected(
    client: httpx.AsyncClient, tokens: TokenFactory, make_user: Callable[[], str], db: Any
) -> None:
    alice = make_user()
    expired = tokens(alice, now=1_000_000_000)
    response = await client.post(
        "/api/v1/posts", json={"content": "x"}, headers={"Authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"

    stranger = tokens.issuer.issue(alice, generate_signing_key())
    response = await client.post(
        "/api/v1/posts", json={"content": "x"}, headers={"Authorization": f"Bearer {stranger}"}
    )
    assert response.status_code == 401
    assert await db.fetchval("SELECT count(*) FROM posts") == 0


async def test_token_of_a_deleted_account_cannot_post(
    client: httpx.AsyncClient, auth: Headers, db: Any
) -> None:
    response = await client.post(
        "/api/v1/posts", json={"content": "ghost"}, headers=auth(str(uuid.uuid4()))
    )
    assert response.status_code == 401
    assert await db.fetchval("SELECT count(*) FROM posts") == 0


async def test_domain_counters_count_real_changes_only(
    client: httpx.AsyncClient, auth: Headers, make_user: Callable[[], str], create_post: CreatePost
) -> None:

    names = ("agora_posts_created", "agora_likes", "agora_follows", "agora_notifications_sent")

    def values() -> list[float]:
        return [REGISTRY.get_sample_value(f"{name}_total") or 0.0 for name in names]

    before = values()
    alice, bob = make_user(), make_user()
    post = await create_post(alice)
    for _ in range(2):
        await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(bob))
        await client.put(f"/api/v1/posts/follows/{alice}", headers=auth(bob))
    await client.put(f"/api/v1/posts/{post['id']}/like", headers=auth(alice))
    assert [after - old for after, old in zip(values(), before, strict=True)] == [1, 2, 1, 2]
