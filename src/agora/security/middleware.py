"""The security parts of every service's middleware stack, built from the settings: CORS, and
the deleted-users store the identity checks consult. Their place in the stack is declared
once, in ``agora.app.middleware_stack``."""

from __future__ import annotations

from redis.asyncio import Redis
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from agora.config import Settings
from agora.db import Database
from agora.resilience import CircuitBreaker
from agora.security.revocation import DeletedUsers, RevokedSessions

CORS_ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-CSRF-Token", "X-Request-ID"]
CORS_EXPOSED_HEADERS = ["X-Request-ID", "Retry-After"]


def deleted_users_store(
    redis: Redis, db: Database, settings: Settings, breaker: CircuitBreaker
) -> DeletedUsers:
    # A mark must outlive every access token the user may hold, leeway included.
    ttl_s = settings.access_token_ttl_s + settings.jwt_leeway_s + 60
    return DeletedUsers(
        redis,
        db,
        ttl_s=ttl_s,
        breaker=breaker,
        events_channel=settings.events_channel,
        publish_timeout_s=settings.redis_socket_timeout_s,
    )


def revoked_sessions_store(
    redis: Redis, db: Database, settings: Settings, breaker: CircuitBreaker
) -> RevokedSessions:
    # A mark must outlive every access token of the session, leeway included.
    ttl_s = settings.access_token_ttl_s + settings.jwt_leeway_s + 60
    return RevokedSessions(
        redis,
        db,
        ttl_s=ttl_s,
        breaker=breaker,
        events_channel=settings.events_channel,
        publish_timeout_s=settings.redis_socket_timeout_s,
    )


def cors(settings: Settings) -> Middleware:
    wildcard = "*" in settings.cors_origins
    return Middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        # Credentials (the refresh cookie) never go to "any origin": with "*" the browser
        # gets no Access-Control-Allow-Credentials, so cookies stay out of it.
        allow_credentials=not wildcard,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=CORS_ALLOWED_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )
