"""Real ``agora serve`` processes — two auth and two realtime instances, each realtime trusting
a different auth's JWKS: a logout closes the session's sockets on both realtime instances at
once, and ``agora keys revoke`` gets a key's tokens refused by every instance within seconds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect

from agora.services.realtime.hub import SESSION_ENDED_CLOSE_CODE
from tests.e2e.conftest import Cluster, ServiceProcess
from tests.e2e.sockets import close_code
from tests.e2e.test_realtime import PASSWORD, assert_nothing_queued, bearer

pytestmark = pytest.mark.e2e

BOUND_S = 3.0
# Channels of this run only: parallel runs on one Redis must not hear each other.
CHANNELS = {
    "AGORA_EVENTS_CHANNEL": f"agora:events:e2e-{os.getpid()}",
    "AGORA_KEY_EVENTS_CHANNEL": f"agora:keys:e2e-{os.getpid()}",
    "AGORA_DB_POOL_MAX_SIZE": "3",
}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


def _jwks(auth: ServiceProcess) -> str:
    return f"{auth.url}/api/v1/auth/.well-known/jwks.json"


async def _open(instance: ServiceProcess, token: str) -> ClientConnection:
    ws = await connect(f"{instance.ws_url}/ws", additional_headers=bearer(token), open_timeout=5)
    await assert_nothing_queued(ws)
    return ws


async def test_logout_and_key_revocation_reach_every_instance(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    auths = cluster.start_many("auth", 2, extra_env=CHANNELS)
    realtimes = [
        cluster.start("realtime", extra_env={**CHANNELS, "AGORA_AUTH_JWKS_URL": _jwks(a)})
        for a in auths
    ]
    registered = await http.post(
        f"{auths[0].url}/api/v1/auth/register",
        json={"username": "alice", "email": "alice@example.com", "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    alice = registered.json()["id"]
    credentials = {"username": "alice", "password": PASSWORD}
    laptop = (await http.post(f"{auths[0].url}/api/v1/auth/login", json=credentials)).json()
    phone = (await http.post(f"{auths[1].url}/api/v1/auth/login", json=credentials)).json()

    laptop_sockets = [await _open(r, laptop["access_token"]) for r in realtimes]
    phone_socket = await _open(realtimes[1], phone["access_token"])
    try:
        logout = await http.post(
            f"{auths[1].url}/api/v1/auth/logout", json={"refresh_token": laptop["refresh_token"]}
        )
        assert logout.status_code == 204
        for ws in laptop_sockets:
            assert await close_code(ws, within_s=BOUND_S) == SESSION_ENDED_CLOSE_CODE
        await assert_nothing_queued(phone_socket)  # the other session goes on
        for instance in (*auths, *realtimes):
            path = (
                "/api/v1/auth/me"
                if instance.service == "auth"
                else f"/api/v1/realtime/presence/{alice}"
            )
            response = await http.get(
                f"{instance.url}{path}", headers=bearer(laptop["access_token"])
            )
            assert response.status_code == 401, (instance.service, response.text)
            assert response.json()["error"]["code"] == "session_ended"
    finally:
        for ws in (*laptop_sockets, phone_socket):
            await ws.close()

    # Emergency key revocation, from the command line, while everything runs.
    kid = jwt.get_unverified_header(phone["access_token"])["kid"]
    env = {**cluster.env, **CHANNELS}
    revoked = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agora", "keys", "revoke", kid],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert revoked.returncode == 0, revoked.stderr
    started = time.monotonic()

    async def statuses(token: str) -> list[int]:
        answers = [
            await http.get(f"{a.url}/api/v1/auth/me", headers=bearer(token)) for a in auths
        ] + [
            await http.get(f"{r.url}/api/v1/realtime/presence/{alice}", headers=bearer(token))
            for r in realtimes
        ]
        return [answer.status_code for answer in answers]

    while await statuses(phone["access_token"]) != [401] * 4:
        assert time.monotonic() - started < BOUND_S, await statuses(phone["access_token"])
        await asyncio.sleep(0.1)
    for auth in auths:
        published = (await http.get(_jwks(auth))).json()["keys"]
        assert kid not in {key["kid"] for key in published}
    fresh = await http.post(f"{auths[1].url}/api/v1/auth/login", json=credentials)
    assert jwt.get_unverified_header(fresh.json()["access_token"])["kid"] != kid
    assert await statuses(fresh.json()["access_token"]) == [200] * 4
