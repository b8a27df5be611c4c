"""CSRF on the cookie-authenticated requests (refresh, logout): double-submit token, SameSite
Strict cookies, Origin check. Bearer and body-token requests carry no ambient credential."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.services.auth.app import create_app
from tests.integration.auth.conftest import PASSWORD

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
APP_ORIGIN = "https://app.example"


@pytest.fixture
async def browser(
    settings: Settings, app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]]
) -> httpx.AsyncClient:
    """A browser session: signed up, logged in, holding the refresh and CSRF cookies."""
    configured = settings.model_copy(update={"cors_origins": [APP_ORIGIN]})
    client = await app_client(create_app(configured))
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201
    login = await client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert login.status_code == 200
    cookies = {c.split("=")[0]: c for c in login.headers.get_list("set-cookie")}
    for name in ("agora_refresh", "agora_csrf"):
        assert "samesite=strict" in cookies[name].lower(), name
    assert "httponly" in cookies["agora_refresh"].lower()
    assert "httponly" not in cookies["agora_csrf"].lower()  # the page must read it
    return client


@pytest.mark.parametrize("path", [REFRESH, LOGOUT])
async def test_cookie_request_without_the_csrf_token_is_refused(
    browser: httpx.AsyncClient, path: str
) -> None:
    for headers in ({}, {"X-CSRF-Token": "guessed"}, {"X-CSRF-Token": ""}):
        response = await browser.post(path, headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["error"]["code"] == "csrf_failed"
    # Nothing was spent or revoked by the refused attempts: the session still refreshes.
    csrf = browser.cookies["agora_csrf"]
    assert (await browser.post(REFRESH, headers={"X-CSRF-Token": csrf})).status_code == 200


@pytest.mark.parametrize(
    ("origin_headers", "allowed"),
    [
        ({"Origin": APP_ORIGIN}, True),
        ({"Origin": "http://testserver"}, True),  # the service's own origin
        ({}, True),  # no Origin: non-browser client, the token decides
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "null"}, False),  # sandboxed iframes, file: pages
        ({"Referer": "https://evil.example/page"}, False),
        ({"Referer": f"{APP_ORIGIN}/settings"}, True),
    ],
)
async def test_cookie_request_with_the_token_is_checked_against_allowed_origins(
    browser: httpx.AsyncClient, origin_headers: dict[str, str], allowed: bool
) -> None:
    headers = {"X-CSRF-Token": browser.cookies["agora_csrf"], **origin_headers}
    response = await browser.post(REFRESH, headers=headers)
    assert response.status_code == (200 if allowed else 403), response.text


async def test_logout_by_cookie_with_the_token_succeeds(browser: httpx.AsyncClient) -> None:
    csrf = browser.cookies["agora_csrf"]
    response = await browser.post(LOGOUT, headers={"X-CSRF-Token": csrf, "Origin": APP_ORIGIN})
    assert response.status_code == 204


async def test_body_token_and_bearer_requests_need_no_csrf_token(
    browser: httpx.AsyncClient,
) -> None:
    refresh_token = browser.cookies["agora_refresh"]
    browser.cookies.clear()  # a non-browser client: no cookies at all
    response = await browser.post(
        REFRESH, json={"refresh_token": refresh_token}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 200
    me = await browser.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    )
    assert me.status_code == 200
