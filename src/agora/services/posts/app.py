"""The posts service app: posts, likes, follows, home feed and notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agora.app import build_app
from agora.cache import running_cache
from agora.cache.prefetch import Lookahead
from agora.config import Settings
from agora.runtime import Infrastructure, ServiceApp, ServiceParts
from agora.security.jwks import jwks_token_verifier
from agora.security.tokens import KeyResolver
from agora.services.posts.caching import post_entry_for
from agora.services.posts.fast_read import cached_post_shortcut
from agora.services.posts.parts import PostsParts
from agora.services.posts.routes import get_post, route_of, router
from agora.services.posts.service import PostsService


def create_app(
    settings: Settings, *, key_resolver: KeyResolver | None = None
) -> ServiceApp[PostsParts]:
    """``key_resolver`` defaults to auth's JWKS over HTTP; tests pass the keys they trust."""

    @asynccontextmanager
    async def start(infra: Infrastructure) -> AsyncIterator[ServiceParts[PostsParts]]:
        async with (
            jwks_token_verifier(settings, key_resolver, breaker=infra.breakers.jwks) as verifier,
            running_cache(
                infra.redis, early_refresh_beta=settings.cache_early_refresh_beta
            ) as cache,
        ):
            posts = PostsService(
                db=infra.db, redis=infra.redis, cache=cache, settings=settings, flags=infra.flags
            )
            yield ServiceParts(
                verifier=verifier,
                parts=PostsParts(posts=posts, cache=cache),
                lookahead=Lookahead(post_entry_for, cache.lookup_sha),
                shortcut=cached_post_shortcut(posts, route_of(get_post)),
            )

    return build_app("posts", settings, routers=[router], start=start)
