"""Traces across real processes, received by a real OTLP/HTTP endpoint inside the test.

One request to posts (continuing a trace the "gateway" started) must produce one trace with:
posts' server span, its JWKS call to auth (and auth's server span under it), its SQL and Redis
spans, the event publish, and realtime's delivery of the event over WebSocket.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.e2e.conftest import Cluster, service_env
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def traced_cluster(
    database_url: str,
    redis_url: str,
    clean_state: None,  # noqa: ARG001  # requested for its side effect
    tmp_path: Path,
    receiver: OtlpReceiver,
) -> Iterator[Cluster]:
    env = service_env(
        database_url,
        redis_url,
        AGORA_OTLP_ENDPOINT=receiver.endpoint,
        # Only the caller's decision counts: the test's traceparent says "sampled".
        AGORA_TRACE_SAMPLE_RATIO="0",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    running = Cluster(env=env, workdir=tmp_path)
    yield running
    running.stop_all()


async def _user(auth: httpx.AsyncClient, name: str) -> tuple[str, str]:
    registered = await auth.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    login = await auth.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    return str(registered.json()["id"]), str(login.json()["access_token"])


def _one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, [(s.service, s.name) for s in spans]
    return found[0]


async def test_one_request_is_one_trace_across_services(  # noqa: PLR0915  # one story, step by step: its order is the assertion
    traced_cluster: Cluster, receiver: OtlpReceiver
) -> None:
    auth = traced_cluster.start("auth")
    posts = traced_cluster.start("posts")
    realtime = traced_cluster.start("realtime")
    async with httpx.AsyncClient(base_url=auth.url, timeout=10) as auth_client:
        alice, alice_token = await _user(auth_client, "alice")
        bob, bob_token = await _user(auth_client, "bob")
    trace_id, gateway_span = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{gateway_span}-01"
    ws_trace, ws_parent = secrets.token_hex(16), secrets.token_hex(8)
    async with connect(
        f"{realtime.ws_url}/ws?access_token={bob_token}",
        additional_headers={"traceparent": f"00-{ws_trace}-{ws_parent}-01"},
    ) as ws:
        async with httpx.AsyncClient(base_url=posts.url, timeout=10) as client:
            response = await client.put(
                f"/api/v1/posts/follows/{bob}",
                headers={"Authorization": f"Bearer {alice_token}", "traceparent": traceparent},
            )
            assert response.status_code in (200, 204), response.text
            # Unsampled by the caller: nothing of this trace may be exported.
            unsampled = secrets.token_hex(16)
            feed = await client.get(
                "/api/v1/posts/feed",
                headers={
                    "Authorization": f"Bearer {alice_token}",
                    "traceparent": f"00-{unsampled}-{gateway_span}-00",
                },
            )
            assert feed.status_code == 200
        async with asyncio.timeout(10):
            frame = orjson.loads(await ws.recv())
        assert frame["type"] == "notification"

    # Each process exports on its own schedule: wait for every service's part of each trace.
    # Keyed by trace too: realtime's own JWKS fetch (under the WebSocket's trace) puts an auth
    # span of the same name in an earlier batch than the one under the PUT.
    expected = {
        (trace_id, "agora-realtime", "deliver notification"),
        (trace_id, "agora-posts", "PUT /api/v1/posts/follows/{user_id}"),
        (trace_id, "agora-auth", "GET /api/v1/auth/.well-known/jwks.json"),
        (ws_trace, "agora-realtime", "WS /ws"),
    }
    spans = receiver.wait_for(
        lambda got: expected <= {(s.trace_id, s.service, s.name) for s in got}
    )
    assert receiver.paths
    assert all(path == "/v1/traces" for path in receiver.paths)
    assert not [s for s in spans if s.trace_id == unsampled]
    ours = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in ours}

    server = _one(ours, "agora-posts", "PUT /api/v1/posts/follows/{user_id}")
    assert server.kind == "SERVER"
    assert server.parent_id == gateway_span  # the caller's trace is continued
    assert server.attributes["http.route"] == "/api/v1/posts/follows/{user_id}"
    assert server.attributes["http.response.status_code"] == response.status_code

    # The JWKS fetch (posts had no keys yet) carries the trace on to auth.
    jwks_call = next(
        s
        for s in ours
        if s.service == "agora-posts"
        and s.kind == "CLIENT"
        and s.attributes.get("peer.service") == "agora-auth"
    )
    assert jwks_call.parent_id == server.span_id
    assert jwks_call.attributes.get("server.address") == "127.0.0.1"
    jwks_server = _one(ours, "agora-auth", "GET /api/v1/auth/.well-known/jwks.json")
    assert jwks_server.kind == "SERVER"
    assert jwks_server.parent_id == jwks_call.span_id

    sql = [
        s
        for s in ours
        if s.service == "agora-posts" and s.attributes.get("db.system") == "postgresql"
    ]
    assert sql
    assert all(s.kind == "CLIENT" and s.attributes.get("peer.service") == "postgresql" for s in sql)
    assert all(s.attributes.get("server.address") for s in sql)

    publish = _one(ours, "agora-posts", "publish notification")
    assert publish.kind == "PRODUCER"
    assert publish.parent_id == server.span_id
    redis_publish = next(s for s in ours if s.name == "PUBLISH")
    assert redis_publish.kind == "CLIENT"
    assert redis_publish.parent_id == publish.span_id
    assert redis_publish.attributes.get("peer.service") == "redis"

    delivery = _one(ours, "agora-realtime", "deliver notification")
    assert delivery.kind == "CONSUMER"
    assert delivery.parent_id == publish.span_id

    # Every span's parent is in the trace, except the root's (the caller's span).
    assert all(s.parent_id in by_id or s is server for s in ours)

    # The WebSocket handshake continues its caller's trace, named by route template.
    connect_span = _one(spans, "agora-realtime", "WS /ws")
    assert connect_span.kind == "SERVER"
    assert (connect_span.trace_id, connect_span.parent_id) == (ws_trace, ws_parent)
    assert "access_token" not in str(connect_span.attributes)

    # The log lines of the request name the same trace.
    lines = [orjson.loads(line) for line in posts.logs().splitlines() if line.startswith("{")]
    access = [
        line
        for line in lines
        if line.get("http.route") == "/api/v1/posts/follows/{user_id}"
        and line["message"] == "request"
    ]
    assert access
    assert access[0]["trace.id"] == trace_id
    assert access[0]["span.id"] == server.span_id
    assert access[0]["user.id"] == alice


async def test_spans_are_flushed_at_shutdown(
    traced_cluster: Cluster, receiver: OtlpReceiver
) -> None:
    # No periodic export: only the shutdown flush can deliver the span.
    auth = traced_cluster.start("auth", extra_env={"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    trace_id = secrets.token_hex(16)
    async with httpx.AsyncClient(base_url=auth.url, timeout=10) as client:
        response = await client.get(
            "/api/v1/auth/.well-known/jwks.json",
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
    assert response.status_code == 200
    assert not [s for s in receiver.spans if s.trace_id == trace_id]
    assert auth.stop() == 0
    assert [s.name for s in receiver.spans if s.trace_id == trace_id] == [
        "GET /api/v1/auth/.well-known/jwks.json"
    ]
    # Logs are flushed too: the last line of the process is there.
    assert '"message":"service stopped"' in auth.logs()
