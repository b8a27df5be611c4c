"""Per-account backoff: repeated wrong passwords lock the account's logins for a growing while,
whatever address they come from, for real and unknown accounts alike."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
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
    by_email = await _login(client, "ALICE@example.com", PASSWORD)  # same account, other name
    assert by_email.status_code == 429

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
