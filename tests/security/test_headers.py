"""Security headers on every response of every service; the docs page under its own policy,
serving its assets itself; CORS limited to the configured origins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import SecretStr

from agora.config import Settings
from agora.security.headers import API_CSP
from agora.services.auth.app import create_app as create_auth
from tests.security.conftest import PROTECTED, System, protected

AppClient = Callable[[FastAPI], Awaitable[httpx.AsyncClient]]

EXPECTED = {
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "x-xss-protection": "1; mode=block",
    "content-security-policy": API_CSP,
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert "camera=()" in response.headers["permissions-policy"]


async def test_every_kind_of_response_carries_the_headers(system: System) -> None:
    account = await system.account("alice")
    for service, client in system.clients().items():
        responses = [
            await client.get(protected(service, account.access_token), headers=account.headers),
            await client.get(PROTECTED[service]),  # 401
            await client.get(f"/api/v1/{service}/no-such-route"),  # 404
            await client.get("/healthz"),
            await client.get("/metrics"),
        ]
        for response in responses:
            assert_security_headers(response)
        assert responses[0].headers["content-type"] == "application/json"


async def test_auth_responses_are_never_stored_but_the_jwks_is_cacheable(system: System) -> None:
    await system.account("alice")
    login = await system.auth.client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": "correct horse battery"}
    )
    refused = await system.auth.client.get("/api/v1/auth/me")
    jwks = await system.auth.client.get("/api/v1/auth/.well-known/jwks.json")
    assert login.headers["cache-control"] == "no-store"
    assert refused.headers["cache-control"] == "no-store"
    assert jwks.headers["cache-control"] == "public, max-age=60"


async def test_docs_page_has_its_own_policy_and_no_cdn(system: System) -> None:
    page = await system.posts.get("/api/v1/posts/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "https://" not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert page.headers["x-frame-options"] == "DENY"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = await system.posts.get(f"/api/v1/posts/docs/static/{asset}")
        assert response.status_code == 200, asset
        assert asset in page.text
    spec = await system.posts.get("/api/v1/posts/openapi.json")
    assert spec.status_code == 200


async def test_docs_are_off_in_production(settings: Settings, app_client: AppClient) -> None:
    key = SecretStr(Fernet.generate_key().decode())
    production = settings.model_copy(update={"env": "production", "key_encryption_key": [key]})
    client = await app_client(create_auth(production))
    for path in ("/api/v1/auth/docs", "/api/v1/auth/openapi.json"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert_security_headers(response)


@pytest.mark.parametrize("origin", ["https://app.example", "https://evil.example"])
async def test_cors_answers_only_configured_origins_with_credentials(
    settings: Settings, app_client: AppClient, origin: str
) -> None:
    configured = settings.model_copy(update={"cors_origins": ["https://app.example"]})
    client = await app_client(create_auth(configured))
    preflight = await client.options(
        "/api/v1/auth/refresh",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-CSRF-Token",
        },
    )
    simple = await client.get("/api/v1/auth/.well-known/jwks.json", headers={"Origin": origin})
    if origin == "https://app.example":
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert simple.headers["access-control-allow-origin"] == origin
    else:
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        assert "access-control-allow-origin" not in simple.headers


async def test_wildcard_cors_never_allows_credentials(
    settings: Settings, app_client: AppClient
) -> None:
    client = await app_client(create_auth(settings.model_copy(update={"cors_origins": ["*"]})))
    response = await client.get(
        "/api/v1/auth/.well-known/jwks.json", headers={"Origin": "https://any.example"}
    )
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
