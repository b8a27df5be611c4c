"""The cached ``GET /api/v1/posts/{id}`` answered before FastAPI's routing
(``agora.services.posts.fast_read``): the same bytes and headers the route sends, counted and
logged under the route's template, and every case it cannot answer left to the route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from agora.config import Settings
from agora.services.posts.app import create_app
from agora.services.posts.parts import PostsParts
from agora.services.posts.service import PostsService
from tests.conftest import TokenFactory

# Values that differ between two answers of the same request.
_PER_RESPONSE = {"x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit"}
_ROUTE = "/api/v1/posts/{post_id}"


def _requests(status: str) -> float:
    labels = {"service": "posts", "method": "GET", "route": _ROUTE, "status": status}
    return REGISTRY.get_sample_value("agora_http_requests_total", labels) or 0.0


def _cache_hits() -> float:
    labels = {"cache": "post", "result": "hit"}
    return REGISTRY.get_sample_value("agora_cache_requests_total", labels) or 0.0


def _stable(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, "" if k in _PER_RESPONSE else v) for k, v in response.headers.items()]


@pytest.fixture
async def posts_app(
    settings: Settings,
    tokens: TokenFactory,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
) -> tuple[FastAPI, httpx.AsyncClient]:
    app = create_app(settings, key_resolver=tokens.resolver)
    return app, await app_client(app)


def _route_calls(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The post ids the route's own ``get_post`` was asked for from now on."""
    posts: PostsService = app.runtime.parts.posts
    assert isinstance(app.runtime.parts, PostsParts)
    real = posts.get_post
    calls: list[str] = []

    async def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["post_id"])
        return await real(**kwargs)

    monkeypatch.setattr(posts, "get_post", counting)
    return calls


@pytest.mark.parametrize(
    "content",
    [
        "plain ascii",
        'quotes " and \\ backslash, é, ß, 漢字, emoji 🚀, line\u2028separator',
    ],
)
async def test_a_cached_read_is_the_routes_answer_byte_for_byte(
    posts_app: tuple[FastAPI, httpx.AsyncClient],
    tokens: TokenFactory,
    make_user: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    content: str,
) -> None:
    app, client = posts_app
    alice = make_user()
    headers = {"Authorization": f"Bearer {tokens(alice)}"}
    created = await client.post("/api/v1/posts", json={"content": content}, headers=headers)
    assert created.status_code == 201, created.text
    url = f"/api/v1/posts/{created.json()['id']}"
    calls = _route_calls(app, monkeypatch)

    by_route = await client.get(url, headers=headers)  # a miss: the route loads and fills
    assert calls == [created.json()["id"]]
    served, hits = _requests("200"), _cache_hits()
    shortcut = await client.get(url, headers=headers)
    assert calls == [created.json()["id"]], "the hit was answered by the route"

    assert shortcut.status_code == by_route.status_code == 200
    assert shortcut.content == by_route.content
    assert shortcut.json()["content"] == created.json()["content"]
    assert _stable(shortcut) == _stable(by_route)
    # Counted under the route's template, and as a cache hit, as the route's answer is.
    assert _requests("200") == served + 1
    assert _cache_hits() == hits + 1


async def test_what_the_shortcut_cannot_answer_goes_to_the_route(
    posts_app: tuple[FastAPI, httpx.AsyncClient],
    tokens: TokenFactory,
    make_user: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, client = posts_app
    alice = make_user()
    headers = {"Authorization": f"Bearer {tokens(alice)}"}
    created = await client.post("/api/v1/posts", json={"content": "hi"}, headers=headers)
    url = f"/api/v1/posts/{created.json()['id']}"
    assert (await client.get(url, headers=headers)).status_code == 200  # now cached
    calls = _route_calls(app, monkeypatch)

    anonymous = await client.get(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    bad = await client.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_token"
    missing = await client.get(
        "/api/v1/posts/00000000-0000-4000-8000-000000000000", headers=headers
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert calls == ["00000000-0000-4000-8000-000000000000"]

    # An ended session (logout elsewhere): its token's cached reads end with it.
    session = "00000000-0000-4000-8000-0000000000a1"
    in_session = {"Authorization": f"Bearer {tokens(alice, session_id=session)}"}
    assert (await client.get(url, headers=in_session)).status_code == 200
    await app.runtime.infra.revoked_sessions.end(alice, [session])  # type: ignore[attr-defined]
    ended = await client.get(url, headers=in_session)
    assert ended.status_code == 401
    assert ended.json()["error"]["code"] == "session_ended"

    # A deleted account: the limiter's round trip read the mark; the route refuses.
    await app.runtime.infra.deleted_users.mark(alice)  # type: ignore[attr-defined]
    gone = await client.get(url, headers=headers)
    assert gone.status_code == 401
    assert gone.json()["error"]["code"] == "invalid_token"
