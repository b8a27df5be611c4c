"""Per-identifier backoff: repeated wrong passwords lock a login name's logins for a growing
while, whatever address they come from, for real and unknown accounts alike; checked and
counted atomically, and keyed so that Redis and the answers reveal no link between names."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import httpx
import jwt
import pytest
import redis
from fastapi import FastAPI

from agora.config import Settings
from agora.services.auth.app import create_app
from tests.integration.auth.conftest import PASSWORD

LOGIN = "/api/v1/auth/login"


@pytest.fixture
async def client(
    settings: Settings, app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]]
) -> httpx.AsyncClient:
    configured = settings.model_copy(update={"login_backoff_threshold": 3})
    client = await app_client(create_app(configured))
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201
    return client


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password})


async def test_repeated_failures_lock_the_account_then_a_success_resets_it(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        assert (await _login(client, "alice", "wrong password!")).status_code == 401
    locked = await _login(client, "alice", PASSWORD)  # even the right password waits
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "login_backoff"
    assert locked.headers["retry-after"] == "1"
    assert (await _login(client, "ALICE", PASSWORD)).status_code == 429  # normalized: one name

    await asyncio.sleep(1.1)
    assert (await _login(client, "alice", PASSWORD)).status_code == 200
    assert (await _login(client, "alice", "wrong password!")).status_code == 401  # reset


async def test_each_further_failure_doubles_the_wait(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await _login(client, "alice", "wrong password!")
    await asyncio.sleep(1.1)
    assert (await _login(client, "alice", "wrong password!")).status_code == 401
    assert (await _login(client, "alice", PASSWORD)).headers["retry-after"] == "2"


async def test_unknown_accounts_back_off_alike(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await _login(client, "nobody", "wrong password!")).status_code == 401
    assert (await _login(client, "nobody", "wrong password!")).status_code == 429
    assert (await _login(client, "alice", PASSWORD)).status_code == 200  # others unaffected


async def test_a_concurrent_burst_gets_at_most_the_threshold_of_password_checks(
    client: httpx.AsyncClient,
) -> None:
    """Checked and counted in one step: a burst cannot all pass the check before any of it is
    counted (before: all 20 guesses were answered 401, i.e. had their password checked)."""
    burst = await asyncio.gather(*(_login(client, "alice", f"guess {i}!") for i in range(20)))
    statuses = [r.status_code for r in burst]
    assert statuses.count(401) <= 3, statuses  # threshold 3: at most 3 reached argon2
    assert statuses.count(429) >= 17, statuses
    assert {r.json()["error"]["code"] for r in burst if r.status_code == 429} == {"login_backoff"}


async def test_locking_the_username_does_not_reveal_the_accounts_e_mail(
    client: httpx.AsyncClient,
) -> None:
    """Keyed by the account, a lock on ``alice`` made ``alice@example.com`` answer 429 and an
    unrelated address 401: an oracle for which e-mail belongs to which username."""
    for _ in range(4):
        await _login(client, "alice", "wrong password!")
    assert (await _login(client, "alice", PASSWORD)).status_code == 429
    assert (await _login(client, "alice@example.com", "wrong password!")).status_code == 401
    assert (await _login(client, "someone@example.com", "wrong password!")).status_code == 401
    assert (await _login(client, "alice@example.com", PASSWORD)).status_code == 200


async def test_backoff_keys_name_no_identifier_even_hashed_without_the_secret(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    me = await client.post(LOGIN, json={"username": "alice", "password": PASSWORD})
    user_id = jwt.decode(me.json()["access_token"], options={"verify_signature": False})["sub"]
    for login in ("alice", "alice@example.com", "nobody", "nobody@example.com"):
        await _login(client, login, "wrong password!")
    store = redis.Redis.from_url(settings.require_redis_url())
    try:
        found = [key.decode() for key in store.scan_iter("agora:login-backoff:*")]
    finally:
        store.close()
    assert found  # the failures above were recorded
    # Neither the names nor anything computable from them without the server's secret: the
    # plain values, their SHA-256 (main's keys were sha256 of the account id or the login).
    candidates = ["alice", "alice@example.com", "nobody", "nobody@example.com", user_id]
    forms = {c for c in candidates} | {f"login:{c}" for c in candidates}
    leaks = {f for f in forms} | {hashlib.sha256(f.encode()).hexdigest()[:32] for f in forms}
    for key in found:
        assert not any(leak in key for leak in leaks), key
