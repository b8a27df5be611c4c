"""Routing through the real gateway: the three API prefixes and /ws reach their services;
nothing else is reachable; Envoy's own refusals carry the error contract."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.gateway.conftest import Stack, bearer, register_and_login, unique

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway.url, timeout=10) as http:
        yield http


def test_each_prefix_reaches_its_service(stack: Stack, client: httpx.Client) -> None:
    user_id, token = register_and_login(client, unique("route"))
    me = client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user_id

    created = client.post(
        "/api/v1/posts", json={"content": "through the door"}, headers=bearer(token)
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["id"]
    fetched = client.get(f"/api/v1/posts/{post_id}", headers=bearer(token))
    assert fetched.json()["content"] == "through the door"
    liked = client.put(f"/api/v1/posts/{post_id}/like", headers=bearer(token))
    assert liked.status_code == 200, liked.text

    presence = client.get(f"/api/v1/realtime/presence/{user_id}", headers=bearer(token))
    assert presence.status_code == 200, presence.text
    assert presence.json()["online"] is False

    for response, route, cluster in [
        (me, "auth", "auth"),
        (created, "posts-write", "posts"),
        (fetched, "posts", "posts"),
        (liked, "posts", "posts"),
        (presence, "realtime", "realtime"),
    ]:
        entry = stack.gateway.access_entry(response.headers["x-request-id"])
        assert (entry["gateway.route"], entry["upstream.cluster"]) == (route, cluster)
        assert entry["http.response.status_code"] == response.status_code


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/healthz",
        "/healthz/live",
        "/healthz/ready",
        "/readyz",
        "/stats",
        "/clusters",
        "/ready",
        "/api/v1/auth/../../metrics",
        "/api/v1/auth/%2e%2e/%2e%2e/readyz",
        "/api/v1/authx/register",
        "/api/v2/posts",
    ],
)
def test_nothing_else_is_routed(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, f"{path}: {response.status_code} {response.text}"
    body = response.json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert "agora_http_requests_total" not in response.text


def test_admin_and_probes_of_services_stay_on_their_own_ports(stack: Stack) -> None:
    """What the gateway hides is still there for operators, on the instance's own port."""
    auth = stack.service("auth")[0]
    assert httpx.get(f"{auth.url}/metrics", timeout=5).status_code == 200
    assert httpx.get(f"{stack.gateway.admin_url}/ready", timeout=5).status_code == 200


def test_protected_routes_need_a_token_at_the_edge(stack: Stack, client: httpx.Client) -> None:
    for method, path in [
        ("GET", "/api/v1/posts/feed"),
        ("POST", "/api/v1/posts"),
        ("GET", f"/api/v1/realtime/presence/{uuid.uuid4()}"),
    ]:
        response = client.request(method, path, json={"content": "x"} if method == "POST" else None)
        assert response.status_code == 401, f"{path}: {response.text}"
        error = response.json()["error"]
        assert error["code"] == "unauthenticated"
        assert error["request_id"] == response.headers["x-request-id"]
        entry = stack.gateway.access_entry(response.headers["x-request-id"])
        assert entry["upstream.address"] in (None, "-"), entry


def _receive(ws: ClientConnection, of_type: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        message: dict[str, Any] = orjson.loads(ws.recv(timeout=deadline - time.monotonic()))
        if message["type"] == of_type:
            return message


def test_websocket_through_the_gateway(stack: Stack, client: httpx.Client) -> None:
    reader_id, reader_token = register_and_login(client, unique("reader"))
    author_id, author_token = register_and_login(client, unique("author"))
    follow = client.put(f"/api/v1/posts/follows/{author_id}", headers=bearer(reader_token))
    assert follow.status_code == 200, follow.text

    with connect(f"{stack.gateway.ws_url}/ws?access_token={reader_token}") as ws:
        ws.send('{"type": "ping"}')
        assert _receive(ws, "pong") == {"type": "pong"}
        online = client.get(f"/api/v1/realtime/presence/{reader_id}", headers=bearer(author_token))
        assert online.json()["online"] is True
        created = client.post(
            "/api/v1/posts", json={"content": "hello socket"}, headers=bearer(author_token)
        )
        assert created.status_code == 201
        assert _receive(ws, "post.created")["post"]["content"] == "hello socket"

    # The token may also come in the Authorization header.
    with connect(f"{stack.gateway.ws_url}/ws", additional_headers=bearer(reader_token)) as ws:
        ws.send('{"type": "ping"}')
        assert _receive(ws, "pong") == {"type": "pong"}

    # A token given in the query string never reaches the gateway's log.
    time.sleep(1.5)
    assert reader_token not in stack.gateway.logs()


def test_websocket_without_a_valid_token_is_refused_at_the_edge(stack: Stack) -> None:
    for url in (f"{stack.gateway.ws_url}/ws", f"{stack.gateway.ws_url}/ws?access_token=nope"):
        with pytest.raises(InvalidStatus) as refused, connect(url):
            pass
        assert refused.value.response.status_code == 401


def test_a_wrong_method_keeps_its_405_and_allow_through_the_gateway(client: httpx.Client) -> None:
    """The service's 405 is an upstream answer, not one of Envoy's local replies: the gateway
    must pass its status, its ``Allow`` and its error body unchanged."""
    _, token = register_and_login(client, unique("allow"))
    response = client.post(f"/api/v1/posts/{uuid.uuid4()}", headers=bearer(token))
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "DELETE, GET"
    assert response.json()["error"]["code"] == "method_not_allowed"
    response = client.put("/api/v1/auth/me", headers=bearer(token))
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "DELETE, GET, PATCH"
