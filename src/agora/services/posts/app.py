"""The posts service app: posts, likes, follows, home feed and notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from agora.app import build_app
from agora.config import Settings
from agora.security.jwks import JwksKeyResolver
from agora.security.tokens import KeyResolver, TokenVerifier
from agora.services.posts.routes import router
from agora.services.posts.service import PostsService


def create_app(settings: Settings, *, key_resolver: KeyResolver | None = None) -> FastAPI:
    """``key_resolver`` defaults to auth's JWKS over HTTP; tests pass the keys they trust."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: httpx.AsyncClient | None = None
        resolver = key_resolver
        if resolver is None:
            # Keys are fetched on first use (and on an unknown kid), not at start: auth may
            # come up after us, and a failed start-up fetch would block refetching for the
            # cooldown.
            client = httpx.AsyncClient(timeout=2.0)
            resolver = JwksKeyResolver(
                settings.auth_jwks_url,
                client=client,
                refetch_cooldown_s=settings.jwks_refetch_cooldown_s,
            )
        app.state.verifier = TokenVerifier(
            resolver,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_s=settings.jwt_leeway_s,
        )
        app.state.posts = PostsService(
            db=app.state.db,
            redis=app.state.redis,
            events_channel=settings.events_channel,
            publish_timeout_s=settings.redis_socket_timeout_s,
        )
        try:
            yield
        finally:
            if client is not None:
                await client.aclose()

    return build_app("posts", settings, routers=[router], lifespan=lifespan)
