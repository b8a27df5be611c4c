"""``agora keys revoke KID`` (a real process): the key leaves the JWKS at once and every
instance — two auth instances with their own key stores, posts and realtime with their own
JWKS caches — refuses its tokens within seconds, while new tokens (signed by the successor)
are accepted at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import jwt
from fastapi import FastAPI

from agora.config import Settings
from agora.security.jwks import JwksKeyResolver
from agora.services.auth.app import create_app as create_auth
from agora.services.posts.app import create_app as create_posts
from agora.services.realtime.app import create_app as create_realtime
from tests.integration.auth.conftest import PASSWORD, AuthHarness
from tests.integration.realtime.conftest import RunningServer
from tests.security.conftest import JWKS_PATH

# What "within seconds" means here; the listeners hear the announcement in milliseconds.
BOUND_S = 3.0


def agora(settings: Settings, *args: str, redis: bool = True) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGORA_")}
    env["AGORA_DATABASE_URL"] = settings.require_database_url()
    if redis:
        env["AGORA_REDIS_URL"] = settings.require_redis_url()
        env["AGORA_KEY_EVENTS_CHANNEL"] = settings.key_events_channel
    return subprocess.run(
        [sys.executable, "-m", "agora", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def _kids(client: httpx.AsyncClient) -> set[str]:
    return {key["kid"] for key in (await client.get(JWKS_PATH)).json()["keys"]}


async def test_a_revoked_key_is_refused_by_every_instance_within_seconds(
    settings: Settings,
    auth: AuthHarness,
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
    serve: Callable[[FastAPI], Awaitable[RunningServer]],
) -> None:
    other_auth = await app_client(create_auth(settings))

    def resolver(client: httpx.AsyncClient) -> JwksKeyResolver:
        # The production cooldown: the revocation, not a lucky refetch, must do the work.
        return JwksKeyResolver(
            f"http://testserver{JWKS_PATH}",
            client=client,
            refetch_cooldown_s=settings.jwks_refetch_cooldown_s,
        )

    posts = await app_client(create_posts(settings, key_resolver=resolver(auth.client)))
    realtime = await serve(create_realtime(settings, key_resolver=resolver(other_auth)))
    user = await auth.register("alice")
    token = (await auth.login("alice"))["access_token"]
    kid = _kid(token)

    async with httpx.AsyncClient(base_url=realtime.url) as realtime_http:
        checks = {
            "auth": (auth.client, "/api/v1/auth/me"),
            "other auth": (other_auth, "/api/v1/auth/me"),
            "posts": (posts, "/api/v1/posts/feed"),
            "realtime": (realtime_http, f"/api/v1/realtime/presence/{user['id']}"),
        }

        async def statuses(bearer: str) -> dict[str, int]:
            headers = {"Authorization": f"Bearer {bearer}"}
            return {
                name: (await client.get(path, headers=headers)).status_code
                for name, (client, path) in checks.items()
            }

        assert set((await statuses(token)).values()) == {200}

        revoked = await asyncio.to_thread(agora, settings, "keys", "revoke", kid)
        assert revoked.returncode == 0, revoked.stderr
        assert f"signing key {kid} revoked" in revoked.stdout
        announced_at = time.monotonic()
        # The JWKS of the auth instance that never saw the command changes at once too.
        for client in (auth.client, other_auth):
            assert kid not in await _kids(client)

        while set((await statuses(token)).values()) != {401}:
            assert time.monotonic() - announced_at < BOUND_S, await statuses(token)
            await asyncio.sleep(0.05)

        # The successor signs at once and is accepted everywhere, cooldowns notwithstanding.
        fresh = await other_auth.post(
            "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
        )
        assert fresh.status_code == 200
        new_token = fresh.json()["access_token"]
        assert _kid(new_token) != kid
        assert set((await statuses(new_token)).values()) == {200}, await statuses(new_token)


async def test_revoke_refuses_what_it_cannot_do_and_says_why(
    settings: Settings, auth: AuthHarness
) -> None:
    unknown = await asyncio.to_thread(agora, settings, "keys", "revoke", "no-such-kid")
    assert unknown.returncode == 2
    assert "no signing key 'no-such-kid'" in unknown.stderr
    malformed = await asyncio.to_thread(agora, settings, "keys", "revoke", "bad kid;")
    assert malformed.returncode == 2
    assert "is not a key id" in malformed.stderr

    kid = next(iter(await _kids(auth.client)))
    no_redis = await asyncio.to_thread(agora, settings, "keys", "revoke", kid, redis=False)
    assert no_redis.returncode == 2
    assert "AGORA_REDIS_URL is not set" in no_redis.stderr
    assert kid in await _kids(auth.client)  # nothing changed


async def test_revoking_twice_announces_again(settings: Settings, auth: AuthHarness) -> None:
    kid = next(iter(await _kids(auth.client)))
    for _ in range(2):
        result = await asyncio.to_thread(agora, settings, "keys", "revoke", kid)
        assert result.returncode == 0, result.stderr
        assert "revoked" in result.stdout
