"""``/metrics`` after real traffic on the three services (in-process, real PostgreSQL and Redis):
every contract family is there, known label values are at zero from start-up, routes are
labelled by template, and probes are not traffic."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from agora.config import Settings
from agora.observability.activity import active_users
from agora.redis.access import RedisAccess
from agora.resilience import CircuitBreaker
from agora.services.auth.app import create_app as create_auth
from agora.services.posts.app import create_app as create_posts
from agora.services.realtime.app import create_app as create_realtime
from tests.conftest import TokenFactory

OpenClient = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]

CONTRACT = {
    # name in the text format (counters without the _total suffix in the parser) -> type
    "agora_http_requests": "counter",
    "agora_http_request_duration_seconds": "histogram",
    "agora_websocket_connections": "gauge",
    "agora_websocket_messages": "counter",
    "agora_db_query_duration_seconds": "histogram",
    "agora_db_pool_connections": "gauge",
    "agora_cache_requests": "counter",
    "agora_cache_hit_ratio": "gauge",
    "agora_cache_evictions": "counter",
    "agora_ratelimit_rejections": "counter",
    "agora_errors": "counter",
    "agora_circuit_breaker_state": "gauge",
    "agora_circuit_breaker_failures": "counter",
    "agora_dependency_up": "gauge",
    "agora_users_registered": "counter",
    "agora_posts_created": "counter",
    "agora_likes": "counter",
    "agora_follows": "counter",
    "agora_notifications_sent": "counter",
    "agora_active_users": "gauge",
}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


@pytest.fixture
async def clients(
    settings: Settings, tokens: TokenFactory, app_client: OpenClient
) -> tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient]:
    auth = await app_client(create_auth(settings))
    posts = await app_client(create_posts(settings, key_resolver=tokens.resolver))
    realtime = await app_client(create_realtime(settings, key_resolver=tokens.resolver))
    return auth, posts, realtime


async def test_known_series_are_zero_from_start_up(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    _, posts, realtime = clients
    text = (await posts.get("/metrics")).text
    route = "/api/v1/posts/{post_id}"
    assert (
        value(
            text,
            "agora_http_requests_total",
            service="posts",
            method="DELETE",
            route=route,
            status="500",
        )
        == 0
    )
    assert (
        value(
            text,
            "agora_http_request_duration_seconds_count",
            service="posts",
            method="GET",
            route="/api/v1/posts/feed",
        )
        is not None
    )
    for breaker in ("postgres", "redis", "jwks"):
        assert value(text, "agora_circuit_breaker_state", breaker=breaker) is not None
        assert value(text, "agora_circuit_breaker_failures_total", breaker=breaker) is not None
    for pool in ("primary", "replica"):
        for state in ("active", "idle", "waiting"):
            assert value(text, "agora_db_pool_connections", state=state, pool=pool) is not None
    assert value(text, "agora_errors_total", type="internal_error") is not None
    text = (await realtime.get("/metrics")).text
    assert value(text, "agora_websocket_connections", service="realtime") == 0
    # Counters are process-wide and other tests in this process may have sent frames: the
    # series must exist from start-up (a fresh service reports 0), whatever its value here.
    sent = value(text, "agora_websocket_messages_total", direction="out", type="notification")
    assert sent is not None
    assert (
        value(
            text,
            "agora_http_requests_total",
            service="realtime",
            method="GET",
            route="/api/v1/realtime/presence/{user_id}",
            status="200",
        )
        is not None
    )


async def test_every_contract_family_after_real_traffic(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient],
    settings: Settings,
    tokens: TokenFactory,
    make_user: Callable[..., str],
) -> None:
    auth, posts, _ = clients
    before = (await posts.get("/metrics")).text
    registered = await auth.post(
        "/api/v1/auth/register",
        json={"username": "metric_user", "email": "m@example.com", "password": "a long passphrase"},
    )
    assert registered.status_code == 201
    alice, bob = make_user(), make_user()
    headers = {"Authorization": f"Bearer {tokens(alice)}"}
    post = (await posts.post("/api/v1/posts", json={"content": "hi"}, headers=headers)).json()
    assert (await posts.get(f"/api/v1/posts/{post['id']}", headers=headers)).status_code == 200
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await posts.get(f"/api/v1/posts/{missing}", headers=headers)).status_code == 404
    assert (await posts.put(f"/api/v1/posts/follows/{bob}", headers=headers)).status_code < 300
    bob_headers = {"Authorization": f"Bearer {tokens(bob)}"}
    assert (await posts.put(f"/api/v1/posts/{post['id']}/like", headers=bob_headers)).is_success
    for probe in ("/healthz", "/readyz", "/healthz/live", "/healthz/ready"):
        await posts.get(probe)
    redis = Redis.from_url(settings.require_redis_url())
    try:
        await active_users.flush(RedisAccess(redis, CircuitBreaker("redis")))
    finally:
        await redis.aclose()
    text = (await posts.get("/metrics")).text

    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    for name, kind in CONTRACT.items():
        assert families.get(name) == kind, name

    def grew(name: str, **labels: str) -> float:
        return (value(text, name, **labels) or 0) - (value(before, name, **labels) or 0)

    get_post = {"service": "posts", "method": "GET", "route": "/api/v1/posts/{post_id}"}
    assert grew("agora_http_requests_total", **get_post, status="200") == 1
    assert grew("agora_http_requests_total", **get_post, status="404") == 1
    assert grew("agora_http_request_duration_seconds_count", **get_post) == 2
    assert grew("agora_errors_total", type="not_found") >= 1
    assert grew("agora_posts_created_total") == 1
    assert grew("agora_follows_total") == 1
    assert grew("agora_likes_total") == 1
    assert grew("agora_notifications_sent_total") >= 2
    assert grew("agora_users_registered_total") == 1
    assert (value(text, "agora_active_users") or 0) >= 2  # alice and bob, from Redis
    # Route templates, never raw ids; probes and /metrics are not traffic.
    assert post["id"] not in text
    assert missing not in text
    for path in ("/healthz", "/readyz", "/metrics"):
        assert f'route="{path}' not in text
