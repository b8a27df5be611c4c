"""The behaviour every service shares through ``agora.app.build_app``: the error contract,
request ids, probes and metrics — on a real database and Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from agora.app import build_app
from agora.config import Settings
from agora.errors import Conflict

Client = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]


class Echo(BaseModel):
    name: str
    count: int


def _router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/posts")

    @router.post("/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @router.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM users -- internal detail")

    @router.get("/db-lost")
    async def db_lost() -> None:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")

    @router.get("/conflict")
    async def conflict() -> None:
        raise Conflict("already there")

    return router


@pytest.fixture
async def client(settings: Settings, app_client: Client) -> httpx.AsyncClient:
    return await app_client(build_app("posts", settings, routers=[_router()]))


def _error(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, str] = body["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nowhere")
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


async def test_wrong_method_is_a_json_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/posts/echo")
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"


async def test_malformed_json_wrong_type_and_missing_field(client: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    malformed = await client.post("/api/v1/posts/echo", content=b'{"name": ', headers=headers)
    assert malformed.status_code == 400
    assert _error(malformed)["code"] == "malformed_json"

    wrong_type = await client.post("/api/v1/posts/echo", json={"name": "a", "count": "many"})
    assert wrong_type.status_code == 422
    assert _error(wrong_type)["code"] == "validation_error"
    assert wrong_type.json()["error"]["details"][0]["field"] == "count"

    missing = await client.post("/api/v1/posts/echo", json={"name": "a"})
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["field"] == "count"


async def test_api_errors_keep_their_code_and_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/posts/conflict")
    assert response.status_code == 409
    assert _error(response) | {"request_id": ""} == {
        "code": "conflict",
        "message": "already there",
        "request_id": "",
    }


async def test_an_unhandled_error_reveals_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/posts/boom")
    assert response.status_code == 500
    assert _error(response)["code"] == "internal_error"
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_a_lost_database_connection_is_a_503_to_retry(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/posts/db-lost")
    assert response.status_code == 503
    assert _error(response)["code"] == "unavailable"
    assert response.headers["retry-after"]
    assert "middle" not in response.text


async def test_request_id_is_taken_from_the_caller_when_well_formed(
    client: httpx.AsyncClient,
) -> None:
    given = await client.get("/api/v1/posts/items/1", headers={"x-request-id": "req-123.abc"})
    assert given.headers["x-request-id"] == "req-123.abc"

    made = await client.get("/api/v1/posts/items/1")
    forged = await client.get("/api/v1/posts/items/1", headers={"x-request-id": "a b\tc"})
    assert len(made.headers["x-request-id"]) == 32
    assert forged.headers["x-request-id"] not in ("a b\tc", made.headers["x-request-id"])


async def test_metrics_label_routes_by_template_and_skip_probes(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/api/v1/posts/items/abc-123")
    await client.get("/healthz")
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/posts/items/{item_id}"' in metrics
    assert "abc-123" not in metrics
    assert 'route="/healthz"' not in metrics
