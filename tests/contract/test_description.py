"""What the OpenAPI descriptions promise, pinned: the statuses of key operations (removing one
fails here), the error schema and headers on every error, the constraints the server
enforces, and 405 with an ``Allow`` that names every method a path serves."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from agora.config import Settings
from agora.services.auth.app import create_app as create_auth
from agora.services.posts.app import create_app as create_posts
from agora.services.realtime.app import create_app as create_realtime
from tests.security.conftest import System

DESCRIPTIONS: dict[str, dict[str, Any]] = {
    "auth": create_auth(Settings()).openapi(),
    "posts": create_posts(Settings()).openapi(),
    "realtime": create_realtime(Settings()).openapi(),
}
# Every routed request: 400 ambiguous_credentials, the gateway's 408 and 502, the limiter's
# 429, 503 (overloaded, draining, a dependency down), the deadline's 504.
ROUTED = {400, 408, 429, 502, 503, 504}
BODY = {400, 413, 415, 422}

EXPECTED = {
    ("auth", "post", "/api/v1/auth/register"): {201, 409} | ROUTED | BODY,
    ("auth", "post", "/api/v1/auth/login"): {200, 401} | ROUTED | BODY,
    ("auth", "post", "/api/v1/auth/refresh"): {200, 401, 403} | ROUTED | BODY,
    ("auth", "get", "/api/v1/auth/me"): {200, 401} | ROUTED,
    ("auth", "delete", "/api/v1/auth/me"): {204, 401, 403} | ROUTED | BODY,
    ("auth", "get", "/api/v1/auth/.well-known/jwks.json"): {200, 408, 502, 503, 504},
    ("posts", "get", "/api/v1/posts/feed"): {200, 401, 422} | ROUTED,
    ("posts", "delete", "/api/v1/posts/{post_id}"): {204, 401, 403, 404, 422} | ROUTED,
    ("posts", "put", "/api/v1/posts/follows/{user_id}"): {200, 401, 404, 422} | ROUTED,
    ("realtime", "get", "/api/v1/realtime/presence/{user_id}"): {200, 401, 404, 422} | ROUTED,
}


def _operations() -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (service, method, path, operation)
        for service, description in DESCRIPTIONS.items()
        for path, item in description["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize(("service", "method", "path"), sorted(EXPECTED))
def test_key_operations_list_exactly_their_statuses(service: str, method: str, path: str) -> None:
    responses = DESCRIPTIONS[service]["paths"][path][method]["responses"]
    assert {int(status) for status in responses} == EXPECTED[(service, method, path)]


def test_every_error_has_the_error_schema_and_its_headers() -> None:
    for service, method, path, operation in _operations():
        for status, response in operation["responses"].items():
            where = (service, method, path, status)
            if int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, where
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"], where
            if status == "401":
                assert "WWW-Authenticate" in response["headers"], where
            if "security" in operation:
                assert operation["security"] == [{"bearer": []}], where
        assert "HTTPValidationError" not in DESCRIPTIONS[service]["components"]["schemas"]


def test_every_operation_that_needs_a_token_says_so() -> None:
    open_operations = {
        (method, path)
        for _, method, path, operation in _operations()
        if "security" not in operation
    }
    assert open_operations == {
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/users/{user_id}"),
        ("get", "/api/v1/auth/.well-known/jwks.json"),
    }


def _property(service: str, model: str, name: str) -> dict[str, Any]:
    prop: dict[str, Any] = DESCRIPTIONS[service]["components"]["schemas"][model]["properties"][name]
    return prop


def _parameter(service: str, path: str, name: str) -> dict[str, Any]:
    for parameter in DESCRIPTIONS[service]["paths"][path]["get"]["parameters"]:
        if parameter["name"] == name:
            schema: dict[str, Any] = parameter["schema"]
            return schema
    raise LookupError(name)


def test_the_constraints_the_server_enforces_are_stated() -> None:
    username = _property("auth", "UserCreate", "username")
    assert (username["pattern"], username["minLength"], username["maxLength"]) == (
        "^[A-Za-z0-9_]{3,30}$",
        3,
        30,
    )
    password = _property("auth", "UserCreate", "password")
    assert (password["minLength"], password["maxLength"]) == (10, 1024)
    assert password["pattern"] == r"^[^\u0000]*$"  # NUL refused
    assert "common" in password["description"]
    content = _property("posts", "PostCreate", "content")
    assert (content["minLength"], content["maxLength"]) == (1, 500)
    assert _property("auth", "ProfileUpdate", "display_name")["anyOf"][0]["maxLength"] == 50
    assert _property("auth", "UserCreate", "email")["maxLength"] == 254
    for path in ("/api/v1/posts/feed", "/api/v1/posts/notifications"):
        limit = _parameter("posts", path, "limit")
        assert (limit["minimum"], limit["maximum"]) == (1, 100)
        cursor = _parameter("posts", path, "cursor")["anyOf"][0]
        assert (cursor["pattern"], cursor["maxLength"]) == ("^[A-Za-z0-9_-]+$", 200)
    assert "/ws" in DESCRIPTIONS["realtime"]["info"]["description"]


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _served(service: str, concrete: str) -> set[str]:
    """The methods the description gives every template that ``concrete`` matches."""
    methods: set[str] = set()
    for template, item in DESCRIPTIONS[service]["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), concrete):
            methods |= {method.upper() for method in item}
    return methods


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", template)


@pytest.mark.parametrize("service", sorted(DESCRIPTIONS))
async def test_a_wrong_method_is_405_with_allow_naming_every_served_method(
    system: System, service: str
) -> None:
    client: httpx.AsyncClient = system.clients()[service]
    tried = 0
    for template in DESCRIPTIONS[service]["paths"]:
        path = _concrete(template)
        served = _served(service, path)
        for method in set(_METHODS) - served:
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert set(response.headers["allow"].split(", ")) == served, (method, path)
            error = response.json()["error"]
            assert error["code"] == "method_not_allowed", error
            assert error["request_id"], error
            tried += 1
    assert tried > 0


async def test_allow_joins_the_routes_that_share_a_path(system: System) -> None:
    """``/posts/{id}`` is served by two routes (GET and DELETE): a 405 names both."""
    response = await system.posts.post(_concrete("/api/v1/posts/{post_id}"))
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
    response = await system.auth.client.put("/api/v1/auth/me")
    assert response.headers["allow"] == "DELETE, GET, PATCH"


async def test_a_body_that_is_not_json_is_415(system: System) -> None:
    account = await system.account("alice")
    response = await system.posts.post(
        "/api/v1/posts",
        content=b'{"content": "hi"}',
        headers={**account.headers, "Content-Type": "text/plain"},
    )
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
    # No body at all stays the model's 422 (a field is missing), not a media-type error.
    response = await system.posts.post("/api/v1/posts", headers=account.headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
