"""Route templates of requests answered before routing ran."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI

from agora.observability.route_templates import route_template


def _app() -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/api/v1/posts")

    @router.get("/feed")
    async def feed() -> None: ...

    @router.get("/{post_id}")
    async def read(post_id: int) -> None: ...

    @router.delete("/{post_id}")
    async def delete(post_id: int) -> None: ...

    @router.put("/follows/{user_id}")
    async def follow(user_id: int) -> None: ...

    app.include_router(router)
    return app


def _scope(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "app": app, "method": method, "path": path}


def test_an_unrouted_request_gets_the_template_routing_would_have_chosen() -> None:
    app = _app()
    assert route_template(_scope(app, "GET", "/api/v1/posts/feed")) == "/api/v1/posts/feed"
    assert route_template(_scope(app, "GET", "/api/v1/posts/42")) == "/api/v1/posts/{post_id}"
    assert route_template(_scope(app, "DELETE", "/api/v1/posts/7")) == "/api/v1/posts/{post_id}"
    put = _scope(app, "PUT", "/api/v1/posts/follows/9")
    assert route_template(put) == "/api/v1/posts/follows/{user_id}"


def test_ids_and_unknown_paths_never_become_labels() -> None:
    app = _app()
    assert route_template(_scope(app, "GET", "/api/v1/posts/42/extra")) == "unmatched"
    assert route_template(_scope(app, "GET", "/nothing/here")) == "unmatched"
    # The right path with a method it does not serve is still that route (a 405).
    assert route_template(_scope(app, "POST", "/api/v1/posts/follows/9")) == (
        "/api/v1/posts/follows/{user_id}"
    )


def test_routing_s_own_answer_wins_and_no_app_is_unmatched() -> None:
    app = _app()
    routed = _scope(app, "GET", "/api/v1/posts/feed")
    routed["route"] = type("Route", (), {"path": "/chosen/by/router"})()
    assert route_template(routed) == "/chosen/by/router"
    assert route_template({"type": "http", "method": "GET", "path": "/x"}) == "unmatched"
