"""Access lines and request context through a real app (in-process, real PostgreSQL and Redis)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from fastapi import APIRouter, FastAPI

from agora.app import build_app
from agora.config import Settings
from agora.observability.logging import get_logger
from agora.services.posts.app import create_app as create_posts
from tests.conftest import TokenFactory
from tests.log_capture import JsonLines

OpenClient = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]


async def test_every_line_of_a_request_names_it(
    json_logs: JsonLines,
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    app_client: OpenClient,
) -> None:
    # Feed is a hot route: successful requests are sampled away at ratio 0, errors never.
    sampled = settings.model_copy(update={"log_sample_ratio": 0.0})
    client = await app_client(create_posts(sampled, key_resolver=tokens.resolver))
    alice = make_user()
    headers = {"Authorization": f"Bearer {tokens(alice)}", "x-request-id": "req-from-gateway-1"}
    json_logs()
    created = await client.post("/api/v1/posts", json={"content": "hello"}, headers=headers)
    assert created.status_code == 201
    assert (await client.get("/api/v1/posts/feed", headers=headers)).status_code == 200
    bad = await client.get("/api/v1/posts/feed?cursor=nonsense", headers=headers)
    assert bad.status_code == 400
    await client.get("/healthz")
    access = [line for line in json_logs() if line["message"] == "request"]

    assert [line["http.route"] for line in access] == ["/api/v1/posts", "/api/v1/posts/feed"]
    post, error = access
    assert post["http.request.id"] == "req-from-gateway-1"
    assert post["user.id"] == alice
    assert post["http.request.method"] == "POST"
    assert post["url.path"] == "/api/v1/posts"
    assert post["http.response.status_code"] == 201
    assert post["event.duration"] > 0
    assert post["service.name"] == "agora-posts"
    assert error["http.response.status_code"] == 400
    assert error["log.level"] == "info"


async def test_an_unhandled_error_is_logged_with_its_request(
    json_logs: JsonLines, settings: Settings, app_client: OpenClient
) -> None:
    router = APIRouter()
    log = get_logger("agora.test")

    @router.get("/api/v1/posts/boom/{item_id}")
    async def boom(item_id: str) -> None:
        log.info("about to fail", item=item_id)
        raise RuntimeError("broken for someone@example.com")

    client = await app_client(build_app("posts", settings, routers=[router]))
    json_logs()
    response = await client.get("/api/v1/posts/boom/42", headers={"x-request-id": "req-2"})
    assert response.status_code == 500
    lines = json_logs()
    before, failure, access = (
        next(line for line in lines if line["message"] == message)
        for message in ("about to fail", "unhandled error", "request")
    )
    for line in (before, failure, access):
        assert line["http.request.id"] == "req-2"
        assert line["http.route"] == "/api/v1/posts/boom/{item_id}"
    assert failure["log.level"] == "error"
    assert "RuntimeError" in failure["error.stack_trace"]
    assert "someone@example.com" not in str(lines)
    assert response.json()["error"]["request_id"] == "req-2"
