"""The attack suite's system: a real auth app, and posts and realtime trusting auth's keys
through its published JWKS, exactly as deployed (the JWKS is fetched over HTTP, in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from agora.config import Settings
from agora.security.jwks import JwksKeyResolver
from agora.services.posts.app import create_app as create_posts
from agora.services.realtime.app import create_app as create_realtime

# ``auth`` and ``serve`` are fixtures of the integration suites, reused here.
from tests.integration.auth.conftest import AuthHarness, auth  # noqa: F401
from tests.integration.realtime.conftest import RunningServer, serve  # noqa: F401

JWKS_PATH = "/api/v1/auth/.well-known/jwks.json"


@dataclass
class Account:
    user_id: str
    username: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class System:
    auth: AuthHarness
    posts: httpx.AsyncClient
    realtime: RunningServer
    realtime_http: httpx.AsyncClient

    async def account(self, username: str, **fields: Any) -> Account:
        user = await self.auth.register(username, **fields)
        tokens = await self.auth.login(username)
        self.auth.client.cookies.clear()
        return Account(user["id"], username, tokens["access_token"], tokens["refresh_token"])

    def clients(self) -> dict[str, httpx.AsyncClient]:
        return {"auth": self.auth.client, "posts": self.posts, "realtime": self.realtime_http}


def protected(service: str, token: str) -> str:
    """``PROTECTED[service]`` as a valid ``token`` may read it (200): on realtime, the
    presence of the token's own user (presence is not everyone's to see)."""
    if service != "realtime":
        return PROTECTED[service]
    try:
        subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        return PROTECTED[service]
    return f"/api/v1/realtime/presence/{subject}"


# One authenticated GET per service, used to try tokens against each of them.
PROTECTED = {
    "auth": "/api/v1/auth/me",
    "posts": "/api/v1/posts/feed",
    "realtime": "/api/v1/realtime/presence/00000000-0000-0000-0000-000000000000",
}


@pytest.fixture
async def system(
    settings: Settings,
    auth: AuthHarness,  # noqa: F811
    serve: Callable[[FastAPI], Awaitable[RunningServer]],  # noqa: F811
    app_client: Callable[[FastAPI], Awaitable[httpx.AsyncClient]],
) -> AsyncIterator[System]:
    def resolver() -> JwksKeyResolver:
        return JwksKeyResolver(
            f"http://testserver{JWKS_PATH}", client=auth.client, refetch_cooldown_s=0.0
        )

    posts = await app_client(create_posts(settings, key_resolver=resolver()))
    realtime = await serve(create_realtime(settings, key_resolver=resolver()))
    async with httpx.AsyncClient(base_url=realtime.url) as realtime_http:
        yield System(auth=auth, posts=posts, realtime=realtime, realtime_http=realtime_http)
