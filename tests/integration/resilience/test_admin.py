"""The breaker admin endpoints on a service's own port: off without a token, token-guarded,
and a reset really closes an open breaker of this instance."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from agora.app import build_app
from agora.config import Settings
from agora.resilience.breaker import BreakerState
from agora.resilience.registry import Breakers
from agora.runtime import ServiceApp

Client = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]
TOKEN = "a-long-enough-admin-token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_endpoints_are_disabled_without_a_token(
    settings: Settings, app_client: Client
) -> None:
    client = await app_client(build_app("posts", settings, routers=[]))
    for method, path in (("GET", "/admin/breakers"), ("POST", "/admin/breakers/redis/reset")):
        response = await client.request(method, path, headers=bearer(TOKEN))
        assert response.status_code == 404


@pytest.fixture
async def admin_app(
    settings: Settings, app_client: Client
) -> tuple[ServiceApp[Any], httpx.AsyncClient]:
    # model_copy skips validation: the field must hold a SecretStr as validation would make it.
    app: ServiceApp[Any] = build_app(
        "posts", settings.model_copy(update={"admin_token": SecretStr(TOKEN)}), routers=[]
    )
    return app, await app_client(app)


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong-token-of-some-length"), {"Authorization": TOKEN}, bearer(TOKEN[:-1])],
)
async def test_a_missing_or_wrong_token_is_refused(
    admin_app: tuple[ServiceApp[Any], httpx.AsyncClient], headers: dict[str, str]
) -> None:
    _, client = admin_app
    response = await client.post("/admin/breakers/postgres/reset", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_admin_token"


async def test_list_and_reset(admin_app: tuple[ServiceApp[Any], httpx.AsyncClient]) -> None:
    app, client = admin_app
    breakers: Breakers = app.runtime.infra.breakers
    for _ in range(breakers.postgres.failure_threshold):
        breakers.postgres.record_failure()
    assert breakers.postgres.state is BreakerState.OPEN

    listed = await client.get("/admin/breakers", headers=bearer(TOKEN))
    assert listed.status_code == 200
    states = {b["name"]: b["state"] for b in listed.json()["breakers"]}
    assert states == {"postgres": "open", "redis": "closed", "jwks": "closed"}

    reset = await client.post("/admin/breakers/postgres/reset", headers=bearer(TOKEN))
    assert reset.status_code == 204
    assert breakers.postgres.state is BreakerState.CLOSED

    unknown = await client.post("/admin/breakers/nosuch/reset", headers=bearer(TOKEN))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_breaker"
