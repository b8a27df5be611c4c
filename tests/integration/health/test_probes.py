"""Probe semantics against real dependencies that the tests take down and bring back:
a redis-server and a PostgreSQL cluster of their own, stopped and started mid-test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.security.tokens import StaticKeyResolver
from agora.services.auth.app import create_app as create_auth
from agora.services.posts.app import create_app as create_posts
from agora.services.realtime.app import create_app as create_realtime
from tests.pgcluster import PgCluster, needs_pg_tools, new_primary, remove
from tests.redis_servers import RedisProcess, redis_server

Client = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]
NO_KEYS = StaticKeyResolver({})
FAST_CHECKS = {"health_check_interval_s": 0.1, "health_check_timeout_s": 0.1}


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = redis_server(tmp_path)
    yield server
    server.kill()


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[PgCluster]:
    cluster = new_primary()
    yield cluster
    remove(cluster)


async def until(client: httpx.AsyncClient, path: str, predicate: Callable[[Any], bool]) -> Any:
    """The probe's JSON once ``predicate`` holds (the checks run in the background)."""
    async with asyncio.timeout(15):
        while True:
            response = await client.get(path)
            body = response.json()
            body["http_status"] = response.status_code
            if predicate(body):
                return body
            await asyncio.sleep(0.05)


async def test_probes_report_identity_and_every_check(
    settings: Settings, app_client: Client
) -> None:
    client = await app_client(create_auth(settings))
    live = await client.get("/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert live.headers["cache-control"] == "no-store"
    detail = (await client.get("/healthz/live")).json()
    assert detail["status"] == "ok"
    assert detail["service"] == "auth"
    assert detail["instance_id"] == settings.instance_id
    assert detail["version"]
    assert detail["uptime_s"] >= 0

    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "config": "ok"}
    full = (await client.get("/healthz/ready")).json()
    assert full["status"] == "ok"
    assert set(full["checks"]) == {"postgres", "redis", "config"}
    postgres = full["checks"]["postgres"]
    assert postgres["status"] == "ok"
    assert postgres["hard"] is True
    assert postgres["latency_ms"] >= 0
    assert postgres["checked_at"].endswith("+00:00")
    assert postgres["last_error"] is None
    assert full["checks"]["redis"]["hard"] is False  # auth falls back to PostgreSQL

    metrics = (await client.get("/metrics")).text
    assert 'agora_dependency_up{dependency="postgres"} 1.0' in metrics
    assert 'agora_dependency_up{dependency="redis"} 1.0' in metrics


@pytest.mark.parametrize(
    ("factory", "status", "overall"),
    [(create_posts, 200, "degraded"), (create_realtime, 503, "failing")],
    ids=["posts", "realtime"],
)
async def test_redis_down_degrades_posts_and_fails_realtime(
    settings: Settings,
    app_client: Client,
    redis_process: RedisProcess,
    factory: Callable[..., FastAPI],
    status: int,
    overall: str,
) -> None:
    own_redis = settings.model_copy(update={"redis_url": redis_process.url(), **FAST_CHECKS})
    client = await app_client(factory(own_redis, key_resolver=NO_KEYS))
    assert (await client.get("/readyz")).json()["status"] == "ok"

    redis_process.kill()
    down = await until(client, "/healthz/ready", lambda b: b["status"] != "ok")
    assert down["http_status"] == status
    assert down["status"] == overall
    assert down["checks"]["redis"]["status"] == "failing"
    assert down["checks"]["redis"]["last_error"]
    assert down["checks"]["postgres"]["status"] == "ok"
    short = await client.get("/readyz")
    assert short.status_code == status
    if status == 503:
        assert short.json()["failing"] == ["redis"]  # the body names the failing check
    assert (await client.get("/healthz")).status_code == 200  # liveness never depends on it
    assert 'agora_dependency_up{dependency="redis"} 0.0' in (await client.get("/metrics")).text

    redis_process.start()
    back = await until(client, "/healthz/ready", lambda b: b["status"] == "ok")
    assert back["http_status"] == 200
    assert back["checks"]["redis"]["last_error"] == down["checks"]["redis"]["last_error"]


@needs_pg_tools
async def test_postgres_down_fails_readiness_and_recovers(
    settings: Settings, app_client: Client, postgres_cluster: PgCluster
) -> None:
    own_db = settings.model_copy(update={"database_url": postgres_cluster.url, **FAST_CHECKS})
    client = await app_client(create_posts(own_db, key_resolver=NO_KEYS))
    assert (await client.get("/readyz")).status_code == 200

    postgres_cluster.stop("immediate")
    try:
        down = await until(client, "/readyz", lambda b: b["http_status"] == 503)
        assert down["status"] == "failing"
        assert down["failing"] == ["postgres"]
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/healthz/live")).status_code == 200
    finally:
        postgres_cluster.start()
    back = await until(client, "/healthz/ready", lambda b: b["http_status"] == 200)
    assert back["status"] == "ok"
    assert back["checks"]["postgres"]["last_error"]


async def test_readiness_fails_as_soon_as_shutdown_begins(
    settings: Settings, app_client: Client
) -> None:
    app = create_posts(settings, key_resolver=NO_KEYS)
    client = await app_client(app)
    assert (await client.get("/readyz")).status_code == 200
    app.lifecycle.begin_shutdown()
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["shutting_down"] is True
    assert "failing" not in ready.json()  # every check still passes: it is the shutdown
    assert (await client.get("/healthz")).status_code == 200
