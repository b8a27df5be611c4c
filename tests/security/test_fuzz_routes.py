"""Every route of the three services, driven with generated path values, query strings, bodies
and headers (hypothesis): never a 5xx, and every 4xx is the contract's error body with a known
code. Routes are enumerated from the apps themselves, so a new route is fuzzed without an edit
here. Real PostgreSQL and Redis (the shared fixtures); auth and posts in-process, realtime as a
real server."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agora.config import Settings
from agora.observability.route_templates import effective_routes
from agora.services.auth.app import create_app as create_auth
from agora.services.posts.app import create_app as create_posts
from agora.services.realtime.app import create_app as create_realtime
from tests.security.conftest import Account, System

# Every code a client can be answered with. A new one is a contract change: add it here.
KNOWN_CODES = frozenset(
    {
        "bad_request",
        "cannot_follow_self",
        "conflict",
        "csrf_failed",
        "forbidden",
        "http_error",
        "invalid_admin_token",
        "invalid_credentials",
        "invalid_cursor",
        "invalid_refresh_token",
        "invalid_token",
        "json_too_deep",
        "login_backoff",
        "malformed_json",
        "method_not_allowed",
        "not_acceptable",
        "not_found",
        "payload_too_large",
        "rate_limited",
        "refresh_token_reused",
        "unauthenticated",
        "unknown_breaker",
        "unsupported_media_type",
        "validation_error",
    }
)
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Endpoint:
    service: str
    methods: tuple[str, ...]
    template: str
    query: tuple[str, ...]
    body_fields: tuple[str, ...]


def _body_fields(route: APIRoute) -> tuple[str, ...]:
    names: list[str] = []
    for field in route.dependant.body_params:
        for member in getattr(
            field.field_info.annotation, "__args__", (field.field_info.annotation,)
        ):
            if isinstance(member, type) and issubclass(member, BaseModel):
                names.extend(f.alias or name for name, f in member.model_fields.items())
    return tuple(names)


def endpoints(service: str, app: FastAPI) -> list[Endpoint]:
    found = []
    for template, route in effective_routes(app.routes):
        methods = tuple(sorted(getattr(route, "methods", None) or ("GET",)))
        if isinstance(route, APIRoute):
            query = tuple(f.alias for f in route.dependant.query_params)
            body = _body_fields(route)
        else:
            query, body = (), ()
        found.append(Endpoint(service, methods, template, query, body))
    return found


def _all_endpoints() -> list[Endpoint]:
    settings = Settings()
    apps: dict[str, FastAPI] = {
        "auth": create_auth(settings),
        "posts": create_posts(settings),
        "realtime": create_realtime(settings),
    }
    return [e for service, app in apps.items() for e in endpoints(service, app)]


ENDPOINTS = _all_endpoints()

# Any code point, lone surrogates included (JSON can spell them all), with what PostgreSQL,
# UTF-8, HTTP and SQL find hard drawn often rather than once in a million.
_HARD = st.sampled_from(
    ["\x00", "\x00", "\x00", "\ud800", "\udfff", "\r", "\n", "'", "%", "/", "\\", "\u2603"]
)
_ANY_TEXT = st.text(_HARD | st.characters(exclude_categories=()), max_size=40)
# A URL carries bytes: any of them, percent-encoded (invalid UTF-8 and NUL included).
_URL_PART = st.binary(max_size=40) | st.text(max_size=40).map(str.encode)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
_CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/JSON; charset=utf-8",
        "text/plain",
        "application/x+json",
    ]
)


def _mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> Any:
    """Mostly the usual, so most requests get past routing and parsing to the code behind
    them; otherwise anything."""
    return draw(st.one_of(usual, other))  # hypothesis favours the first branch


@st.composite
def requests(draw: st.DrawFn, endpoint: Endpoint, known_ids: tuple[str, ...]) -> dict[str, Any]:
    path_value = st.sampled_from([i.encode() for i in known_ids]) | _URL_PART.filter(bool)
    path = _PARAM.sub(lambda _: quote(draw(path_value), safe=""), endpoint.template)
    if "{" not in endpoint.template and draw(st.booleans()):
        path += "/" + quote(draw(_URL_PART), safe="")  # a near miss of a real path
    method = _mostly(draw, st.sampled_from(endpoint.methods), st.sampled_from(_METHODS))
    names = st.sampled_from((*endpoint.query, "limit", "cursor", "access_token", "x"))
    values = _URL_PART | st.integers().map(lambda n: str(n).encode())
    pairs = draw(st.lists(st.tuples(names, values), max_size=4))
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in pairs)
    # The route's own fields with strange values, else any JSON, else bytes that are not JSON.
    fields = {name: st.one_of(_ANY_TEXT, _JSON) for name in endpoint.body_fields}
    anything = st.none() | _JSON.map(json.dumps) | st.binary(max_size=64)
    body = _mostly(draw, st.fixed_dictionaries(fields).map(json.dumps), anything)
    return {
        "method": method,
        "url": path,
        "query": query,
        "content": body,
        "content_type": _mostly(draw, st.just("application/json"), _CONTENT_TYPES),
        "authenticated": _mostly(draw, st.just(True), st.booleans()),
    }


# Readiness answers 503 by contract while a dependency is slow (this machine is often loaded).
_READINESS = ("/readyz", "/healthz/ready")


def assert_contract(response: httpx.Response, request: dict[str, Any]) -> None:
    if request["url"] in _READINESS and response.status_code == 503:
        return
    assert response.status_code < 500, (request, response.status_code, response.text)
    if response.status_code < 400 or request["method"] == "HEAD":
        return  # a HEAD answer has no body to check
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    for field in ("message", "request_id"):
        assert isinstance(error[field], str), body
        assert error[field], body
    assert error["code"] in KNOWN_CODES, body


@dataclass
class Population:
    alice: Account
    ids: tuple[str, ...]  # real ids, so generated requests also reach the rows behind routes


@pytest.fixture
async def population(system: System) -> Population:
    alice = await system.account("alice")
    bob = await system.account("bob")
    post = await system.posts.post("/api/v1/posts", json={"content": "hi"}, headers=bob.headers)
    assert post.status_code == 201
    return Population(alice, (alice.user_id, bob.user_id, post.json()["id"], "postgres"))


@pytest.mark.parametrize("service", ["auth", "posts", "realtime"])
@settings(
    max_examples=25,  # about 20 s a service here: bounded for make test
    deadline=None,
    # The system is built once per service and shared by its examples, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_route_answers_5xx_or_breaks_the_error_contract(
    system: System, population: Population, service: str, data: st.DataObject
) -> None:
    """Each example sends one generated request to every route of the service (drawing the
    route instead would leave most of them untried in a bounded run)."""
    client = system.clients()[service]
    for endpoint in (e for e in ENDPOINTS if e.service == service):
        request = data.draw(requests(endpoint, population.ids), label=endpoint.template)
        headers = dict(population.alice.headers) if request["authenticated"] else {}
        if request["content_type"] is not None:
            headers["Content-Type"] = request["content_type"]
        content = request["content"]
        response = await client.request(
            request["method"],
            f"{request['url']}?{request['query']}" if request["query"] else request["url"],
            content=content.encode() if isinstance(content, str) else content,
            headers=headers,
        )
        assert_contract(response, request)


def test_every_service_has_its_routes_enumerated() -> None:
    templates = {(e.service, e.template) for e in ENDPOINTS}
    assert ("auth", "/api/v1/auth/login") in templates
    assert ("posts", "/api/v1/posts/{post_id}/like") in templates
    assert ("realtime", "/api/v1/realtime/presence/{user_id}") in templates
    assert ("realtime", "/ws") in templates
