"""POST /api/v1/auth/login: by username or e-mail, uniform failures, session cookies, rehash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.services.auth.app import create_app
from agora.services.auth.service import refresh_token_digest
from tests.integration.auth.conftest import PASSWORD, AuthHarness

LOGIN = "/api/v1/auth/login"


def _cookies(response: httpx.Response) -> dict[str, list[str]]:
    """Set-Cookie headers by cookie name, each as its list of attributes (lowercased)."""
    cookies: dict[str, list[str]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        name = first.split("=", 1)[0]
        cookies[name] = [first, *(a.lower() for a in attributes)]
    return cookies


@pytest.mark.parametrize("login", ["alice", "ALICE", "alice@example.com", "Alice@EXAMPLE.com"])
async def test_login_by_username_or_email_case_insensitively(auth: AuthHarness, login: str) -> None:
    user = await auth.register("alice")

    response = await auth.client.post(LOGIN, json={"username": login, "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert response.headers["cache-control"] == "no-store"
    principal = await auth.app.runtime.verifier.verify(body["access_token"])
    assert principal.user_id == user["id"]
    family = await auth.db.fetchval(
        "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2::uuid",
        refresh_token_digest(body["refresh_token"]),
        user["id"],
    )
    assert family is not None


@pytest.mark.parametrize(
    ("login", "password"),
    [("alice", "wrong password!"), ("nobody", PASSWORD), ("nobody@example.com", PASSWORD)],
    ids=["wrong-password", "unknown-username", "unknown-email"],
)
async def test_wrong_password_and_unknown_user_fail_alike(
    auth: AuthHarness, login: str, password: str
) -> None:
    await auth.register("alice")

    response = await auth.client.post(LOGIN, json={"username": login, "password": password})

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_credentials"
    assert error["message"] == "wrong username or password"
    assert "set-cookie" not in response.headers
    assert await auth.count("refresh_tokens") == 0


async def test_a_user_without_a_valid_hash_cannot_log_in(
    auth: AuthHarness, make_user: Callable[..., str]
) -> None:
    make_user("legacy")  # its password_hash is not an argon2 hash

    response = await auth.client.post(LOGIN, json={"username": "legacy", "password": PASSWORD})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


async def test_login_sets_refresh_and_csrf_cookies(auth: AuthHarness) -> None:
    await auth.register("alice")

    response = await auth.client.post(LOGIN, json={"username": "alice", "password": PASSWORD})

    cookies = _cookies(response)
    refresh = cookies["agora_refresh"]
    assert refresh[0] == f"agora_refresh={response.json()['refresh_token']}"
    assert "httponly" in refresh
    assert "samesite=strict" in refresh
    assert "path=/api/v1/auth" in refresh
    assert f"max-age={30 * 24 * 3600}" in refresh
    assert "secure" not in refresh  # development settings: plain http allowed
    csrf = cookies["agora_csrf"]
    assert len(csrf[0].split("=", 1)[1]) >= 32
    assert "httponly" not in csrf
    assert "samesite=strict" in csrf
    assert "path=/" in csrf


async def test_cookies_are_secure_when_configured(
    settings: Settings, app_client: Callable[[FastAPI], Any]
) -> None:
    secure_settings = settings.model_copy(update={"cookie_secure": True})
    client: httpx.AsyncClient = await app_client(create_app(secure_settings))
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201

    response = await client.post(LOGIN, json={"username": "alice", "password": PASSWORD})

    cookies = _cookies(response)
    assert "secure" in cookies["agora_refresh"]
    assert "secure" in cookies["agora_csrf"]


async def test_login_rehashes_a_password_hashed_with_old_parameters(
    auth: AuthHarness, settings: Settings, app_client: Callable[[FastAPI], Any]
) -> None:
    user = await auth.register("alice")
    query = "SELECT password_hash FROM users WHERE id = $1::uuid"
    old_hash = await auth.db.fetchval(query, user["id"])
    stronger = settings.model_copy(update={"password_hash_time_cost": 2})
    client: httpx.AsyncClient = await app_client(create_app(stronger))

    response = await client.post(LOGIN, json={"username": "alice", "password": PASSWORD})

    assert response.status_code == 200
    new_hash = await auth.db.fetchval(query, user["id"])
    assert new_hash != old_hash
    assert ",t=2," in new_hash
    # and the new hash still verifies
    await auth.login("alice")
