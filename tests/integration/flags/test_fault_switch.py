"""The fault switch in a real posts app on real PostgreSQL and Redis: an injected database
error is the normal 503 contract (JSON body, Retry-After, no partial write), an injected Redis
error is the documented fallback to PostgreSQL, and every fault is counted and logged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from agora.config import Settings
from agora.services.posts.app import create_app
from tests.conftest import TokenFactory
from tests.log_capture import JsonLines

OpenClient = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]


def faults_injected(dependency: str, kind: str) -> float:
    value = REGISTRY.get_sample_value(
        "agora_faults_injected_total", {"dependency": dependency, "kind": kind}
    )
    assert value is not None
    return value


def write_faults(path: Path, **faults: dict[str, Any]) -> None:
    flags = {
        f"fault-{dependency}": {
            "variants": {"off": {}, "on": plan},
            "defaultVariant": "off",
            "rollout": {"variant": "on", "percent": 100},
        }
        for dependency, plan in faults.items()
    }
    path.write_text(json.dumps({"flags": flags}), encoding="utf-8")


async def until(send: Callable[[], Awaitable[httpx.Response]], status: int) -> httpx.Response:
    """The first answer with ``status`` once the reload (every 0.05 s) has seen the file."""
    async with asyncio.timeout(10):
        while True:
            response = await send()
            if response.status_code == status:
                return response
            await asyncio.sleep(0.05)


@pytest.fixture
def flags_path(tmp_path: Path) -> Path:
    path = tmp_path / "flags.json"
    path.write_text('{"flags": {}}', encoding="utf-8")
    return path


@pytest.fixture
async def client(
    settings: Settings, tokens: TokenFactory, app_client: OpenClient, flags_path: Path
) -> httpx.AsyncClient:
    faulty = settings.model_copy(
        update={
            "flags_file": str(flags_path),
            "flags_reload_s": 0.05,
            "breaker_open_s": 0.3,
            "db_retry_attempts": 2,
        }
    )
    return await app_client(create_app(faulty, key_resolver=tokens.resolver))


async def test_an_injected_database_error_is_the_503_contract_and_is_counted(
    client: httpx.AsyncClient,
    flags_path: Path,
    tokens: TokenFactory,
    make_user: Callable[..., str],
    database_url: str,
    json_logs: JsonLines,
) -> None:
    writer = {"Authorization": f"Bearer {tokens(make_user())}"}
    # A reader whose feed was never read: not in the cache, so the read needs PostgreSQL.
    reader = {"Authorization": f"Bearer {tokens(make_user())}"}

    before = faults_injected("postgres", "error")
    write_faults(flags_path, postgres={"error_percent": 100})

    accepted = 0  # posts answered 201 before the reload saw the switch (a loaded machine)

    async def post() -> httpx.Response:
        nonlocal accepted
        response = await client.post("/api/v1/posts", json={"content": "lost?"}, headers=writer)
        accepted += response.status_code == httpx.codes.CREATED
        return response

    refused = await until(post, 503)
    body = refused.json()
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["request_id"]
    assert "Traceback" not in refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert faults_injected("postgres", "error") > before

    read = await client.get("/api/v1/posts/feed", headers=reader)
    assert read.status_code == 503
    assert read.json()["error"]["code"] == "unavailable"

    # Nothing of the refused writes was stored: only the posts acknowledged before the switch.
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM posts") == accepted
    finally:
        await conn.close()

    logged = [line for line in json_logs() if line.get("message") == "fault injected"]
    assert logged, "every injected fault is logged"
    assert {(line["dependency"], line["kind"]) for line in logged} == {("postgres", "error")}

    # Switched off in the file: served again once the breaker lets a call through.
    write_faults(flags_path)
    created = await until(post, 201)
    assert created.json()["content"] == "lost?"


async def test_injected_database_latency_slows_calls_and_is_counted(
    client: httpx.AsyncClient,
    flags_path: Path,
    tokens: TokenFactory,
    make_user: Callable[..., str],
) -> None:
    headers = {"Authorization": f"Bearer {tokens(make_user())}"}
    before = faults_injected("postgres", "latency")
    write_faults(flags_path, postgres={"latency_ms": 300})
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10):
        while True:
            started = loop.time()
            response = await client.post("/api/v1/posts", json={"content": "x"}, headers=headers)
            assert response.status_code == 201
            if faults_injected("postgres", "latency") > before:
                break
            await asyncio.sleep(0.05)
    assert loop.time() - started >= 0.3


async def test_an_injected_redis_error_falls_back_to_postgres_and_is_counted(
    client: httpx.AsyncClient,
    flags_path: Path,
    tokens: TokenFactory,
    make_user: Callable[..., str],
) -> None:
    user = make_user()
    headers = {"Authorization": f"Bearer {tokens(user)}"}
    created = await client.post("/api/v1/posts", json={"content": "hi"}, headers=headers)
    assert created.status_code == 201
    before = faults_injected("redis", "error")
    write_faults(flags_path, redis={"error_percent": 100})
    async with asyncio.timeout(10):
        while faults_injected("redis", "error") == before:
            response = await client.get("/api/v1/posts/feed", headers=headers)
            # auth and posts serve from PostgreSQL without Redis (the readiness contract).
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.05)
    response = await client.get("/api/v1/posts/feed", headers=headers)
    assert response.status_code == 200
    assert [item["content"] for item in response.json()["items"]] == ["hi"]
