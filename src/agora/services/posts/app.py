"""The posts service app: posts, likes, follows, home feed and notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from agora.app import build_app
from agora.cache import running_cache
from agora.config import Settings
from agora.resilience.registry import Breakers
from agora.security.jwks import jwks_token_verifier
from agora.security.tokens import KeyResolver
from agora.services.posts.routes import router
from agora.services.posts.service import PostsService


def create_app(settings: Settings, *, key_resolver: KeyResolver | None = None) -> FastAPI:
    """``key_resolver`` defaults to auth's JWKS over HTTP; tests pass the keys they trust."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        breakers: Breakers = app.state.breakers
        async with (
            jwks_token_verifier(settings, key_resolver, breaker=breakers.jwks) as verifier,
            running_cache(
                app.state.redis,
                breakers.redis,
                timeout_s=settings.redis_socket_timeout_s,
                early_refresh_beta=settings.cache_early_refresh_beta,
            ) as cache,
        ):
            app.state.verifier = verifier
            app.state.cache = cache
            app.state.posts = PostsService(
                db=app.state.db, redis=app.state.redis, cache=cache, settings=settings
            )
            yield

    return build_app("posts", settings, routers=[router], lifespan=lifespan)
