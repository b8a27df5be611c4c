"""Real ``agora serve`` processes — one auth, two realtime instances: ``agora keys revoke K``
closes, on both instances and within seconds, every open socket whose token K signed (4003),
while sockets whose token another key signed stay open."""

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
from websockets.asyncio.client import connect

from agora.services.realtime.hub import KEY_REVOKED_CLOSE_CODE
from tests.e2e.conftest import Cluster
from tests.e2e.sockets import close_code
from tests.e2e.test_realtime import PASSWORD, assert_nothing_queued, bearer

pytestmark = pytest.mark.e2e

BOUND_S = 3.0
ENV = {
    # Channels of this run only: parallel runs on one Redis must not hear each other.
    "AGORA_EVENTS_CHANNEL": f"agora:events:e2e-keys-{os.getpid()}",
    "AGORA_KEY_EVENTS_CHANNEL": f"agora:keys:e2e-keys-{os.getpid()}",
    "AGORA_DB_POOL_MAX_SIZE": "3",
    # A rotated key signs after refresh + refetch cooldown (1.5 s here, not 40 s).
    "AGORA_SIGNING_KEY_REFRESH_S": "1",
}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def _agora(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agora", *args],
        env={**cluster.env, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_revoking_a_key_closes_its_sockets_on_every_instance(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    auth = cluster.start("auth", extra_env=ENV)
    realtimes = cluster.start_many("realtime", 2, extra_env=ENV)
    registered = await http.post(
        f"{auth.url}/api/v1/auth/register",
        json={"username": "alice", "email": "alice@example.com", "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    credentials = {"username": "alice", "password": PASSWORD}

    async def login() -> str:
        answer = await http.post(f"{auth.url}/api/v1/auth/login", json=credentials)
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    old = await login()
    rotated = await asyncio.to_thread(_agora, cluster, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = await login()
    started = time.monotonic()
    while _kid(new) == _kid(old):  # the successor signs after its activation delay
        assert time.monotonic() - started < 15, "the rotated key never signed"
        await asyncio.sleep(0.3)
        new = await login()

    url = "{}/ws"
    old_sockets = [
        await connect(url.format(r.ws_url), additional_headers=bearer(old)) for r in realtimes
    ]
    new_sockets = [
        await connect(url.format(r.ws_url), additional_headers=bearer(new)) for r in realtimes
    ]
    try:
        for ws in (*old_sockets, *new_sockets):
            await assert_nothing_queued(ws)
        revoked = await asyncio.to_thread(_agora, cluster, "keys", "revoke", _kid(old))
        assert revoked.returncode == 0, revoked.stderr
        announced = time.monotonic()
        codes = await asyncio.gather(*(close_code(ws, within_s=BOUND_S) for ws in old_sockets))
        assert codes == [KEY_REVOKED_CLOSE_CODE] * len(realtimes)
        assert time.monotonic() - announced < BOUND_S
        for ws in new_sockets:  # another key's sockets go on
            await assert_nothing_queued(ws)
        # A token of the revoked key cannot open a new socket either.
        with pytest.raises(Exception, match="403"):
            await connect(url.format(realtimes[0].ws_url), additional_headers=bearer(old))
    finally:
        for ws in (*old_sockets, *new_sockets):
            await ws.close()
    for realtime in realtimes:
        assert "closed the sockets of a revoked signing key" in realtime.logs()
