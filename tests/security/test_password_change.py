"""Changing the password checks the current one like a login does (backoff, per-address
limit) and ends every other session of the account at once: refresh and access tokens on
every service, and open sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import orjson
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agora.config import Settings
from agora.ratelimit.rates import parse_rate
from agora.services.auth.app import create_app
from agora.services.realtime.hub import SESSION_ENDED_CLOSE_CODE
from tests.integration.auth.conftest import PASSWORD
from tests.security.conftest import PROTECTED, Account, System, protected

PASSWORD_ROUTE = "/api/v1/auth/password"
NEW_PASSWORD = "a brand new passphrase"


def _bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access_token}"}


async def _second_session(system: System, account: Account) -> Account:
    tokens = await system.auth.login(account.username)
    system.auth.client.cookies.clear()
    return Account(
        account.user_id, account.username, tokens["access_token"], tokens["refresh_token"]
    )


async def _change(
    client: httpx.AsyncClient, account: Account, current: str, new: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(
        PASSWORD_ROUTE,
        json={"current_password": current, "new_password": new},
        headers=_bearer(account),
    )


async def test_a_password_change_ends_every_other_session_everywhere(system: System) -> None:
    alice = await system.account("alice")
    laptop = await _second_session(system, alice)
    async with connect(
        system.realtime.ws_url, additional_headers=_bearer(laptop), open_timeout=5
    ) as laptop_ws:
        await laptop_ws.send('{"type": "ping"}')
        assert orjson.loads(await laptop_ws.recv())["type"] == "pong"

        changed = await _change(system.auth.client, alice, PASSWORD)
        assert changed.status_code == 204, changed.text

        async with asyncio.timeout(3):
            with pytest.raises(ConnectionClosed) as closed:
                await laptop_ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == SESSION_ENDED_CLOSE_CODE
    for service, client in system.clients().items():
        other = await client.get(PROTECTED[service], headers=_bearer(laptop))
        assert other.status_code == 401, service
        assert other.json()["error"]["code"] == "session_ended"
        # The session that changed the password goes on.
        mine = protected(service, alice.access_token)
        assert (await client.get(mine, headers=_bearer(alice))).status_code == 200
    refresh = "/api/v1/auth/refresh"
    dead = await system.auth.client.post(refresh, json={"refresh_token": laptop.refresh_token})
    assert dead.status_code == 401
    alive = await system.auth.client.post(refresh, json={"refresh_token": alice.refresh_token})
    assert alive.status_code == 200

    login = "/api/v1/auth/login"
    old = await system.auth.client.post(login, json={"username": "alice", "password": PASSWORD})
    assert old.status_code == 401
    new = await system.auth.client.post(login, json={"username": "alice", "password": NEW_PASSWORD})
    assert new.status_code == 200


async def test_a_wrong_current_password_changes_nothing(system: System) -> None:
    alice = await system.account("alice")
    laptop = await _second_session(system, alice)
    wrong = await _change(system.auth.client, alice, "not my password")
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    me = await system.auth.client.get("/api/v1/auth/me", headers=_bearer(laptop))
    assert me.status_code == 200
    assert (await system.auth.login("alice", PASSWORD))["access_token"]


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD, "new_password": "password123"},  # a common one
        {"current_password": PASSWORD, "new_password": "short"},
        {"current_password": PASSWORD},
        {"new_password": NEW_PASSWORD},
    ],
)
async def test_an_invalid_body_is_a_422_and_changes_nothing(
    system: System, body: dict[str, str]
) -> None:
    alice = await system.account("alice")
    response = await system.auth.client.post(PASSWORD_ROUTE, json=body, headers=_bearer(alice))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert (await system.auth.login("alice", PASSWORD))["access_token"]


async def test_without_a_token_it_is_a_401(system: System) -> None:
    response = await system.auth.client.post(
        PASSWORD_ROUTE, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 401


async def test_guessing_the_current_password_backs_off_like_login(
    settings: Settings, app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]]
) -> None:
    client = await app_client(
        create_app(settings.model_copy(update={"login_backoff_threshold": 3}))
    )
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    user = (await client.post("/api/v1/auth/register", json=body)).json()
    tokens = (
        await client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    ).json()
    alice = Account(user["id"], "alice", tokens["access_token"], tokens["refresh_token"])
    for _ in range(3):
        assert (await _change(client, alice, "a wrong guess")).status_code == 403
    locked = await _change(client, alice, PASSWORD)  # even the right one waits
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "login_backoff"
    assert "retry-after" in locked.headers


async def test_the_route_shares_the_per_address_credentials_limit(
    settings: Settings, app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]]
) -> None:
    client = await app_client(
        create_app(settings.model_copy(update={"ratelimit_credentials": parse_rate("4/minute")}))
    )
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    user = (await client.post("/api/v1/auth/register", json=body)).json()  # 1
    tokens = (
        await client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    ).json()  # 2
    alice = Account(user["id"], "alice", tokens["access_token"], tokens["refresh_token"])
    assert (await _change(client, alice, "guess one")).status_code == 403  # 3
    assert (await _change(client, alice, "guess two")).status_code == 403  # 4
    limited = await _change(client, alice, PASSWORD)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
